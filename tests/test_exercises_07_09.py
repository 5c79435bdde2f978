"""The checks of lessons 07-09 accept a right answer and name the mismatch of a wrong one; and the
library functions they compare against: the bitmask encoding of sparse storage, movement pruning's
straight-through gradient, one column of the OBS update, and the lessons' two figures."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest
import torch
from torch import nn

from nlpprune_lessons.lessons.exercises import (
    PASSED,
    ExerciseError,
    check_bitmask_encoding,
    check_drop_heads,
    check_head_columns,
    check_head_importance,
    check_nm_mask,
    check_obs_column,
    check_straight_through,
    check_topk_mask,
    check_wanda_scores,
)
from nlpprune_lessons.losses import classification_loss
from nlpprune_lessons.pruning import (
    bitmask_nbytes,
    decode_bitmask,
    encode_bitmask,
    inverse_hessian_factor,
    nm_mask,
    obs_column_update,
    prune,
    row_mask,
    save_sparse,
    sparsegpt_update,
    straight_through,
    topk_mask,
)
from nlpprune_lessons.structured.transformer import head_gates, remove_heads



# ----------------------------------------------------------------------------- lesson 07
def keep_top(scores, sparsity):
    return topk_mask(scores, sparsity)


def movement_forward(weight, scores, sparsity):
    class TopKStraightThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx, s):
            return topk_mask(s, sparsity)

        @staticmethod
        def backward(ctx, grad):
            return grad

    return weight * TopKStraightThrough.apply(scores)


def encode_sparse(weight):
    flat = weight.detach().reshape(-1)
    nonzero = flat != 0
    bits = torch.from_numpy(np.packbits(nonzero.numpy()))
    values = flat[nonzero]
    return bits, values, bits.numel() + values.numel() * values.element_size()


def test_topk_mask_check():
    assert check_topk_mask(keep_top) == PASSED
    with pytest.raises(ExerciseError, match=r"07\.1.*sparsity 0\.5 on a \(4, 6\) tensor, the mask: 24 of 24 entries "
                                            r"differ"):
        check_topk_mask(lambda scores, sparsity: topk_mask(-scores, sparsity))

    def truncated(scores, sparsity):  # int() where the statement says round(): 60.8 -> 60 zeros, not 61
        mask = torch.ones_like(scores)
        k = int(sparsity * scores.numel())
        if k:
            mask.view(-1)[scores.flatten().topk(k, largest=False).indices] = 0
        return mask

    with pytest.raises(ExerciseError, match=r"07\.1.*sparsity 0\.95 on a \(8, 8\) tensor: keep 3 of 64 entries, you "
                                            r"kept 4.*round\(sparsity \* numel\)"):
        check_topk_mask(truncated)


def test_straight_through_check_passes_and_names_the_missing_score_gradient():
    assert check_straight_through(movement_forward) == PASSED
    with pytest.raises(ExerciseError, match=r"07\.2.*no gradient reached the scores.*identity"):
        check_straight_through(lambda weight, scores, sparsity: weight * topk_mask(scores, sparsity))
    wrong_backward = lambda weight, scores, sparsity: weight.detach() * topk_mask(scores, sparsity) + 0 * scores  # noqa: E731
    with pytest.raises(ExerciseError, match=r"07\.2.*dL/dscores: \d+ of \d+ entries differ"):
        check_straight_through(wrong_backward)


def test_bitmask_check_names_bits_values_and_bytes():
    assert check_bitmask_encoding(encode_sparse) == PASSED
    little_endian = lambda w: (torch.from_numpy(np.packbits((w != 0).numpy().reshape(-1), bitorder="little")),  # noqa: E731
                               *encode_sparse(w)[1:])
    with pytest.raises(ExerciseError, match=r"07\.3.*bits: \d+ of \d+ entries differ.*most significant bit"):
        check_bitmask_encoding(little_endian)
    float32_bytes = lambda w: (*encode_sparse(w)[:2], encode_sparse(w)[0].numel() + 4 * int((w != 0).sum()))  # noqa: E731
    with pytest.raises(ExerciseError, match=r"07\.3.*float16.*nbytes: expected \d+, got \d+"):
        check_bitmask_encoding(float32_bytes)
    with pytest.raises(ExerciseError, match=r"return the triple"):
        check_bitmask_encoding(lambda w: encode_sparse(w)[:2])


def test_encode_bitmask_round_trips_and_counts_the_bytes_save_sparse_writes(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for shape, dtype in [((5, 13), torch.float32), ((4, 8), torch.float16), ((3,), torch.float64)]:
        weight = torch.randn(shape, generator=generator).to(dtype)
        weight[torch.rand(shape, generator=generator) < 0.6] = 0
        bits, values = encode_bitmask(weight)
        assert bits.dtype == torch.uint8 and bits.numel() == math.ceil(weight.numel() / 8)
        assert np.array_equal(bits.numpy(), np.packbits((weight != 0).numpy().reshape(-1)))
        assert values.dtype == dtype and torch.equal(values, weight[weight != 0])
        assert torch.equal(decode_bitmask(bits, values, shape), weight)
        assert bitmask_nbytes(weight) == bits.numel() + values.numel() * values.element_size()
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4))
    prune(model, 0.8, params=[(model[0], "weight"), (model[2], "weight")])
    summary = save_sparse(model, tmp_path / "m.safetensors")
    effective = [model[0].weight, model[2].weight]
    assert summary["sparse_stored_bytes"] == sum(bitmask_nbytes(w.detach()) for w in effective)


def test_bitmask_functions_validate_their_arguments():
    with pytest.raises(TypeError, match="torch.Tensor"):
        encode_bitmask([1.0, 0.0])
    with pytest.raises(TypeError, match="real numbers"):
        encode_bitmask(torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="torch.Tensor"):
        bitmask_nbytes(np.zeros(3))
    bits, values = encode_bitmask(torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(TypeError, match="uint8"):
        decode_bitmask(bits.long(), values, (3,))
    with pytest.raises(ValueError, match="cannot encode shape"):
        decode_bitmask(bits, values, (3, 4))
    with pytest.raises(ValueError, match="values for 2 set bits"):
        decode_bitmask(bits, values[:1], (3,))


def test_straight_through_gradients_and_validation():
    weight = torch.randn(4, 5, requires_grad=True)
    scores = torch.randn(4, 5, requires_grad=True)
    mask = topk_mask(scores.detach(), 0.5)
    upstream = torch.randn(4, 5)
    out = straight_through(weight, scores, mask)
    out.backward(upstream)
    assert torch.equal(out, weight.detach() * mask)
    assert torch.equal(scores.grad, upstream * weight.detach())
    assert torch.equal(weight.grad, upstream * mask)
    with pytest.raises(ValueError, match="one shape"):
        straight_through(weight, scores[:2], mask)
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        straight_through(weight, scores, None)


# ----------------------------------------------------------------------------- lesson 08
def drop_heads(layer, heads):
    attention = layer.attention.self
    size = attention.attention_head_size
    kept = [h for h in range(attention.num_attention_heads) if h not in heads]
    rows = torch.tensor([h * size + i for h in kept for i in range(size)])
    for name in ("query", "key", "value"):
        old = getattr(attention, name)
        new = nn.Linear(old.in_features, len(rows))
        new.weight, new.bias = nn.Parameter(old.weight[rows].clone()), nn.Parameter(old.bias[rows].clone())
        setattr(attention, name, new)
    old = layer.attention.output.dense
    new = nn.Linear(len(rows), old.out_features)
    new.weight, new.bias = nn.Parameter(old.weight[:, rows].clone()), nn.Parameter(old.bias.clone())
    layer.attention.output.dense = new
    attention.num_attention_heads, attention.all_head_size = len(kept), len(rows)


def head_scores(model, batches):
    model.eval()
    total = None
    with head_gates(model) as gates:
        for batch in batches:
            grads = torch.autograd.grad(classification_loss(model, batch), gates)
            scores = torch.stack([g.abs() for g in grads])
            total = scores if total is None else total + scores
    return total


def test_head_columns_check():
    assert check_head_columns(lambda head, size: range(head * size, (head + 1) * size)) == PASSED
    with pytest.raises(ExerciseError, match=r"08\.1.*the columns are 96\.\.127"):
        check_head_columns(lambda head, size: range(head, head + size))


def test_drop_heads_check_names_shapes_head_count_and_outputs():
    state = torch.random.get_rng_state()
    assert check_drop_heads(drop_heads) == PASSED
    assert torch.equal(torch.random.get_rng_state(), state)  # the check's tiny model leaves the caller's RNG alone

    def stale_count(layer, heads):
        drop_heads(layer, heads)
        layer.attention.self.num_attention_heads = 4

    with pytest.raises(ExerciseError, match=r"08\.2.*still says num_attention_heads=4"):
        check_drop_heads(stale_count)
    with pytest.raises(ExerciseError, match=r"08\.2.*hidden states.*entries differ"):
        check_drop_heads(lambda layer, heads: drop_heads(layer, list(range(len(heads)))))

    def rows_only(layer, heads):
        dense = layer.attention.output.dense
        drop_heads(layer, heads)
        layer.attention.output.dense = dense

    with pytest.raises(ExerciseError, match=r"08\.2.*attention\.output\.dense should have weight \(24, 12\)"):
        check_drop_heads(rows_only)


def test_head_importance_check():
    assert check_head_importance(head_scores) == PASSED

    def abs_of_sum(model, batches):
        total = None
        with head_gates(model) as gates:
            for batch in batches:
                grads = torch.stack(list(torch.autograd.grad(classification_loss(model, batch), gates)))
                total = grads if total is None else total + grads
        return total.abs()

    with pytest.raises(ExerciseError, match=r"08\.3.*entries differ.*absolute value of each batch"):
        check_head_importance(abs_of_sum)
    with pytest.raises(ExerciseError, match=r"08\.3.*expected 0\.\d+, got 0\.\d+"):
        check_head_importance(lambda model, batches: head_scores(model, batches) / len(batches))


def test_plot_layer_anatomy_draws_six_matrices_to_scale():
    from transformers import BertConfig, BertModel

    from nlpprune_lessons.lessons.l08_slim_bert import plot_layer_anatomy

    model = BertModel(BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=8))
    fig = plot_layer_anatomy(model.encoder.layer[0], head=1, neuron=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["attention.self.query\n16 x 16", "attention.self.key\n16 x 16", "attention.self.value\n16 x 16",
                      "attention.output.dense\n16 x 16", "intermediate.dense\n64 x 16", "output.dense\n16 x 64"]
    query = fig.axes[0].collections[0].get_array().reshape(16, 16)
    assert np.array_equal(np.nonzero(query.sum(1))[0], np.arange(4, 8))  # head 1: rows 4..7
    out = fig.axes[5].collections[0].get_array().reshape(16, 64)
    assert np.array_equal(np.nonzero(out.sum(0))[0], [5])  # neuron 5: column 5
    slim = remove_heads(model, {0: [0]})  # the figure reads the shapes it is given
    assert plot_layer_anatomy(slim.encoder.layer[0]).axes[0].get_title() == "attention.self.query\n12 x 16"
    with pytest.raises(ValueError, match="head 4 is out of range"):
        plot_layer_anatomy(model.encoder.layer[0], head=4)
    with pytest.raises(TypeError, match="BERT encoder layer"):
        plot_layer_anatomy(nn.Linear(2, 2))
    plt.close("all")


# ----------------------------------------------------------------------------- lesson 09
def obs_column(weight, u, column, pruned):
    w = weight.clone()
    errors = w[:, column] * pruned / u[column, column]
    w[:, column:] -= errors[:, None] * u[column, column:]
    w[pruned, column] = 0.0
    return w


def test_nm_mask_check():
    assert check_nm_mask(nm_mask) == PASSED
    with pytest.raises(ExerciseError, match=r"09\.1.*2:4 on a \(3, 8\) tensor, the mask: 24 of 24 entries differ.*keep "
                                            r"its 2 highest scores"):
        check_nm_mask(lambda scores, n, m: nm_mask(-scores, n, m))
    with pytest.raises(ExerciseError, match=r"09\.1.*not 2 per row"):  # the 4 highest of each row of 8, not 2 of every 4
        check_nm_mask(lambda scores, n, m: nm_mask(scores, n * scores.shape[1] // m, scores.shape[1]))


def test_wanda_check_names_the_norm():
    right = lambda weight, inputs: weight.abs() * inputs.reshape(-1, inputs.shape[-1]).norm(dim=0)  # noqa: E731
    assert check_wanda_scores(right) == PASSED
    squared = lambda weight, inputs: weight.abs() * inputs.reshape(-1, inputs.shape[-1]).square().sum(0)  # noqa: E731
    with pytest.raises(ExerciseError, match=r"09\.2.*60 of 60 entries differ.*2-norm of input feature j"):
        check_wanda_scores(squared)
    first_sequence = lambda weight, inputs: weight.abs() * inputs[0].norm(dim=0)  # noqa: E731
    with pytest.raises(ExerciseError, match=r"09\.2.*entries differ.*every token of every sequence"):
        check_wanda_scores(first_sequence)


def test_obs_column_check_names_the_column():
    assert check_obs_column(obs_column) == PASSED

    def later_only(weight, u, column, pruned):  # forgets to zero the pruned entries themselves
        w = weight.clone()
        w[:, column + 1:] -= (w[:, column] * pruned / u[column, column])[:, None] * u[column, column + 1:]
        return w

    with pytest.raises(ExerciseError, match=r"09\.3.*after updating column 0.*expected 0, got"):
        check_obs_column(later_only)

    def times_diagonal(weight, u, column, pruned):
        w = weight.clone()
        w[:, column:] -= (w[:, column] * pruned * u[column, column])[:, None] * u[column, column:]
        return w

    with pytest.raises(ExerciseError, match=r"09\.3.*entries differ.*u\[column, column\]"):
        check_obs_column(times_diagonal)


def test_obs_column_update_column_by_column_is_sparsegpt_update():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(80, 12, generator=generator) @ (torch.eye(12) + 0.5 * torch.randn(12, 12, generator=generator))
    hessian = x.T @ x
    weight = torch.randn(6, 12, generator=generator)
    mask = row_mask(weight.abs(), 0.5)
    u = inverse_hessian_factor(hessian, damp=0.01)
    assert torch.allclose(u.T @ u, torch.linalg.inv(hessian + 0.01 * hessian.diagonal().mean() * torch.eye(12)),
                          atol=1e-5, rtol=1e-3)
    assert torch.equal(u, u.triu())
    swept = weight
    for column in range(12):
        before = swept
        swept = obs_column_update(swept, u, column, mask[:, column] == 0)
        assert torch.equal(swept[:, :column], before[:, :column])  # earlier columns never move
    assert torch.allclose(swept, sparsegpt_update(weight, mask, hessian, damp=0.01), atol=1e-5)
    assert bool((swept[mask == 0] == 0).all())
    error = lambda w: (x @ weight.T - x @ w.T).square().sum()  # noqa: E731
    assert error(swept) < error(weight * mask)


def test_obs_helpers_validate_their_arguments():
    u = inverse_hessian_factor(torch.eye(4) * 2)
    weight = torch.ones(3, 4)
    pruned = torch.tensor([True, False, True])
    with pytest.raises(ValueError, match="square"):
        inverse_hessian_factor(torch.ones(3, 4))
    with pytest.raises(TypeError, match="floating-point"):
        inverse_hessian_factor(torch.eye(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"column must be an int in \[0, 4\)"):
        obs_column_update(weight, u, 4, pruned)
    with pytest.raises(ValueError, match="one entry per row"):
        obs_column_update(weight, u, 0, pruned.float())
    with pytest.raises(ValueError, match="u \\(in x in\\)"):
        obs_column_update(weight, u[:3, :3], 0, pruned)
    out = obs_column_update(weight, u, 1, pruned)
    assert torch.equal(weight, torch.ones(3, 4))  # a new tensor; the input is left alone
    assert out[0, 1] == 0 and out[1, 1] == 1


def test_plot_feature_norms_marks_the_median_and_summarises():
    from nlpprune_lessons.lessons.l09_generation import plot_feature_norms

    fig, ax = plt.subplots()
    norms = torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 30.0])
    summary = plot_feature_norms(ax, norms, "q_proj")
    assert summary["median"] == 2.0 and summary["max_over_median"] == 15.0
    assert summary["share_above_5x"] == pytest.approx(1 / 6)
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [2.0, 10.0] and ax.get_title() == "q_proj"
    for bad in (torch.tensor([]), torch.ones(2, 2), torch.tensor([1.0, -1.0]), [1.0, 2.0]):
        with pytest.raises(ValueError, match="norms must"):
            plot_feature_norms(ax, bad)
    plt.close("all")
