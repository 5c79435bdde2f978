"""Structured pruning of the recurrent models (nlpprune_lessons.structured): StackedRNN, removal of
hidden units / embedding dims / vocabulary rows, unit importance, FLOPs, saving slim models."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors import safe_open
from tiny_models import (
    CLASSES,
    EMBED,
    HIDDEN,
    KINDS,
    SEQS,
    UNITS,
    VOCAB,
    assert_same_rnn_outputs,
    padded_ids,
    rnn_classifier_batches,
    rnn_lm_batches,
    rnn_outputs,
    tiny_rnn,
    tiny_rnn_classifier,
    tiny_rnn_lm,
    token_ids,
)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nlpprune_lessons.core.batch import detach_state
from nlpprune_lessons.core.checkpoints import save_checkpoint
from nlpprune_lessons.evaluate import evaluate_language_model
from nlpprune_lessons.losses import default_loss
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.pruning import make_permanent, prune
from nlpprune_lessons.structured import (
    StackedRNN,
    hidden_sizes,
    hidden_unit_importance,
    load_slim,
    recurrent_flops,
    remove_embedding_dims,
    remove_hidden_units,
    remove_vocabulary,
    save_slim,
    units_to_remove,
)
from nlpprune_lessons.text.batching import make_loader
from nlpprune_lessons.text.vocab import Vocab
from nlpprune_lessons.training.loop import train_classifier, train_language_model


def _rnn_param(model: nn.Module, layer: int, kind: str, direction: int) -> nn.Parameter:
    """``kind`` weight of (layer, direction), from an nn.LSTM/GRU or a StackedRNN."""
    suffix = "_reverse" if direction else ""
    if isinstance(model.rnn, StackedRNN):
        return getattr(model.rnn.layers[layer], f"{kind}_l0{suffix}")
    return getattr(model.rnn, f"{kind}_l{layer}{suffix}")


def _head(model: nn.Module) -> nn.Linear:
    return model.classifier if isinstance(model, RNNClassifier) else model.decoder


@torch.no_grad()
def _scale_outgoing(model: nn.Module, layer: int, unit: int, factor: float, directions=None) -> None:
    """Multiply (in place) what a unit sends on: its weight_hh column and the next layer's input column
    (both halves' consumers) or the head's column, for each direction in ``directions`` (default all)."""
    d_all = 2 if model.rnn.bidirectional else 1
    size = _rnn_param(model, layer, "weight_hh", 0).shape[1]
    last = layer == model.rnn.num_layers - 1
    for d in range(d_all) if directions is None else directions:
        _rnn_param(model, layer, "weight_hh", d)[:, unit] *= factor
        col = d * size + unit
        consumers = [_head(model).weight] if last else [_rnn_param(model, layer + 1, "weight_ih", k)
                                                        for k in range(d_all)]
        for weight in consumers:
            weight[:, col] *= factor


def _zeroed(model: nn.Module, units: dict[int, list[int]]) -> nn.Module:
    copy_ = copy.deepcopy(model)
    for layer, indices in units.items():
        for unit in indices:
            _scale_outgoing(copy_, layer, unit, 0.0)
    return copy_


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_state_equal(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    now = model.state_dict()
    assert now.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(now[key], value), key


# =========================================================================== StackedRNN
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_rnn_state_format_and_shapes(cell, bidirectional):
    torch.manual_seed(0)
    rnn = StackedRNN(cell, 5, [4, 3], bidirectional=bidirectional).eval()
    d = 2 if bidirectional else 1
    assert rnn.num_layers == 2 and rnn.hidden_sizes == [4, 3] and rnn.bidirectional == bidirectional
    assert rnn.mode == cell.upper() and rnn.cell == cell
    output, state = rnn(torch.randn(2, 6, 5))
    assert output.shape == (2, 6, d * 3)
    if cell == "lstm":
        assert isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, list) for s in state)
        h = state[0]
    else:
        assert isinstance(state, list)  # not a tuple: RNNClassifier reads a tuple as LSTM's (h, c)
        h = state
    assert [tuple(t.shape) for t in h] == [(2, 4)] * d + [(2, 3)] * d  # layer-major, direction-minor
    torch.testing.assert_close(h[-1] if not bidirectional else h[-2], output[:, -1, :3])
    if bidirectional:
        torch.testing.assert_close(h[-1], output[:, 0, 3:])  # the backward direction ends at t = 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stacked_rnn_state_carries_across_calls(cell):
    torch.manual_seed(0)
    rnn = StackedRNN(cell, 5, [4, 6, 3]).eval()
    x = torch.randn(2, 7, 5)
    whole, _ = rnn(x)
    first, state = rnn(x[:, :3])
    second, _ = rnn(x[:, 3:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    fresh, _ = rnn(x[:, 3:])
    assert not torch.allclose(fresh, second)


def test_stacked_rnn_dropout_between_layers_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4)
    single = StackedRNN("gru", 4, [6], dropout=0.5).train()
    torch.testing.assert_close(single(x)[0], single(x)[0])  # no dropout after the last layer
    stacked = StackedRNN("gru", 4, [6, 6], dropout=0.5).train()
    assert not torch.allclose(stacked(x)[0], stacked(x)[0])
    packed = pack_padded_sequence(x, torch.tensor([5, 2, 4]), batch_first=True, enforce_sorted=False)
    assert not torch.allclose(stacked(packed)[0].data, stacked(packed)[0].data)
    stacked.eval()
    torch.testing.assert_close(stacked(x)[0], stacked(x)[0])
    torch.testing.assert_close(stacked(packed)[0].data, stacked(packed)[0].data)


def test_detach_keeps_nested_containers():
    h = [torch.ones(2, 3, requires_grad=True) * 2, torch.ones(2, 4, requires_grad=True) * 3]
    state = (h, [t + 1 for t in h])
    out = detach_state(state)
    assert isinstance(out, tuple) and all(isinstance(part, list) for part in out)
    assert all(not t.requires_grad for part in out for t in part)
    assert torch.equal(out[1][1], state[1][1])
    assert detach_state(None) is None and not detach_state(torch.ones(1, requires_grad=True) * 2).requires_grad


@pytest.mark.parametrize(
    "args, message",
    [
        (("rnn", 4, [3]), "cell must be one of"),
        (("lstm", 4, []), "at least one layer"),
        (("lstm", 4, [3, 0]), "positive ints"),
        (("lstm", 0, [3]), "positive ints"),
        (("gru", 4, [3], False, 1.0), r"dropout must be in \[0, 1\)"),
    ],
)
def test_stacked_rnn_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        StackedRNN(*args)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stacked_rnn_rejects_a_wrong_state(cell):
    rnn = StackedRNN(cell, 4, [3, 3])
    x = torch.randn(2, 5, 4)
    bad = [torch.zeros(2, 3)]  # one tensor, two layers
    with pytest.raises(ValueError, match="state must be .* of 2 \\[batch, hidden\\] tensors"):
        rnn(x, (bad, bad) if cell == "lstm" else bad)


# =========================================================================== remove_hidden_units
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_removing_units_equals_zeroing_their_outgoing_weights(cell, num_layers, kind):
    model = tiny_rnn(kind, cell, num_layers)
    units = {layer: UNITS[layer] for layer in range(num_layers)}
    before = _state(model)
    slim = remove_hidden_units(model, units)
    reference = _zeroed(model, units)
    assert_same_rnn_outputs(slim, reference, kind)
    # The zeroed units mattered: the comparison above can fail.
    assert not torch.allclose(rnn_outputs(model, kind)[0], rnn_outputs(reference, kind)[0], atol=1e-4)
    _assert_state_equal(model, before)  # the input model is untouched
    assert isinstance(slim.rnn, StackedRNN) and not slim.training
    assert hidden_sizes(slim) == [HIDDEN - len(units[layer]) for layer in range(num_layers)]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("kind", KINDS)
def test_removing_units_from_an_already_slimmed_model(cell, kind):
    once = remove_hidden_units(tiny_rnn(kind, cell, 3), {0: [1], 2: [0, 3]})
    twice = remove_hidden_units(once, {0: [0, 2], 1: [7]})
    assert hidden_sizes(twice) == [5, 7, 6]
    assert_same_rnn_outputs(twice, _zeroed(once, {0: [0, 2], 1: [7]}), kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_no_units_gives_the_same_model_as_a_stacked_rnn(kind, cell):
    model = tiny_rnn(kind, cell, 2, dropout=0.25)
    slim = remove_hidden_units(model, {})
    assert isinstance(slim.rnn, StackedRNN) and isinstance(model.rnn, nn.RNNBase)
    assert hidden_sizes(slim) == hidden_sizes(model) == [HIDDEN, HIDDEN]
    assert_same_rnn_outputs(slim, model, kind, atol=1e-6)
    # Other attributes carry over, as copies.
    assert slim.cell == model.cell and slim.dropout.p == 0.25 and slim.rnn.dropout == model.rnn.dropout == 0.25
    assert torch.equal(slim.embedding.weight, model.embedding.weight)
    assert slim.embedding.weight is not model.embedding.weight
    assert slim.embedding.padding_idx == model.embedding.padding_idx
    assert remove_hidden_units(model.train(), {}).training


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parameter_counts_and_shapes_after_removal(cell, bidirectional):
    gates, d = {"lstm": 4, "gru": 3}[cell], 2 if bidirectional else 1
    slim = remove_hidden_units(tiny_rnn_classifier(cell, 3, bidirectional), {0: [0, 1, 2], 2: [7]})
    sizes, inputs = [5, 8, 7], [EMBED, d * 5, d * 8]
    for layer, (i, h) in enumerate(zip(inputs, sizes)):
        module = slim.rnn.layers[layer]
        assert sum(p.numel() for p in module.parameters()) == d * gates * (h * i + h * h + 2 * h)
        assert module.weight_ih_l0.shape == (gates * h, i) and module.weight_hh_l0.shape == (gates * h, h)
        assert module.bidirectional == bidirectional
    assert slim.classifier.weight.shape == (CLASSES, d * 7) and slim.classifier.bias.shape == (CLASSES,)
    lm = remove_hidden_units(tiny_rnn_lm(cell, 2), {1: [3, 4, 5]})
    assert lm.decoder.weight.shape == (VOCAB, 5) and lm.rnn.layers[1].weight_hh_l0.shape == (gates * 5, 5)


def test_removal_keeps_the_right_rows_and_columns():
    model = tiny_rnn_classifier("gru", 2, bidirectional=True)
    slim = remove_hidden_units(model, {0: [2], 1: [0, 5]})
    h0, h1 = [0, 1, 3, 4, 5, 6, 7], [1, 2, 3, 4, 6, 7]
    rows1 = [g * HIDDEN + j for g in range(3) for j in h1]
    cols1 = h0 + [HIDDEN + j for j in h0]
    for d, suffix in enumerate(["", "_reverse"]):
        new = slim.rnn.layers[1]
        assert torch.equal(getattr(new, f"weight_ih_l0{suffix}"),
                           getattr(model.rnn, f"weight_ih_l1{suffix}")[rows1][:, cols1])
        assert torch.equal(getattr(new, f"weight_hh_l0{suffix}"),
                           getattr(model.rnn, f"weight_hh_l1{suffix}")[rows1][:, h1])
        assert torch.equal(getattr(new, f"bias_hh_l0{suffix}"), getattr(model.rnn, f"bias_hh_l1{suffix}")[rows1])
    assert torch.equal(slim.classifier.weight, model.classifier.weight[:, h1 + [HIDDEN + j for j in h1]])


def test_tied_lm_keeps_its_tie_when_inner_units_go():
    model = tiny_rnn_lm("lstm", 2, embed_dim=HIDDEN, tie_weights=True)
    slim = remove_hidden_units(model, {0: [1, 6]})
    assert slim.decoder.weight is slim.embedding.weight
    assert slim.decoder.weight is not model.decoder.weight
    assert_same_rnn_outputs(slim, _zeroed(model, {0: [1, 6]}), "lm")


def test_units_accept_tensor_and_tuple_indices():
    model = tiny_rnn_classifier("lstm", 2)
    a = remove_hidden_units(model, {0: torch.tensor([1, 3]), torch.tensor(1): (2,)})
    b = remove_hidden_units(model, {0: [1, 3], 1: [2]})
    assert_same_rnn_outputs(a, b, "clf", atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_slim_lm_generates_like_the_zeroed_model(cell):
    model = tiny_rnn_lm(cell, 2)
    units = {0: [0, 3], 1: [6]}
    slim, reference = remove_hidden_units(model, units), _zeroed(model, units)
    assert slim.generate([4, 9, 1], 8, temperature=0) == reference.generate([4, 9, 1], 8, temperature=0)


# --------------------------------------------------------------------------- training a slim model
TRAIN_IDS = torch.arange(200) % 10
VAL_IDS = torch.arange(80) % 10


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_slim_lm_trains_with_tbptt(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(10, embed_dim=8, hidden_size=12, num_layers=2, cell=cell, dropout=0.3)
    slim = remove_hidden_units(model, {0: [0, 5], 1: [3]}).train()
    before = slim.rnn.layers[0].weight_hh_l0.detach().clone()
    history = train_language_model(slim, TRAIN_IDS, VAL_IDS, epochs=1, lr=1e-2, batch_size=5, bptt=10,
                                   progress=False, device="cpu")
    assert math.isfinite(history.train_loss[0]) and math.isfinite(history.val_perplexity[0])
    assert not torch.equal(before, slim.rnn.layers[0].weight_hh_l0)
    assert math.isfinite(evaluate_language_model(slim, VAL_IDS, batch_size=2, bptt=7)["perplexity"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_slim_classifier_trains(cell):
    model = tiny_rnn_classifier(cell, 2, bidirectional=True, dropout=0.3)
    slim = remove_hidden_units(model, {0: [1], 1: [2, 4]}).train()
    loader = make_loader(SEQS * 2, [0, 1, 2, 1, 0] * 2, batch_size=4)
    history = train_classifier(slim, loader, loader, epochs=1, progress=False, device="cpu")
    assert math.isfinite(history.train_loss[0]) and 0 <= history.val_accuracy[0] <= 1


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "units, message",
    [
        ({2: [0]}, r"layer index 2 is out of range: allowed 0\.\.1"),
        ({-1: [0]}, r"layer index -1 is out of range"),
        ({"0": [1]}, "layer index must be an int, got '0'"),
        ({0: [8]}, r"layer 0 unit 8 is out of range: allowed 0\.\.7"),
        ({1: [-1]}, "layer 1 unit -1 is out of range"),
        ({0: [1.5]}, "layer 0 unit must be an int, got 1.5"),
        ({0: [True]}, "layer 0 unit must be an int, got True"),
        ({0: 3}, "units of layer 0 to remove must be given as a sequence of int indices"),
        ({0: [1, 3, 1]}, "layer 0 unit 1 is listed more than once"),
        ({1: list(range(HIDDEN))}, "cannot remove all 8 units of layer 1; keep at least one"),
    ],
)
def test_remove_hidden_units_bad_units(units, message):
    with pytest.raises(ValueError, match=message):
        remove_hidden_units(tiny_rnn_classifier("lstm", 2), units)


def test_remove_hidden_units_units_must_be_a_dict():
    with pytest.raises(TypeError, match="units must be a dict"):
        remove_hidden_units(tiny_rnn_classifier(), [0, 1])


def test_remove_hidden_units_refuses_last_layer_of_a_tied_lm():
    model = tiny_rnn_lm("gru", 2, embed_dim=HIDDEN, tie_weights=True)
    with pytest.raises(ValueError, match=r"last recurrent layer \(1\) of a language model with tied weights"):
        remove_hidden_units(model, {1: [0]})


@pytest.mark.parametrize("fn, args", [
    (remove_hidden_units, ({0: [1]},)),
    (remove_embedding_dims, ([1],)),
    (hidden_unit_importance, ()),
    (save_slim, ("unused.safetensors",)),
])
def test_pruning_masks_must_be_made_permanent_first(fn, args):
    model = tiny_rnn_classifier("lstm", 2)
    prune(model, 0.5)
    with pytest.raises(ValueError, match=r"pruning masks .* call nlpprune_lessons\.pruning\.make_permanent"):
        fn(model, *args)
    make_permanent(model)
    if fn is not save_slim:
        fn(model, *args)


@pytest.mark.parametrize("model", [nn.LSTM(4, 4), nn.Linear(3, 2)])
def test_other_models_are_a_type_error(model):
    for fn, args in [(remove_hidden_units, ({},)), (remove_embedding_dims, ([0],)), (hidden_unit_importance, ()),
                     (hidden_sizes, ()), (recurrent_flops, (5,)), (save_slim, ("x.safetensors",)),
                     (remove_vocabulary, (Vocab([]), 5))]:
        with pytest.raises(TypeError, match="model must be an RNNClassifier or RNNLanguageModel"):
            fn(model, *args)


# =========================================================================== remove_embedding_dims
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_removing_embedding_dims_equals_zeroing_them(kind, cell):
    model = tiny_rnn(kind, cell, 2)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference.embedding.weight[:, [0, 3]] = 0
    before = _state(model)
    slim = remove_embedding_dims(model, [3, 0])
    assert slim.embedding.weight.shape == (VOCAB, EMBED - 2)
    for suffix in ["", "_reverse"] if kind == "clf-bi" else [""]:
        assert getattr(slim.rnn.layers[0], f"weight_ih_l0{suffix}").shape[1] == EMBED - 2
    assert_same_rnn_outputs(slim, reference, kind)
    assert not torch.allclose(rnn_outputs(model, kind)[0], rnn_outputs(reference, kind)[0], atol=1e-4)
    _assert_state_equal(model, before)
    # Units can then be removed as well.
    assert_same_rnn_outputs(remove_hidden_units(slim, {1: [2]}), _zeroed(slim, {1: [2]}), kind)


def test_removing_embedding_dims_keeps_a_frozen_embedding_frozen_and_the_padding_row():
    model = tiny_rnn_classifier("lstm", 1)
    model.init_embeddings(torch.randn(VOCAB, EMBED), freeze=True)
    slim = remove_embedding_dims(model, [1])
    assert not slim.embedding.weight.requires_grad and slim.embedding.padding_idx == 0


@pytest.mark.parametrize(
    "dims, message",
    [
        ([6], r"embedding dim 6 is out of range: allowed 0\.\.5"),
        ([0, 0], "embedding dim 0 is listed more than once"),
        ([0.0], "embedding dim must be an int"),
        (list(range(EMBED)), "cannot remove all 6 embedding dims"),
        (2, "embedding dims to remove must be given as a sequence"),
    ],
)
def test_remove_embedding_dims_bad_dims(dims, message):
    with pytest.raises(ValueError, match=message):
        remove_embedding_dims(tiny_rnn_lm("lstm", 1), dims)


def test_remove_embedding_dims_refuses_a_tied_lm():
    with pytest.raises(ValueError, match="tied weights"):
        remove_embedding_dims(tiny_rnn_lm(embed_dim=HIDDEN, tie_weights=True), [0])


# =========================================================================== remove_vocabulary
def _vocab(size: int = VOCAB) -> Vocab:
    return Vocab([f"w{i}" for i in range(size - 4)])


@pytest.mark.parametrize("tied", [False, True])
def test_prune_vocabulary_lm(tied):
    model = tiny_rnn_lm("lstm", 2, embed_dim=HIDDEN, tie_weights=tied)
    before = _state(model)
    slim, small = remove_vocabulary(model, _vocab(), 12)
    assert slim.embedding.weight.shape == (12, HIDDEN) and slim.decoder.weight.shape == (12, HIDDEN)
    assert slim.decoder.bias.shape == (12,)
    assert (slim.decoder.weight is slim.embedding.weight) == tied
    ids = token_ids(3, 7, high=12)
    with torch.no_grad():
        torch.testing.assert_close(slim(ids)[0], model(ids)[0][..., :12], rtol=0, atol=1e-6)
    assert small.itos == _vocab().itos[:12] and small.specials == _vocab().specials
    assert small.encode(["w0", "w7", "w8", "w15", "<eos>"]) == [4, 11, 1, 1, 3]
    _assert_state_equal(model, before)


def test_prune_vocabulary_classifier_keeps_padding():
    model = tiny_rnn_classifier("gru", 2, bidirectional=True)
    slim, small = remove_vocabulary(model, _vocab(), 14)
    assert slim.embedding.weight.shape == (14, EMBED) and slim.embedding.padding_idx == 0
    assert len(small) == 14
    ids, lengths = padded_ids([s for s in SEQS if max(s) < 14])
    with torch.no_grad():
        torch.testing.assert_close(slim(ids, lengths), model(ids, lengths), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "vocab, keep, message",
    [
        (_vocab(), 4, "keep must be an int with 4 < keep <= 20"),
        (_vocab(), 21, "keep must be an int with 4 < keep <= 20"),
        (_vocab(), 10.0, "got 10.0"),
        (_vocab(), True, "got True"),
        (_vocab(VOCAB + 1), 10, "vocab has 21 tokens but the model's embedding has 20 rows"),
    ],
)
def test_prune_vocabulary_bad_arguments(vocab, keep, message):
    with pytest.raises(ValueError, match=message):
        remove_vocabulary(tiny_rnn_classifier(), vocab, keep)


def test_prune_vocabulary_needs_a_vocab_and_the_padding_row():
    with pytest.raises(TypeError, match="vocab must be a Vocab, got list"):
        remove_vocabulary(tiny_rnn_classifier(), list(_vocab().itos), 10)
    with pytest.raises(ValueError, match="padding_idx 15 would be dropped"):
        remove_vocabulary(tiny_rnn_classifier(pad_id=15), _vocab(), 10)


# =========================================================================== save_slim / load_slim
SAVE_CASES = {
    "slim bidirectional GRU classifier": lambda: remove_hidden_units(
        tiny_rnn_classifier("gru", 2, bidirectional=True, dropout=0.2, pad_id=3), {0: [1], 1: [2, 3]}),
    "slim tied LSTM LM": lambda: remove_hidden_units(tiny_rnn_lm("lstm", 3, embed_dim=HIDDEN, tie_weights=True),
                                                     {0: [4], 1: [0, 1]}),
    "original GRU LM": lambda: tiny_rnn_lm("gru", 2, dropout=0.1),
    "vocabulary-pruned slim classifier": lambda: remove_vocabulary(
        remove_embedding_dims(tiny_rnn_classifier("lstm", 1), [2]), _vocab(), 9)[0],
}


@pytest.mark.parametrize("case", list(SAVE_CASES))
def test_save_and_load_slim_round_trip(case, tmp_path):
    model = SAVE_CASES[case]()
    path = save_slim(model, tmp_path / "sub" / "model.safetensors")
    loaded = load_slim(path)
    assert type(loaded) is type(model) and type(loaded.rnn) is type(model.rnn) and not loaded.training
    assert hidden_sizes(loaded) == hidden_sizes(model) and loaded.cell == model.cell
    assert loaded.dropout.p == model.dropout.p and loaded.rnn.dropout == model.rnn.dropout
    assert loaded.embedding.padding_idx == model.embedding.padding_idx
    if isinstance(model, RNNLanguageModel):
        assert (loaded.decoder.weight is loaded.embedding.weight) == (model.decoder.weight is model.embedding.weight)
    _assert_state_equal(loaded, model.state_dict())
    kind = "lm" if isinstance(model, RNNLanguageModel) else "clf"
    with torch.no_grad():
        high = model.embedding.num_embeddings
        ids = token_ids(3, 6, high=high)
        a, b = (loaded(ids), model(ids)) if kind == "clf" else (loaded(ids)[0], model(ids)[0])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_slim_writes_the_architecture_as_json_metadata(tmp_path):
    path = save_slim(SAVE_CASES["slim bidirectional GRU classifier"](), tmp_path / "clf.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        arch = json.loads(fh.metadata()["meta"])["architecture"]
    assert arch == {"class": "RNNClassifier", "vocab_size": VOCAB, "embed_dim": EMBED, "hidden_sizes": [7, 6],
                    "cell": "gru", "bidirectional": True, "dropout": 0.2, "stacked": True,
                    "num_classes": CLASSES, "pad_id": 3}


def test_load_slim_rejects_unknown_classes_and_plain_checkpoints(tmp_path):
    model = tiny_rnn_lm("lstm", 1)
    path = save_checkpoint(model, tmp_path / "odd.safetensors", {"architecture": {"class": "Transformer"}})
    with pytest.raises(ValueError, match="unknown model class 'Transformer'; load_slim rebuilds RNNClassifier or"):
        load_slim(path)
    plain = save_checkpoint(model, tmp_path / "plain.safetensors", {"epochs": 1})
    with pytest.raises(ValueError, match="not written by save_slim"):
        load_slim(plain)


# =========================================================================== importance
def _l2_reference(model: nn.Module) -> list[torch.Tensor]:
    """Unit by unit, with boolean masks: sqrt of the sum of squares of the unit's weights (each once)."""
    gates = 4 if model.cell == "lstm" else 3
    d_all, layers = 2 if model.rnn.bidirectional else 1, model.rnn.num_layers
    scores = []
    for layer in range(layers):
        size = _rnn_param(model, layer, "weight_hh", 0).shape[1]
        layer_scores = torch.zeros(size)
        for unit in range(size):
            for d in range(d_all):
                rows = [g * size + unit for g in range(gates)]
                hh = _rnn_param(model, layer, "weight_hh", d).detach()
                mask = torch.zeros_like(hh, dtype=torch.bool)
                mask[rows, :] = True
                mask[:, unit] = True
                total = hh[mask].pow(2).sum()
                for kind in ("weight_ih", "bias_ih", "bias_hh"):
                    total += _rnn_param(model, layer, kind, d).detach()[rows].pow(2).sum()
                consumers = ([_head(model).weight] if layer == layers - 1
                             else [_rnn_param(model, layer + 1, "weight_ih", k) for k in range(d_all)])
                for weight in consumers:
                    total += weight.detach()[:, d * size + unit].pow(2).sum()
                layer_scores[unit] += total.sqrt()
        scores.append(layer_scores)
    return scores


@pytest.mark.parametrize("model_fn", [
    lambda: tiny_rnn_classifier("lstm", 1),
    lambda: tiny_rnn_classifier("gru", 2, bidirectional=True),
    lambda: remove_hidden_units(tiny_rnn_classifier("lstm", 2, bidirectional=True), {0: [3], 1: [1, 2]}),
    lambda: tiny_rnn_lm("lstm", 2, embed_dim=HIDDEN, tie_weights=True),
])
def test_l2_importance_equals_a_hand_computation(model_fn):
    model = model_fn()
    scores = hidden_unit_importance(model, "l2")
    expected = _l2_reference(model)
    assert [s.shape for s in scores] == [e.shape for e in expected]
    for s, e in zip(scores, expected):
        torch.testing.assert_close(s, e)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_activation_importance_equals_mean_abs_hidden_state_by_hand(bidirectional):
    model = tiny_rnn_classifier("lstm", 1, bidirectional=bidirectional)
    scores = hidden_unit_importance(model, "activation", data=rnn_classifier_batches())
    with torch.no_grad():  # each sequence alone, without padding, through nn.LSTM directly
        rows = torch.cat([model.rnn(model.embedding(torch.tensor([s])))[0][0] for s in SEQS])
    expected = rows.abs().mean(0).view(2 if bidirectional else 1, HIDDEN).sum(0)
    assert len(scores) == 1
    torch.testing.assert_close(scores[0], expected)


def test_activation_importance_of_a_two_layer_lm_by_hand():
    model = tiny_rnn_lm("gru", 2)
    batches = rnn_lm_batches()
    first = nn.GRU(EMBED, HIDDEN, batch_first=True)
    first.load_state_dict({k: v for k, v in model.rnn.state_dict().items() if k.endswith("l0")})
    with torch.no_grad():
        ids = torch.cat([b["input_ids"] for b in batches])
        expected = [first(model.embedding(ids))[0], model.rnn(model.embedding(ids))[0]]
    scores = hidden_unit_importance(model, "activation", data=batches)
    for s, h in zip(scores, expected):
        torch.testing.assert_close(s, h.abs().reshape(-1, HIDDEN).mean(0))


def _taylor_reference(model: nn.Module, batches, eps: float = 1e-6) -> list[torch.Tensor]:
    """Central differences of the loss in a gate scaling one unit's outgoing weights (per direction)."""
    d_all = 2 if model.rnn.bidirectional else 1
    scores = [torch.zeros(n, dtype=torch.float64) for n in hidden_sizes(model)]
    for batch in batches:
        for layer, size in enumerate(hidden_sizes(model)):
            for unit in range(size):
                for d in range(d_all):
                    losses = []
                    for factor in (1 + eps, 1 - eps):
                        probe = copy.deepcopy(model)
                        _scale_outgoing(probe, layer, unit, factor, directions=[d])
                        with torch.no_grad():
                            losses.append(default_loss(probe, batch))
                    scores[layer][unit] += abs((losses[0] - losses[1]) / (2 * eps)) / len(batches)
    return scores


@pytest.mark.parametrize("kind", ["clf-bi", "lm"])
def test_taylor_importance_equals_finite_differences(kind):
    model = tiny_rnn(kind, "lstm", 2).double()
    batches = rnn_classifier_batches() if kind != "lm" else rnn_lm_batches()
    scores = hidden_unit_importance(model, "taylor", data=batches)
    expected = _taylor_reference(model, batches)
    for s, e in zip(scores, expected):
        torch.testing.assert_close(s, e, rtol=1e-4, atol=1e-7)


def test_taylor_importance_shape_sign_and_dead_units():
    model = tiny_rnn_classifier("gru", 2, bidirectional=True)
    _scale_outgoing(model, 0, 2, 0.0)
    _scale_outgoing(model, 1, 5, 0.0)
    model.train()
    model.embedding.weight.requires_grad_(False)
    scores = hidden_unit_importance(model, "taylor", data=rnn_classifier_batches())
    assert [s.shape for s in scores] == [(HIDDEN,), (HIDDEN,)]
    assert all((s >= 0).all() for s in scores)
    assert scores[0][2] == 0 and scores[1][5] == 0
    assert (scores[0] > 0).sum() == HIDDEN - 1 and (scores[1] > 0).sum() == HIDDEN - 1
    # Mode, requires_grad flags and .grad fields are as before.
    assert model.training and not model.embedding.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_taylor_importance_uses_loss_fn():
    model = tiny_rnn_lm("gru", 1)
    batches = rnn_lm_batches()
    plain = hidden_unit_importance(model, "taylor", data=batches)
    doubled = hidden_unit_importance(model, "taylor", data=batches, loss_fn=lambda m, b: 2 * default_loss(m, b))
    torch.testing.assert_close(doubled[0], 2 * plain[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"criterion": "l1"}, "unknown criterion 'l1'; choose one of l2, activation, taylor"),
        ({"criterion": "activation"}, "criterion 'activation' needs data"),
        ({"criterion": "taylor"}, "criterion 'taylor' needs data"),
        ({"criterion": "activation", "data": []}, "data yielded no batches"),
        ({"criterion": "taylor", "data": []}, "data yielded no batches"),
    ],
)
def test_hidden_unit_importance_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hidden_unit_importance(tiny_rnn_classifier(), **kwargs)


# =========================================================================== helpers: units_to_remove, sizes, FLOPs
def test_units_to_remove_picks_the_lowest_scores():
    scores = [torch.tensor([0.5, 0.1, 0.9, 0.3]), torch.tensor([3.0, 1.0, 2.0])]
    assert units_to_remove(scores, 0.5) == {0: [1, 3], 1: [1, 2]}  # round(1.5) = 2
    assert units_to_remove(scores, 0.3) == {0: [1], 1: [1]}
    assert units_to_remove(scores, 0) == {0: [], 1: []}
    assert units_to_remove([torch.tensor([1.0, 1.0, 0.0, 1.0])], 0.5) == {0: [0, 2]}  # ties by index


def test_units_to_remove_feeds_remove_hidden_units():
    model = tiny_rnn_classifier("lstm", 2, bidirectional=True)
    units = units_to_remove(hidden_unit_importance(model), 0.25)
    assert hidden_sizes(remove_hidden_units(model, units)) == [6, 6]


@pytest.mark.parametrize("fraction", [1.0, -0.1, True, "0.5", None])
def test_units_to_remove_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        units_to_remove([torch.ones(4)], fraction)


def test_units_to_remove_bad_scores_and_whole_layers():
    with pytest.raises(ValueError, match="sparsity 0.9 would remove all 3 units of layer 1"):
        units_to_remove([torch.ones(10), torch.ones(3)], 0.9)
    for scores in ([], torch.ones(4), [torch.ones(2, 2)], [[1.0, 2.0]]):
        with pytest.raises(TypeError, match="scores must be a non-empty list of non-empty 1-D tensors"):
            units_to_remove(scores, 0.5)


def test_recurrent_flops_by_hand():
    model = tiny_rnn_classifier("lstm", 2, bidirectional=True)
    # 2 FLOPs per multiply-add * 2 directions * 10 steps * (4 * 8 * (6 + 8) + 4 * 8 * (16 + 8))
    assert recurrent_flops(model, 10) == 2 * 2 * 10 * (448 + 768) == 48640
    slim = remove_hidden_units(tiny_rnn_lm("gru", 2), {0: [0, 1, 2], 1: [7]})
    assert recurrent_flops(slim, 3) == 2 * 3 * (3 * 5 * (6 + 5) + 3 * 7 * (5 + 7)) == 2502
    # One multiply-add (2 FLOPs) per weight-matrix entry and step.
    for m in (model, slim, remove_hidden_units(model, {1: [4]})):
        matrices = sum(p.numel() for n, p in m.rnn.named_parameters() if n.split(".")[-1].startswith("weight"))
        assert recurrent_flops(m, 7) == 2 * 7 * matrices


@pytest.mark.parametrize("seq_len", [0, 2.5, True])
def test_recurrent_flops_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        recurrent_flops(tiny_rnn_classifier(), seq_len)


def test_hidden_sizes():
    assert hidden_sizes(tiny_rnn_classifier("gru", 3)) == [HIDDEN] * 3
    assert hidden_sizes(remove_hidden_units(tiny_rnn_classifier("gru", 3), {1: [0, 1]})) == [8, 6, 8]


def test_units_to_remove_is_the_shared_lowest_selection_per_layer():
    from nlpprune_lessons.structured.indices import lowest

    scores = [torch.tensor([0.3, 0.1, 0.1, 0.9, 0.0, 0.1]), torch.rand(7, generator=torch.Generator().manual_seed(0))]
    chosen = units_to_remove(scores, 0.5)
    assert chosen == {layer: lowest([s], round(0.5 * s.numel())).get(0, []) for layer, s in enumerate(scores)}
    assert chosen[0] == [1, 2, 4]  # ties at 0.1 go to the lower indices
