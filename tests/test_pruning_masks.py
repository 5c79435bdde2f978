"""Unit tests of nlpprune_lessons.pruning on small toy models built here (seeded, CPU)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.nn.utils.rnn import pack_padded_sequence

from nlpprune_lessons.pruning import (
    GradualPruner,
    cubic_sparsity,
    default_params,
    effective_weight,
    is_pruned,
    l1_penalty,
    make_permanent,
    movement_scores,
    param_name,
    prune,
    rewind,
    sparsity_report,
    taylor_scores,
    topk_mask,
    weights_snapshot,
)

RNN_WEIGHTS_2_LAYERS = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"]


class ToyClassifier(nn.Module):
    """Embedding(50, 8) + 2-layer LSTM/GRU(8, 16) (optionally bidirectional) + Linear(., 3)."""

    def __init__(self, cell: str = "lstm", bidirectional: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(50, 8, padding_idx=0)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(8, 16, num_layers=2, batch_first=True, bidirectional=bidirectional, dropout=0.2)
        self.fc = nn.Linear(32 if bidirectional else 16, 3)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.emb(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        last = torch.cat([hidden[-2], hidden[-1]], dim=-1) if self.rnn.bidirectional else hidden[-1]
        return self.fc(last)


def make_batches(n: int = 2, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        lengths = torch.randint(2, 8, (4,), generator=gen)
        ids = torch.randint(1, 50, (4, 7), generator=gen)
        ids[torch.arange(7)[None, :] >= lengths[:, None]] = 0
        batches.append({"input_ids": ids, "lengths": lengths, "labels": torch.randint(0, 3, (4,), generator=gen)})
    return batches


def total_zeros(model: nn.Module, params) -> tuple[int, int]:
    weights = [effective_weight(m, n) for m, n in params]
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)


def loss_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch["input_ids"], batch["lengths"]), batch["labels"])


# --- params ------------------------------------------------------------------------------------


def test_default_params_with_and_without_embeddings_before_and_after_pruning():
    model = ToyClassifier(bidirectional=True)
    reverse = [f"{n}_reverse" for n in RNN_WEIGHTS_2_LAYERS]
    expected = sorted(RNN_WEIGHTS_2_LAYERS + reverse + ["fc.weight"])
    names = lambda params: sorted(param_name(model, m, n) for m, n in params)  # noqa: E731
    assert names(default_params(model)) == expected
    assert names(default_params(model, include_embeddings=True)) == sorted(expected + ["emb.weight"])
    prune(model, 0.5, params=default_params(model, include_embeddings=True))
    assert "fc.weight_orig" in dict(model.named_parameters())
    assert names(default_params(model)) == expected
    assert names(default_params(model, include_embeddings=True)) == sorted(expected + ["emb.weight"])


def test_tied_weight_is_listed_once():
    model = nn.ModuleDict({"emb": nn.Embedding(10, 4), "out": nn.Linear(4, 10, bias=False)})
    model["out"].weight = model["emb"].weight
    assert [param_name(model, m, n) for m, n in default_params(model, include_embeddings=True)] == ["emb.weight"]
    assert [param_name(model, m, n) for m, n in default_params(model)] == ["out.weight"]
    assert sparsity_report(model).total_numel == 40  # the shared tensor counts once


# --- masks: magnitude, exact sparsity, absolute semantics --------------------------------------


@pytest.mark.parametrize("amount", [0.3, 0.75])
def test_global_magnitude_equals_torch_global_unstructured(amount):
    ours, theirs = ToyClassifier(seed=3), ToyClassifier(seed=3)
    prune(ours, amount)
    torch_prune.global_unstructured(default_params(theirs), pruning_method=torch_prune.L1Unstructured, amount=amount)
    for (m1, n1), (m2, n2) in zip(default_params(ours), default_params(theirs), strict=True):
        assert torch.equal(getattr(m1, f"{n1}_mask"), getattr(m2, f"{n2}_mask")), n1
        assert torch.equal(getattr(m1, f"{n1}_orig"), getattr(m2, f"{n2}_orig"))


def test_layer_magnitude_equals_torch_l1_unstructured():
    ours, theirs = ToyClassifier(seed=4), ToyClassifier(seed=4)
    prune(ours, 0.4, scope="layer")
    for module, name in default_params(theirs):
        torch_prune.l1_unstructured(module, name, amount=0.4)
    for (m1, n1), (m2, n2) in zip(default_params(ours), default_params(theirs), strict=True):
        assert torch.equal(getattr(m1, f"{n1}_mask"), getattr(m2, f"{n2}_mask")), n1


@pytest.mark.parametrize("method", ["magnitude", "random", "l1"])
@pytest.mark.parametrize("amount", [0.0, 0.1, 0.37, 0.9, 1.0])
def test_exact_sparsity_global_and_layer(amount, method):
    model = ToyClassifier()
    params = default_params(model)
    result = prune(model, amount, method=method)
    zeros, numel = total_zeros(model, params)
    assert zeros == round(amount * numel)
    assert set(result) == {param_name(model, m, n) for m, n in params}

    model = ToyClassifier()
    result = prune(model, amount, method=method, scope="layer", params=default_params(model))
    for module, name in default_params(model):
        weight = effective_weight(module, name)
        assert int((weight == 0).sum()) == round(amount * weight.numel())
        assert result[param_name(model, module, name)] == pytest.approx(round(amount * weight.numel()) / weight.numel())


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_weights_already_zero_count_as_pruned(method):
    model = ToyClassifier()  # the embedding's padding row: 8 of 400 weights are zero
    params = [(model.emb, "weight")]
    with pytest.raises(ValueError, match="already has 8"):
        prune(model, 0.01, method=method, params=params)
    prune(model, 0.1, method=method, params=params)
    assert int((model.emb.weight_mask == 0).sum()) == 40
    assert torch.all(model.emb.weight_mask[0] == 0)


def test_amount_is_absolute_and_masks_only_grow():
    model = ToyClassifier()
    params = default_params(model)
    original = {n: getattr(m, n).detach().clone() for m, n in params}
    prune(model, 0.5)
    first = [getattr(m, f"{n}_mask").clone() for m, n in params]
    prune(model, 0.8)
    zeros, numel = total_zeros(model, params)
    assert zeros == round(0.8 * numel)
    for (module, name), old in zip(params, first):
        assert not (getattr(module, f"{name}_mask")[old == 0]).any()  # earlier zeros stay zero
        assert torch.equal(getattr(module, f"{name}_orig"), original[name])  # unpruned values kept
        assert [k for k in module._buffers if k.startswith(name + "_")] == [f"{name}_mask"]
        assert [k for k in module._parameters if k.startswith(name + "_")] == [f"{name}_orig"]
    (hook,) = model.fc._forward_pre_hooks.values()
    # the mask buffer is updated in place: no PruningContainer keeping every earlier mask alive
    assert not isinstance(hook, torch_prune.PruningContainer)
    model(**{k: v for k, v in make_batches(1)[0].items() if k != "labels"})
    assert torch.equal(model.fc.weight, model.fc.weight_orig * model.fc.weight_mask)
    assert torch.equal(effective_weight(model.fc, "weight"), model.fc.weight)
    prune(model, 0.8)  # same amount again: a no-op, allowed
    assert total_zeros(model, params)[0] == zeros
    with pytest.raises(ValueError, match="masks only grow"):
        prune(model, 0.5)


def test_prune_after_torch_prune_keeps_one_container():
    model = ToyClassifier()
    torch_prune.l1_unstructured(model.fc, "weight", amount=0.25)
    prune(model, 0.5, params=[(model.fc, "weight")])
    assert int((model.fc.weight_mask == 0).sum()) == round(0.5 * model.fc.weight.numel())
    assert len(model.fc._forward_pre_hooks) == 1


def test_masks_survive_adamw_with_weight_decay():
    model = ToyClassifier(cell="gru")
    params = default_params(model, include_embeddings=True)
    prune(model, 0.7, params=params)
    before = [getattr(m, f"{n}_orig").detach().clone() for m, n in params]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
    model.train()
    for batch in make_batches(5):
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
    model(make_batches(1)[0]["input_ids"], make_batches(1)[0]["lengths"])  # refreshes module.<name>
    for (module, name), old in zip(params, before):
        mask = getattr(module, f"{name}_mask")
        assert torch.all(getattr(module, name)[mask == 0] == 0)
        assert torch.all(effective_weight(module, name)[mask == 0] == 0)
        assert not torch.equal(getattr(module, f"{name}_orig"), old)  # the rest was trained
    assert total_zeros(model, params)[0] == round(0.7 * total_zeros(model, params)[1])


# --- importance ---------------------------------------------------------------------------------


def _tiny_linear() -> nn.Linear:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]))
        layer.bias.copy_(torch.tensor([0.1, -0.2]))
    return layer


def _mse(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()


TINY_BATCHES = [
    {"x": torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]), "y": torch.tensor([[1.0, 0.0], [0.0, 2.0]])},
    {"x": torch.tensor([[-2.0, 1.0, 0.5]]), "y": torch.tensor([[0.5, -1.0]])},
]


def _hand_taylor(weight: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    plain = _tiny_linear()
    with torch.no_grad():
        plain.weight.copy_(weight)
    loss = _mse(plain, batch)
    (grad,) = torch.autograd.grad(loss, [plain.weight])
    return (plain.weight * grad).abs().detach()


def test_taylor_scores_equal_hand_computation():
    model = _tiny_linear()
    model.train()
    weight = model.weight.detach().clone()
    (one,) = taylor_scores(model, [(model, "weight")], TINY_BATCHES[:1], loss_fn=_mse)
    assert torch.allclose(one, _hand_taylor(weight, TINY_BATCHES[0]))
    (two,) = taylor_scores(model, [(model, "weight")], TINY_BATCHES, loss_fn=_mse)
    assert torch.allclose(two, _hand_taylor(weight, TINY_BATCHES[0]) + _hand_taylor(weight, TINY_BATCHES[1]))
    (capped,) = taylor_scores(model, [(model, "weight")], TINY_BATCHES, loss_fn=_mse, max_batches=1)
    assert torch.allclose(capped, one)
    assert model.training and model.weight.grad is None  # mode restored, .grad untouched


def test_movement_scores_are_minus_the_signed_taylor_terms():
    """Movement scores keep the sign that Taylor importance drops: -sum of w * dL/dw over the batches."""
    model = _tiny_linear()
    weight = model.weight.detach().clone()
    (scores,) = movement_scores(model, [(model, "weight")], TINY_BATCHES, loss_fn=_mse)
    expected = torch.zeros_like(weight)
    for batch in TINY_BATCHES:
        (grad,) = torch.autograd.grad(_mse(model, batch), [model.weight])
        expected -= weight * grad
    assert torch.allclose(scores, expected)
    (taylor,) = taylor_scores(model, [(model, "weight")], TINY_BATCHES[:1], loss_fn=_mse)
    (first,) = movement_scores(model, [(model, "weight")], TINY_BATCHES[:1], loss_fn=_mse)
    assert torch.allclose(taylor, first.abs())  # per batch, Taylor importance is its absolute value
    pruned = _tiny_linear()
    prune(pruned, 0.5, method="movement", params=[(pruned, "weight")], data=TINY_BATCHES, loss_fn=_mse)
    assert torch.equal(pruned.weight_mask, topk_mask(expected, 0.5))
    with pytest.raises(ValueError, match="needs data"):
        prune(model, 0.5, method="movement", params=[(model, "weight")])


def test_pruned_weight_size_reports_the_removed_weights_mean_magnitude():
    from nlpprune_lessons.pruning.report import pruned_weight_size

    model = _tiny_linear()
    with pytest.raises(ValueError, match="no masked-out weights"):
        pruned_weight_size(model)
    weight = model.weight.detach().abs().clone()
    prune(model, 0.5, params=[(model, "weight")])
    removed = weight[model.weight_mask == 0]
    size = pruned_weight_size(model)
    assert size["mean_abs_removed"] == pytest.approx(removed.mean().item())
    assert size["mean_abs_all"] == pytest.approx(weight.mean().item())
    assert size["mean_abs_removed"] < size["mean_abs_all"]  # magnitude pruning removes the small ones


def test_taylor_scores_use_the_effective_weight_of_a_pruned_param():
    model = _tiny_linear()
    prune(model, 0.5, params=[(model, "weight")])
    effective = effective_weight(model, "weight").detach()
    (scores,) = taylor_scores(model, [(model, "weight")], TINY_BATCHES[:1], loss_fn=_mse)
    assert torch.allclose(scores, _hand_taylor(effective, TINY_BATCHES[0]))
    assert torch.all(scores[model.weight_mask == 0] == 0)


def test_taylor_prune_on_rnn_with_default_loss():
    model = ToyClassifier()
    model.train()
    result = prune(model, 0.6, method="taylor", data=make_batches(2))
    zeros, numel = total_zeros(model, default_params(model))
    assert zeros == round(0.6 * numel) and len(result) == 5
    assert model.training and all(p.grad is None for p in model.parameters())
    magnitude = ToyClassifier()
    prune(magnitude, 0.6)
    assert not torch.equal(model.fc.weight_mask, magnitude.fc.weight_mask)


def test_random_is_seeded():
    masks = []
    for seed in (7, 7, 8):
        model = ToyClassifier()
        prune(model, 0.5, method="random", seed=seed)
        masks.append(torch.cat([getattr(m, f"{n}_mask").flatten() for m, n in default_params(model)]))
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_l1_penalty_equals_hand_sum_and_has_gradients():
    model = ToyClassifier()
    hand = model.fc.weight.abs().sum() + sum(getattr(model.rnn, n[4:]).abs().sum() for n in RNN_WEIGHTS_2_LAYERS)
    penalty = l1_penalty(model)
    assert torch.allclose(penalty, hand)
    penalty.backward()
    assert torch.equal(model.fc.weight.grad, torch.sign(model.fc.weight.detach()))
    assert model.fc.bias.grad is None and model.emb.weight.grad is None

    prune(model, 0.5, params=[(model.fc, "weight")])
    model.zero_grad()
    penalty = l1_penalty(model, [(model.fc, "weight")])
    assert torch.allclose(penalty, (model.fc.weight_orig * model.fc.weight_mask).abs().sum())
    penalty.backward()
    assert torch.all(model.fc.weight_orig.grad[model.fc.weight_mask == 0] == 0)


# --- schedule -----------------------------------------------------------------------------------


def test_cubic_sparsity_values_and_clamping():
    assert cubic_sparsity(10, 0.8, 10, 30) == 0.0
    assert cubic_sparsity(20, 0.8, 10, 30) == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert cubic_sparsity(15, 0.9, 10, 30, initial_sparsity=0.1) == pytest.approx(0.9 - 0.8 * 0.75**3)
    assert cubic_sparsity(30, 0.8, 10, 30) == 0.8
    assert cubic_sparsity(0, 0.8, 10, 30, initial_sparsity=0.2) == 0.2
    assert cubic_sparsity(99, 0.8, 10, 30) == 0.8
    values = [cubic_sparsity(t, 0.8, 10, 30) for t in range(10, 31)]
    assert values == sorted(values)
    for args in [(5, 1.2, 0, 10), (5, 0.5, 0, 10, 0.7), (5, 0.5, 10, 5), (5, 0.5, -1, 10)]:
        with pytest.raises(ValueError):
            cubic_sparsity(*args)


def test_gradual_pruner_prunes_on_schedule():
    model = ToyClassifier()
    params = default_params(model)
    pruner = GradualPruner(model, 0.8, start_step=10, end_step=30, frequency=7)
    for step in range(40):
        returned = pruner.step(step)
        if step in (10, 17, 24, 30):
            assert returned == cubic_sparsity(step, 0.8, 10, 30)
            zeros, numel = total_zeros(model, params)
            assert zeros == round(returned * numel)
        else:
            assert returned is None
    assert [s for s, _ in pruner.history] == [10, 17, 24, 30]
    assert pruner.history[-1][1] == 0.8
    assert sparsity_report(model).prunable_sparsity == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ValueError, match="frequency"):
        GradualPruner(model, 0.8, 10, 30, frequency=0)


# --- RNNs: forward/backward, dense equivalence, make_permanent, state_dict ------------------------


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", False), ("lstm", True)])
def test_pruned_rnn_matches_dense_copy_and_survives_make_permanent(cell, bidirectional):
    batch = make_batches(1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. torch.nn's RNN flat-weights warnings
        pruned, dense = ToyClassifier(cell, bidirectional, seed=5), ToyClassifier(cell, bidirectional, seed=5)
        params = default_params(pruned, include_embeddings=True)
        prune(pruned, 0.6, params=params)
        with torch.no_grad():
            for (module, name), (dense_module, _) in zip(params, default_params(dense, include_embeddings=True)):
                getattr(dense_module, name).mul_(getattr(module, f"{name}_mask"))
        pruned.eval(), dense.eval()
        out = pruned(batch["input_ids"], batch["lengths"])
        assert torch.allclose(out, dense(batch["input_ids"], batch["lengths"]), atol=1e-6)
        pruned.train()
        loss_of(pruned, batch).backward()
        assert pruned.rnn.weight_hh_l1_orig.grad is not None
        assert torch.all(pruned.rnn.weight_hh_l1_orig.grad[pruned.rnn.weight_hh_l1_mask == 0] == 0)

        assert make_permanent(pruned) == len(params)
        assert not any(is_pruned(m, n) for m, n in params)
        pruned.eval()
        assert torch.allclose(pruned(batch["input_ids"], batch["lengths"]), out, atol=1e-6)
        pruned.train()
        loss_of(pruned, batch).backward()
        assert pruned.rnn.weight_hh_l1.grad is not None

        fresh = ToyClassifier(cell, bidirectional, seed=99)
        fresh.load_state_dict(pruned.state_dict())
        fresh.eval(), pruned.eval()
        assert torch.allclose(fresh(batch["input_ids"], batch["lengths"]), out, atol=1e-6)
    assert make_permanent(pruned) == 0


# --- lottery ticket -------------------------------------------------------------------------------


def test_weights_snapshot_and_rewind_keep_masks_and_restore_values():
    model = ToyClassifier()
    initial = weights_snapshot(model)
    assert set(initial) == set(dict(model.named_parameters()))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    for batch in make_batches(3):
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
    prune(model, 0.6)
    masks = {n: getattr(m, f"{n}_mask").clone() for m, n in default_params(model)}
    trained = weights_snapshot(model)
    assert set(trained) == set(initial)  # 'fc.weight', not 'fc.weight_orig'
    assert not torch.equal(trained["fc.weight"], initial["fc.weight"])

    rewind(model, initial)
    for module, name in default_params(model):
        assert torch.equal(getattr(module, f"{name}_mask"), masks[name])
        assert torch.equal(getattr(module, f"{name}_orig"), initial[param_name(model, module, name)])
    assert torch.equal(model.fc.bias, initial["fc.bias"])
    initial["fc.weight"].add_(1.0)
    assert not torch.equal(model.fc.weight_orig, initial["fc.weight"])  # the snapshot was copied, not shared

    with pytest.raises(ValueError, match="missing"):
        rewind(model, {k: v for k, v in initial.items() if k != "fc.bias"})
    with pytest.raises(ValueError, match="shape"):
        rewind(model, {**initial, "fc.bias": torch.zeros(4)})


# --- report ---------------------------------------------------------------------------------------


def test_sparsity_report_on_hand_example():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, -3.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 5.0]))
        model[1].weight.copy_(torch.tensor([[0.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([1.0]))
    report = sparsity_report(model)
    assert report.prunable_numel == 6 and report.total_numel == 9
    assert report.prunable_sparsity == pytest.approx(3 / 6)
    assert report.overall_sparsity == pytest.approx(4 / 9)
    assert report.per_parameter.to_dict("list") == {
        "name": ["0.weight", "1.weight"],
        "shape": [(2, 2), (1, 2)],
        "numel": [4, 2],
        "zeros": [1, 2],
        "sparsity": [0.25, 1.0],
        "masked": [False, False],
    }

    prune(model, 0.5, params=[(model[0], "weight")])  # 1.0 -> masked as well; 2 of 4 zero
    report = sparsity_report(model, params=[(model[1], "weight")])  # masked params always join
    assert report.per_parameter["name"].tolist() == ["1.weight", "0.weight"]
    assert report.per_parameter["masked"].tolist() == [False, True]
    assert report.prunable_sparsity == pytest.approx(4 / 6)
    assert report.total_numel == 9  # weight_orig not counted twice
    assert report.overall_sparsity == pytest.approx(5 / 9)
    text = str(report)
    assert "66.67%" in text and "55.56%" in text and "0.weight" in text


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sparsity": -0.1}, "sparsity"),
        ({"sparsity": 1.5}, "sparsity"),
        ({"sparsity": "half"}, "sparsity"),
        ({"sparsity": 0.5, "method": "foo"}, "method"),
        ({"sparsity": 0.5, "scope": "foo"}, "scope"),
        ({"sparsity": 0.5, "method": "taylor"}, "data"),
        ({"sparsity": 0.5, "params": "MISSING"}, "no parameter"),
        ({"sparsity": 0.5, "params": []}, "empty"),
        ({"sparsity": 0.5, "params": "FOREIGN"}, "not part of the model"),
        ({"sparsity": 0.5, "params": ["fc.weight"]}, "pairs"),
    ],
)
def test_prune_validation_errors(kwargs, match):
    model = ToyClassifier()
    special = {"MISSING": [(model.fc, "nope")], "FOREIGN": [(nn.Linear(2, 2), "weight")]}
    if isinstance(kwargs.get("params"), str):
        kwargs = {**kwargs, "params": special[kwargs["params"]]}
    with pytest.raises(ValueError, match=match):
        prune(model, **kwargs)
    assert not any(is_pruned(m, n) for m, n in default_params(model))
