"""Recurrent models (RNNClassifier, RNNLanguageModel), parameter counts, checkpoints."""

from __future__ import annotations

import pytest
import torch

from nlpprune_lessons.core.checkpoints import cached_model, load_checkpoint, save_checkpoint
from nlpprune_lessons.measure.size import parameter_counts
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel

VOCAB = 20
CLASSES = 3


def _classifier(seed: int = 0, **kwargs) -> RNNClassifier:
    torch.manual_seed(seed)
    kwargs = {"embed_dim": 8, "hidden_size": 12, **kwargs}
    return RNNClassifier(VOCAB, CLASSES, **kwargs).eval()


def _lm(seed: int = 0, **kwargs) -> RNNLanguageModel:
    torch.manual_seed(seed)
    kwargs = {"embed_dim": 8, "hidden_size": 12, "num_layers": 2, **kwargs}
    return RNNLanguageModel(VOCAB, **kwargs).eval()


def _ids(batch: int, length: int, seed: int = 1, low: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, VOCAB, (batch, length), generator=g)


# =========================================================================== RNNClassifier
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_logits_shape(cell, num_layers, bidirectional):
    model = _classifier(cell=cell, num_layers=num_layers, bidirectional=bidirectional)
    input_ids = _ids(4, 7)
    assert model(input_ids).shape == (4, CLASSES)
    assert model(input_ids, torch.tensor([7, 3, 5, 1])).shape == (4, CLASSES)
    assert model.classifier.in_features == 12 * (2 if bidirectional else 1)
    assert model.rnn.num_layers == num_layers and model.rnn.bidirectional == bidirectional


@pytest.mark.parametrize("cell", ["rnn", "LSTM", "Gru", ""])
def test_unknown_cell_is_rejected(cell):
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNClassifier(VOCAB, CLASSES, embed_dim=4, hidden_size=4, cell=cell)
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNLanguageModel(VOCAB, embed_dim=4, hidden_size=4, cell=cell)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_forward_equals_unpacked_on_full_length_batch(cell, bidirectional):
    model = _classifier(cell=cell, num_layers=2, bidirectional=bidirectional)
    input_ids = _ids(3, 6)
    unpacked = model(input_ids)
    packed = model(input_ids, torch.full((3,), 6, dtype=torch.long))
    torch.testing.assert_close(packed, unpacked)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_is_skipped_with_lengths(cell, bidirectional):
    model = _classifier(cell=cell, num_layers=2, bidirectional=bidirectional)
    seqs = [[3, 7, 2], [5, 1, 9, 4, 8, 6], [11], [2, 2, 13, 4]]  # unsorted lengths
    lengths = torch.tensor([len(s) for s in seqs])
    input_ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)  # pad_id 0
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq)
    batched = model(input_ids, lengths)
    for row, seq in enumerate(seqs):
        alone = model(torch.tensor([seq]))
        torch.testing.assert_close(batched[row : row + 1], alone)
    # Without lengths the padding is read as input, so a padded row differs from the sequence alone.
    assert not torch.allclose(model(input_ids)[0], batched[0])


def test_dropout_only_in_training_mode():
    model = _classifier(num_layers=2, dropout=0.5)
    input_ids = _ids(8, 10)
    torch.testing.assert_close(model(input_ids), model(input_ids))
    model.train()
    torch.manual_seed(0)
    first = model(input_ids)
    assert not torch.allclose(first, model(input_ids))


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_bad_dropout_is_rejected(dropout):
    with pytest.raises(ValueError, match="dropout must be in"):
        RNNClassifier(VOCAB, CLASSES, embed_dim=4, hidden_size=4, dropout=dropout)


@pytest.mark.parametrize("model_fn", [_classifier, _lm])
def test_init_embeddings_copies_and_trains(model_fn):
    model = model_fn()
    weights = torch.randn(VOCAB, 8)
    model.init_embeddings(weights)
    assert torch.equal(model.embedding.weight, weights)
    assert model.embedding.weight is not weights  # copied, not aliased
    assert model.embedding.weight.requires_grad


def test_init_embeddings_freeze_stops_gradients():
    model = _classifier().train()
    weights = torch.randn(VOCAB, 8)
    model.init_embeddings(weights, freeze=True)
    assert not model.embedding.weight.requires_grad
    model(_ids(2, 5)).sum().backward()
    assert model.embedding.weight.grad is None
    assert model.rnn.weight_ih_l0.grad is not None
    assert torch.equal(model.embedding.weight, weights)


@pytest.mark.parametrize("model_fn", [_classifier, _lm])
def test_init_embeddings_wrong_shape(model_fn):
    model = model_fn()
    with pytest.raises(ValueError, match="embed_dim") as info:
        model.init_embeddings(torch.randn(VOCAB, 50))
    assert "embed_dim" in str(info.value)
    assert "(20, 8)" in str(info.value) and "(20, 50)" in str(info.value)
    with pytest.raises(ValueError, match="embed_dim"):
        model.init_embeddings(torch.randn(VOCAB + 1, 8))


# =========================================================================== RNNLanguageModel
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lm_logits_and_state_shapes(cell):
    model = _lm(cell=cell)
    logits, state = model(_ids(3, 5))
    assert logits.shape == (3, 5, VOCAB)
    if cell == "lstm":
        h, c = state
        assert h.shape == c.shape == (2, 3, 12)
    else:
        assert state.shape == (2, 3, 12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lm_state_carries_across_halves(cell):
    model = _lm(cell=cell)
    input_ids = _ids(2, 10)
    whole, whole_state = model(input_ids)
    first, state = model(input_ids[:, :4])
    second, end_state = model(input_ids[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    for a, b in zip(end_state if cell == "lstm" else [end_state],
                    whole_state if cell == "lstm" else [whole_state]):
        torch.testing.assert_close(a, b)
    # Without the state, the second half starts from zeros and differs.
    fresh, _ = model(input_ids[:, 4:])
    assert not torch.allclose(fresh, second)


def test_tied_weights_share_one_parameter():
    model = _lm(embed_dim=12, hidden_size=12, tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    untied = _lm(embed_dim=12, hidden_size=12)
    assert untied.decoder.weight is not untied.embedding.weight
    # Tied: one parameter fewer in model.parameters(), V*H fewer entries.
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == VOCAB * 12
    # Training the decoder moves the embedding too.
    model.train()
    logits, _ = model(_ids(2, 4))
    logits.sum().backward()
    assert model.embedding.weight.grad is not None


def test_tied_weights_need_equal_sizes():
    with pytest.raises(ValueError, match="tie_weights needs embed_dim == hidden_size, got 8 and 12"):
        RNNLanguageModel(VOCAB, embed_dim=8, hidden_size=12, tie_weights=True)


def test_generate_greedy_is_deterministic_and_matches_argmax_chain():
    model = _lm()
    prompt = [4, 9, 1]
    out = model.generate(prompt, max_new_tokens=3, temperature=0)
    assert len(out) == 3 and out == model.generate(prompt, max_new_tokens=3, temperature=0)
    # Reference: re-run the whole sequence each step (no carried state) and take the argmax.
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(3):
            logits, _ = model(torch.tensor([seq]))
            seq.append(int(logits[0, -1].argmax()))
    assert out == seq[len(prompt):]


def test_generate_sampling_is_reproducible_with_a_generator():
    model = _lm()
    runs = [model.generate([3], max_new_tokens=20, temperature=1.5,
                           generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(runs[0]) == 20 and all(0 <= t < VOCAB for t in runs[0])
    other = model.generate([3], max_new_tokens=20, temperature=1.5, generator=torch.Generator().manual_seed(8))
    assert other != runs[0]


def test_generate_stops_at_stop_id_and_includes_it():
    model = _lm()
    full = model.generate([2, 5], max_new_tokens=12, temperature=0)
    stop = full[3]
    first = full.index(stop)
    out = model.generate([2, 5], max_new_tokens=12, temperature=0, stop_id=stop)
    assert out == full[: first + 1]
    assert out[-1] == stop and len(out) < 12


def test_generate_restores_training_mode():
    model = _lm(dropout=0.3).train()
    model.generate([1], max_new_tokens=2, temperature=0)
    assert model.training
    model.eval()
    model.generate([1], max_new_tokens=2, temperature=0)
    assert not model.training


def test_generate_zero_new_tokens():
    assert _lm().generate([1, 2], max_new_tokens=0) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt_ids": []}, "at least one token"),
        ({"temperature": -0.5}, ">= 0"),
        ({"max_new_tokens": -1}, ">= 0"),
    ],
)
def test_generate_bad_arguments(kwargs, message):
    kwargs = {"prompt_ids": [1], "max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        _lm().generate(**kwargs)


# =========================================================================== parameter_counts
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_parameter_counts_classifier(cell):
    model = _classifier(cell=cell, num_layers=2, bidirectional=True)
    table = parameter_counts(model)
    assert table["module"].tolist() == ["embedding", "rnn", "classifier"]
    assert table["kind"].tolist() == ["embedding", "recurrent", "linear"]
    assert table["type"].tolist() == ["Embedding", cell.upper(), "Linear"]
    counts = dict(zip(table["module"], table["parameters"]))
    assert counts["embedding"] == VOCAB * 8
    assert counts["classifier"] == 24 * CLASSES + CLASSES
    assert counts["rnn"] == sum(p.numel() for p in model.rnn.parameters())
    assert table["parameters"].sum() == sum(p.numel() for p in model.parameters())
    assert table["share"].sum() == pytest.approx(1.0, abs=1e-3)


def test_parameter_counts_lstm_formula():
    model = _classifier(embed_dim=8, hidden_size=12)  # one unidirectional LSTM layer
    counts = dict(zip(*[parameter_counts(model)[c] for c in ("module", "parameters")]))
    assert counts["rnn"] == 4 * (12 * 8 + 12 * 12 + 2 * 12)


def test_parameter_counts_tied_lm_counts_shared_weight_once():
    model = _lm(embed_dim=12, hidden_size=12, tie_weights=True)
    table = parameter_counts(model)
    counts = dict(zip(table["module"], table["parameters"]))
    assert counts["embedding"] == VOCAB * 12
    assert counts["decoder"] == VOCAB  # the bias only; the weight is the embedding's
    assert table["parameters"].sum() == sum(p.numel() for p in model.parameters())
    assert table["kind"].tolist() == ["embedding", "recurrent", "linear"]


# =========================================================================== checkpoints
def test_checkpoint_round_trip(tmp_path):
    model = _classifier(seed=0, num_layers=2)
    meta = {"epochs": 3, "val_accuracy": 0.875, "tags": ["a", "b"]}
    path = save_checkpoint(model, tmp_path / "sub" / "clf.safetensors", meta)
    assert path == tmp_path / "sub" / "clf.safetensors" and path.is_file()
    assert not list(path.parent.glob("*.tmp"))
    other = _classifier(seed=1, num_layers=2)
    input_ids = _ids(4, 6)
    assert not torch.allclose(other(input_ids), model(input_ids))
    assert load_checkpoint(other, path) == meta
    torch.testing.assert_close(other(input_ids), model(input_ids), rtol=0, atol=0)
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_without_meta_returns_empty_dict(tmp_path):
    model = _lm()
    path = save_checkpoint(model, str(tmp_path / "lm.safetensors"))
    assert load_checkpoint(_lm(seed=3), path) == {}


def test_checkpoint_tied_lm_round_trip(tmp_path):
    model = _lm(embed_dim=12, hidden_size=12, tie_weights=True)
    path = save_checkpoint(model, tmp_path / "tied.safetensors", {"tied": True})
    other = _lm(seed=5, embed_dim=12, hidden_size=12, tie_weights=True)
    assert load_checkpoint(other, path) == {"tied": True}
    assert other.decoder.weight is other.embedding.weight
    input_ids = _ids(2, 5)
    torch.testing.assert_close(other(input_ids)[0], model(input_ids)[0], rtol=0, atol=0)


def test_checkpoint_into_other_architecture_fails(tmp_path):
    path = save_checkpoint(_classifier(), tmp_path / "clf.safetensors")
    with pytest.raises(RuntimeError):
        load_checkpoint(_classifier(hidden_size=6), path)
    with pytest.raises(RuntimeError):
        load_checkpoint(_classifier(num_layers=2), path)  # extra layer-1 weights: strict


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPPRUNE_CACHE", str(tmp_path))
    monkeypatch.setenv("NLPPRUNE_FAST", "1")
    return tmp_path


def _recipe_funcs():
    calls = []

    def build():
        return RNNClassifier(VOCAB, CLASSES, embed_dim=8, hidden_size=12).eval()  # fresh random init

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.classifier.bias.fill_(0.25 * len(calls))
        return {"val_accuracy": 0.5, "epochs": 2}

    return build, train, calls


def test_cached_model_trains_once(cache):
    build, train, calls = _recipe_funcs()
    recipe = {"lr": 0.01, "epochs": 2, "seed": 0}
    model, meta, cached = cached_model("clf", recipe, build, train)
    assert not cached and len(calls) == 1
    assert meta == {"recipe": recipe, "val_accuracy": 0.5, "epochs": 2}
    files = list((cache / "checkpoints").glob("*.safetensors"))
    assert len(files) == 1 and files[0].name.startswith("clf-fast-")

    again, meta2, cached2 = cached_model("clf", dict(reversed(list(recipe.items()))), build, train)
    assert cached2 and len(calls) == 1  # key order does not matter; train not called
    assert meta2 == meta
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    input_ids = _ids(3, 4)
    torch.testing.assert_close(again(input_ids), model(input_ids), rtol=0, atol=0)


def test_cached_model_retrains_for_a_new_recipe_name_or_mode(cache, monkeypatch):
    build, train, calls = _recipe_funcs()
    cached_model("clf", {"lr": 0.01}, build, train)
    _, meta, cached = cached_model("clf", {"lr": 0.02}, build, train)
    assert not cached and len(calls) == 2 and meta["recipe"] == {"lr": 0.02}
    _, _, cached = cached_model("other", {"lr": 0.01}, build, train)
    assert not cached and len(calls) == 3
    monkeypatch.setenv("NLPPRUNE_FAST", "0")
    _, _, cached = cached_model("clf", {"lr": 0.01}, build, train)
    assert not cached and len(calls) == 4
    names = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1]
                   for p in (cache / "checkpoints").glob("*.safetensors"))
    assert names == ["clf-fast", "clf-fast", "clf-full", "other-fast"]
    # Each recipe still loads its own weights (bias set by its training call: the second one).
    monkeypatch.setenv("NLPPRUNE_FAST", "1")
    model, _, cached = cached_model("clf", {"lr": 0.02}, build, train)
    assert cached and len(calls) == 4
    assert torch.allclose(model.classifier.bias, torch.full((CLASSES,), 0.5))


def test_classifier_rejects_a_pad_id_outside_the_vocabulary():
    with pytest.raises(ValueError, match="pad_id 10 is outside"):
        RNNClassifier(10, 2, pad_id=10)


def test_parameter_counts_of_a_parameterless_module_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        parameter_counts(torch.nn.Dropout())
