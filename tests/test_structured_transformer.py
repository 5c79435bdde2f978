"""Lesson 08: head/FFN-neuron/layer removal on a tiny BERT (sdpa and eager) checked against the
equivalent zeroed or hand-run model; importance scores against hand and finite-difference
computations; slim save/load; the ValueError cases."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_bert as shared_tiny_bert
from tiny_models import toy_loader as shared_toy_loader
from transformers import BertConfig, BertForSequenceClassification, BertModel

from nlpprune_lessons.lessons.l08_slim_bert import RECOVERY
from nlpprune_lessons.losses import classification_loss
from nlpprune_lessons.structured.indices import lowest
from nlpprune_lessons.structured.io import load_slim, save_slim
from nlpprune_lessons.structured.transformer import (
    encoder_flops,
    ffn_neuron_importance,
    head_gates,
    head_importance,
    layer_importance,
    layer_shapes,
    remove_ffn_neurons,
    remove_heads,
    remove_layers,
    slim_summary,
)

ATTENTION = ["sdpa", "eager"]


def tiny_bert(attn: str = "sdpa", seed: int = 0, layers: int = 3) -> BertForSequenceClassification:
    """Three layers, FFN 24 wide, dropout 0.1 (so eval mode matters), in eval mode."""
    return shared_tiny_bert(attn, seed, layers, intermediate_size=24, dropout=0.1).eval()


def toy_loader(n: int = 24, seed: int = 1, batch_size: int = 8):
    return shared_toy_loader(n, seed, batch_size, shuffle=False)


def batch():
    return next(iter(toy_loader(n=8)))


def logits(model, b):
    with torch.no_grad():
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits


# --------------------------------------------------------------------------- removal == zeroing
@pytest.mark.parametrize("attn", ATTENTION)
def test_removing_heads_whose_output_columns_are_zero_leaves_logits_unchanged(attn):
    model, b = tiny_bert(attn), batch()
    heads = {0: [1, 3], 2: [0], 1: [2, 0, 1]}
    size = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for layer, removed in heads.items():
            dense = model.bert.encoder.layer[layer].attention.output.dense
            for h in removed:
                dense.weight[:, h * size:(h + 1) * size] = 0
    slim = remove_heads(model, heads)
    torch.testing.assert_close(logits(slim, b), logits(model, b), atol=1e-5, rtol=0)
    assert [s["heads"] for s in layer_shapes(slim)] == [2, 1, 3]
    attention = slim.bert.encoder.layer[1].attention.self
    assert attention.query.weight.shape == (size, 32) and attention.all_head_size == size
    assert slim.bert.encoder.layer[1].attention.output.dense.weight.shape == (32, size)
    assert [s["heads"] for s in layer_shapes(model)] == [4, 4, 4]  # the input model is untouched


@pytest.mark.parametrize("attn", ATTENTION)
def test_removed_heads_are_the_ones_named(attn):
    """The kept heads' query rows are the original rows of those heads, in order."""
    model = tiny_bert(attn)
    slim = remove_heads(model, {0: [0, 2]})
    q, size = model.bert.encoder.layer[0].attention.self.query.weight, 8
    expected = torch.cat([q[size:2 * size], q[3 * size:]])
    torch.testing.assert_close(slim.bert.encoder.layer[0].attention.self.query.weight, expected, atol=0, rtol=0)


@pytest.mark.parametrize("attn", ATTENTION)
def test_removing_ffn_neurons_whose_output_columns_are_zero_leaves_logits_unchanged(attn):
    model, b = tiny_bert(attn), batch()
    neurons = {0: list(range(0, 24, 2)), 2: [5, 23, 0]}
    with torch.no_grad():
        for layer, removed in neurons.items():
            model.bert.encoder.layer[layer].output.dense.weight[:, removed] = 0
    slim = remove_ffn_neurons(model, neurons)
    torch.testing.assert_close(logits(slim, b), logits(model, b), atol=1e-5, rtol=0)
    assert [s["intermediate"] for s in layer_shapes(slim)] == [12, 24, 21]


@pytest.mark.parametrize("attn", ATTENTION)
def test_drop_layers_equals_running_the_remaining_layers_by_hand(attn):
    model, b = tiny_bert(attn, layers=4), batch()
    slim = remove_layers(model, [1, 3])
    assert slim.config.num_hidden_layers == 2 and len(slim.bert.encoder.layer) == 2
    assert [layer.attention.self.layer_idx for layer in slim.bert.encoder.layer] == [0, 1]
    with torch.no_grad():
        hidden = model.bert.embeddings(input_ids=b["input_ids"])
        mask = (1.0 - b["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
        for index in (0, 2):
            hidden = model.bert.encoder.layer[index](hidden, attention_mask=mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        by_hand = model.classifier(model.bert.pooler(hidden))
    torch.testing.assert_close(logits(slim, b), by_hand, atol=1e-5, rtol=0)
    assert model.config.num_hidden_layers == 4


@pytest.mark.parametrize("attn", ATTENTION)
def test_all_three_removals_combine_and_train(attn):
    """A slim model is a normal model: it trains (gradients reach every kept weight)."""
    model = tiny_bert(attn)
    slim = remove_layers(remove_ffn_neurons(remove_heads(model, {0: [0], 1: [1, 2]}), {2: [0, 1]}), [1])
    slim.train()
    loss = classification_loss(slim, batch())
    loss.backward()
    assert all(p.grad is not None for p in slim.bert.encoder.parameters())
    assert [(s["heads"], s["intermediate"]) for s in layer_shapes(slim)] == [(3, 24), (4, 22)]


def test_bert_model_without_head_is_supported():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=24, max_position_embeddings=32)
    model, b = BertModel(config).eval(), batch()
    with torch.no_grad():
        model.encoder.layer[1].attention.output.dense.weight[:, 8:16] = 0
        ref = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        out = remove_heads(model, {1: [1]})(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    torch.testing.assert_close(out.last_hidden_state, ref, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("attn", ATTENTION)
def test_save_and_load_slim_is_exact(tmp_path, attn):
    model, b = tiny_bert(attn), batch()
    slim = remove_layers(remove_ffn_neurons(remove_heads(model, {0: [0, 1], 2: [3]}), {1: [0, 4, 9]}), [0])
    path = save_slim(slim, tmp_path / "slim.safetensors")
    loaded = load_slim(path, attn_implementation=attn)
    assert type(loaded) is BertForSequenceClassification and not loaded.training
    assert layer_shapes(loaded) == layer_shapes(slim)
    assert loaded.config._attn_implementation == attn
    for (name, a), (_, c) in zip(slim.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, c), name
    torch.testing.assert_close(logits(loaded, b), logits(slim, b), atol=0, rtol=0)
    assert path.stat().st_size < save_slim(model, tmp_path / "dense.safetensors").stat().st_size


def test_load_slim_refuses_other_files(tmp_path):
    from nlpprune_lessons.core.checkpoints import save_checkpoint

    path = save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "other.safetensors", {"architecture": {}})
    with pytest.raises(ValueError, match="not written by save_slim"):
        load_slim(path)
    with pytest.raises(ValueError, match="attn_implementation"):
        load_slim(path, attn_implementation="flash")


# --------------------------------------------------------------------------- importance
def test_head_importance_equals_a_finite_difference_estimate():
    model = tiny_bert("eager", layers=2).double()
    loader = toy_loader(n=16, batch_size=8)
    scores = head_importance(model, loader)
    assert scores.shape == (2, 4)
    eps, expected = 1e-5, torch.zeros(2, 4, dtype=torch.float64)
    with head_gates(model, requires_grad=False) as gates:
        for b in loader:
            for layer in range(2):
                for head in range(4):
                    losses = []
                    for value in (1 + eps, 1 - eps):
                        gates[layer][head] = value
                        with torch.no_grad():
                            losses.append(classification_loss(model, b).item())
                        gates[layer][head] = 1.0
                    expected[layer, head] += abs(losses[0] - losses[1]) / (2 * eps)
    torch.testing.assert_close(scores.double(), expected, rtol=1e-4, atol=1e-7)
    assert not model.bert.encoder.layer[0].attention.self._forward_hooks  # gates removed afterwards


def test_head_importance_of_a_pruned_model_pads_with_nan_and_normalizes():
    model = remove_heads(tiny_bert(), {1: [0, 1]}).train()
    scores = head_importance(model, toy_loader(), normalize=True)
    assert scores.shape == (3, 4) and scores[1, 2:].isnan().all() and not scores[0].isnan().any()
    torch.testing.assert_close(scores[0].norm(), torch.tensor(1.0))
    assert model.training  # the scores are taken in eval mode, then the mode comes back
    with torch.no_grad():  # gates need gradients even when the caller turned them off
        torch.testing.assert_close(head_importance(model, toy_loader(), normalize=True), scores, equal_nan=True)


def test_ffn_taylor_score_is_the_gradient_of_a_neuron_gate():
    """Taylor score = |sum over tokens of activation * dL/dactivation|, per batch, summed."""
    model, loader = tiny_bert("eager"), toy_loader(n=8)
    scores = ffn_neuron_importance(model, "taylor", loader)
    acts = {}
    layer = model.bert.encoder.layer[1].intermediate
    handle = layer.register_forward_hook(lambda m, a, out: acts.setdefault("a", out.retain_grad() or out))
    b = next(iter(loader))
    classification_loss(model, b).backward()
    handle.remove()
    expected = (acts["a"] * acts["a"].grad).sum((0, 1)).abs()
    torch.testing.assert_close(scores[1], expected, rtol=1e-4, atol=1e-8)


def test_ffn_l2_and_activation_scores_by_hand():
    model, loader = tiny_bert(), toy_loader(n=8)
    layer = model.bert.encoder.layer[0]
    l2 = ffn_neuron_importance(model, criterion="l2")
    expected = (layer.intermediate.dense.weight.pow(2).sum(1) + layer.output.dense.weight.pow(2).sum(0)).sqrt()
    torch.testing.assert_close(l2[0], expected.detach())
    act = ffn_neuron_importance(model, "activation", loader)
    b = next(iter(loader))
    with torch.no_grad():
        hidden = model.bert(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                            output_hidden_states=True).hidden_states[0]
        a = layer.intermediate(layer.attention(hidden, attention_mask=_additive(b))[0])
    mask = b["attention_mask"].bool()
    torch.testing.assert_close(act[0], a[mask].abs().mean(0), rtol=1e-5, atol=1e-6)  # padding not counted
    assert [s.numel() for s in act] == [24, 24, 24]


def _additive(b):
    return (1.0 - b["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min


def test_layer_importance_is_the_loss_rise_when_dropping_each_layer():
    model, loader = tiny_bert(), toy_loader(n=8)
    scores = layer_importance(model.train(), loader)
    assert model.training
    model.eval()
    b = next(iter(loader))
    base = classification_loss(model, b).item()
    for i in range(3):
        assert scores[i].item() == pytest.approx(classification_loss(remove_layers(model, [i]), b).item() - base,
                                                 abs=1e-6)


def test_lowest_takes_the_smallest_scores_and_keeps_one_per_layer():
    scores = torch.tensor([[0.1, 0.2, 5.0], [0.05, 0.3, float("nan")]])
    assert lowest(scores, 2) == {0: [0], 1: [0]}
    assert lowest(scores, 3) == {0: [0, 1], 1: [0]}  # layer 1 keeps its last head
    assert lowest([torch.tensor([3.0, 1.0]), torch.tensor([2.0])], 1) == {0: [1]}
    with pytest.raises(ValueError, match="only 3 removable"):
        lowest(scores, 4)
    with pytest.raises(ValueError, match="count"):
        lowest(scores, -1)
    with pytest.raises(ValueError, match="NaN before a real score"):
        lowest(torch.tensor([[0.5, float("nan"), 0.2]]), 1)


def test_encoder_flops_by_hand_and_after_pruning():
    model = tiny_bert(layers=2)
    t, h, k = 10, 32, 24
    per_layer = 4 * t * h * h + 2 * t * t * h + 2 * t * h * k
    assert encoder_flops(model, t) == 2 * 2 * per_layer
    slim = remove_heads(model, {0: [0, 1]})
    assert encoder_flops(slim, t) == 2 * (per_layer + 4 * t * h * 16 + 2 * t * t * 16 + 2 * t * h * k)
    table = slim_summary(slim)
    assert table.loc["0", "heads"] == 2 and table.loc["total", "parameters"] == sum(p.numel() for p in slim.parameters())


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("heads, message", [
    ({0: [0, 1, 2, 3]}, "cannot remove all 4 heads of layer 0"),
    ({0: [1, 1]}, "listed more than once"),
    ({0: [4]}, "out of range"),
    ({3: [0]}, "layer index 3 is out of range"),
    ({0: [True]}, "must be an int"),
    ({0: 2}, "sequence of int indices"),
])
def test_prune_heads_rejects_bad_plans(heads, message):
    with pytest.raises(ValueError, match=message):
        remove_heads(tiny_bert(), heads)


def test_other_bad_input():
    model = tiny_bert()
    with pytest.raises(TypeError, match="dict"):
        remove_heads(model, [(0, [1])])
    with pytest.raises(ValueError, match="cannot remove all 24 FFN neurons"):
        remove_ffn_neurons(model, {0: range(24)})
    with pytest.raises(ValueError, match="cannot remove all 3 encoder layers"):
        remove_layers(model, [0, 1, 2])
    with pytest.raises(TypeError, match="BertModel"):
        remove_heads(torch.nn.Linear(2, 2), {})
    with pytest.raises(ValueError, match="criterion"):
        ffn_neuron_importance(model, criterion="random")
    with pytest.raises(ValueError, match="needs data"):
        ffn_neuron_importance(model, criterion="taylor")
    with pytest.raises(TypeError, match="iterable of batches"):
        head_importance(model, batch())
    with pytest.raises(ValueError, match="seq_len"):
        encoder_flops(model, 0)


def test_masked_models_are_refused():
    from nlpprune_lessons.pruning import prune

    model = tiny_bert()
    prune(model, 0.5)
    with pytest.raises(ValueError, match="make_permanent"):
        remove_heads(model, {0: [0]})


# --------------------------------------------------------------------------- recovery
def test_hidden_state_loss_by_hand_ignores_padding():
    from nlpprune_lessons.losses import hidden_state_loss

    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3, 4, generator=g) for _ in range(3)]
    teacher = [torch.randn(2, 3, 4, generator=g) for _ in range(5)]
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    keep = mask.bool()
    expected = ((student[1][keep] - teacher[2][keep]).pow(2).mean() + (student[2][keep] - teacher[4][keep]).pow(2).mean()) / 2
    torch.testing.assert_close(hidden_state_loss(student, teacher, {1: 2, 2: 4}, mask), expected)
    with pytest.raises(ValueError, match="teacher hidden state 5"):
        hidden_state_loss(student, teacher, {1: 5}, mask)
    with pytest.raises(ValueError, match="non-empty dict"):
        hidden_state_loss(student, teacher, {}, mask)


def test_train_classifier_checks_hidden_distillation_settings():
    from nlpprune_lessons.training.loop import train_classifier

    model, loader = tiny_bert(), toy_loader()
    with pytest.raises(ValueError, match="needs a teacher"):
        train_classifier(model, loader, loader, epochs=1, kd_hidden_map={1: 1})
    with pytest.raises(ValueError, match="kd_hidden_weight"):
        train_classifier(model, loader, loader, epochs=1, teacher=tiny_bert(), kd_hidden_map={1: 1}, kd_hidden_weight=0)


def test_frozen_embeddings_freezes_then_restores_each_table():
    from nlpprune_lessons.training.freezing import frozen_embeddings

    model = tiny_bert()
    model.bert.embeddings.token_type_embeddings.weight.requires_grad_(False)
    with frozen_embeddings(model):
        assert not any(p.requires_grad for p in model.bert.embeddings.word_embeddings.parameters())
        assert model.classifier.weight.requires_grad
    assert model.bert.embeddings.word_embeddings.weight.requires_grad
    assert not model.bert.embeddings.token_type_embeddings.weight.requires_grad


@pytest.mark.slow
def test_slim_with_recovery_runs_the_plan_and_recovers_with_hidden_distillation(monkeypatch):
    from nlpprune_lessons.structured import slimming
    from nlpprune_lessons.structured.slimming import latency_table, slim_with_recovery, speed_accuracy

    maps, recover = [], slimming.recover
    monkeypatch.setattr(slimming, "recover", lambda *a, **k: maps.append(k["hidden_map"]) or recover(*a, **k))
    monkeypatch.setattr(slimming, "layer_importance", lambda model, data: torch.tensor([0.3, 0.1, 0.2]))

    dense = tiny_bert(layers=3)
    loaders = {"train": toy_loader(n=32, seed=1), "validation": toy_loader(n=16, seed=2),
               "test": toy_loader(n=16, seed=3)}
    embedding = dense.bert.embeddings.word_embeddings.weight.clone()
    recipe = RECOVERY | dict(lr=1e-3)
    records, models = slim_with_recovery(dense, loaders, [("heads", 0.5), ("ffn", 0.25), ("layers", 1)], recipe,
                                         hidden_distill=True, score_batches=2, progress=False)
    assert [r["stage"] for r in records] == ["dense", "heads", "heads + ffn", "heads + ffn + layers"]
    assert maps == [{1: 1, 2: 2, 3: 3}] * 2 + [{1: 1, 2: 3}]  # layer 1 dropped: student layer 2 learns from teacher 3
    assert records[-1]["removed"] == [1]
    final = models["heads + ffn + layers"]
    assert len(layer_shapes(final)) == 2 and sum(s["heads"] for s in layer_shapes(final)) <= 4
    assert [r["heads"] for r in records] == [12, 6, 6, records[-1]["heads"]]
    assert [r["ffn_neurons"] for r in records][:3] == [72, 72, 54]
    assert records[-1]["parameters"] < records[0]["parameters"] and records[-1]["file_MB"] < records[0]["file_MB"]
    assert all(r["steps"] == 4 for r in records[1:])
    assert torch.equal(models["heads"].bert.embeddings.word_embeddings.weight, embedding)  # frozen while recovering
    assert layer_shapes(models["dense"]) == layer_shapes(dense) and models["dense"] is dense
    latency = latency_table({k: models[k] for k in ("dense", "heads + ffn + layers")}, batch_sizes=(2,),
                            seq_lens=(8,), rounds=1, repeats=3, warmup=0)
    assert len(latency) == 2 and latency.speedup.iloc[0] == 1.0
    assert (latency.speedup_q1 <= latency.speedup).all() and (latency.speedup <= latency.speedup_q3).all()
    assert all(0 < r["test_accuracy_se"] < 1 and "before_validation_accuracy_se" in r for r in records)
    table = speed_accuracy([records[0], records[-1]], latency, batch=2, seq_len=8)
    assert table.flop_ratio.iloc[1] > 1 and table.speedup.notna().all()


@pytest.mark.slow
def test_dense_control_trains_an_uncut_copy_as_long_as_the_plan_with_the_same_recipe(monkeypatch):
    from nlpprune_lessons.structured import slimming
    from nlpprune_lessons.structured.slimming import dense_control

    calls, recover = [], slimming.recover
    monkeypatch.setattr(slimming, "recover", lambda *a, **k: calls.append((a[1], k["hidden_map"])) or recover(*a, **k))
    dense = tiny_bert(layers=3)
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    loaders = {"train": toy_loader(n=32, seed=1), "validation": toy_loader(n=16, seed=2),
               "test": toy_loader(n=16, seed=3)}
    record, control = dense_control(dense, loaders, RECOVERY | dict(lr=1e-3), 3, hidden_distill=True)
    assert [teacher is dense for teacher, _ in calls] == [True] * 3  # distilled from the untouched dense model
    assert calls[0][1] == {1: 1, 2: 2, 3: 3}
    assert record["rounds"] == 3 and record["steps"] == 3 * 4 and record["stage"] == "dense control"
    assert 0 < record["test_accuracy_se"] < 1 and layer_shapes(control) == layer_shapes(dense)
    assert all(torch.equal(v, dense.state_dict()[k]) for k, v in before.items())  # the teacher is not trained
    assert torch.equal(control.bert.embeddings.word_embeddings.weight, dense.bert.embeddings.word_embeddings.weight)
    assert not torch.equal(control.classifier.weight, dense.classifier.weight) and not control.training
    calls.clear()
    dense_control(dense, loaders, RECOVERY | dict(lr=1e-3), 1, distill=False)
    assert calls == [(None, None)]


@pytest.mark.parametrize("kwargs, message", [
    (dict(rounds=0), "rounds must be"), (dict(rounds=True), "rounds must be"),
    (dict(rounds=1, distill=False, hidden_distill=True), "hidden_distill needs"),
    (dict(rounds=1, recipe={"lr": 1e-3}), "missing"),
])
def test_dense_control_rejects_bad_arguments(kwargs, message):
    from nlpprune_lessons.structured.slimming import dense_control

    kwargs = dict(recipe=RECOVERY) | kwargs
    with pytest.raises(ValueError, match=message):
        dense_control(tiny_bert(), {"train": toy_loader()}, **kwargs)


@pytest.mark.parametrize("plan, message", [
    ([("heads", 1.0)], "fraction in"), ([("layers", 0.5)], "int n >= 1"), ([("rows", 0.5)], "kind in"),
    ("heads", "sequence of"),
])
def test_slim_with_recovery_rejects_bad_plans(plan, message):
    from nlpprune_lessons.structured.slimming import slim_with_recovery

    with pytest.raises((ValueError, TypeError), match=message):
        slim_with_recovery(tiny_bert(), {"train": toy_loader()}, plan, RECOVERY)


@pytest.mark.parametrize("recipe, error, message", [
    ({"lr": 1e-3}, ValueError, "missing .'epochs'"), (RECOVERY | {"lr_decay": 1}, ValueError, "unknown .'lr_decay'"),
    ([("lr", 1e-3)], TypeError, "recipe must be a dict"),
])
def test_slim_with_recovery_rejects_bad_recipes(recipe, error, message):
    from nlpprune_lessons.structured.slimming import slim_with_recovery

    with pytest.raises(error, match=message):
        slim_with_recovery(tiny_bert(), {"train": toy_loader()}, [("heads", 0.5)], recipe)


def test_head_columns_exercise_check_accepts_the_answer_and_rejects_a_wrong_one():
    from nlpprune_lessons.lessons.exercises import ExerciseError, check_head_columns

    check_head_columns(lambda head, size: range(head * size, (head + 1) * size))
    with pytest.raises(ExerciseError, match="contiguous block"):
        check_head_columns(lambda head, size: range(head, head + size))


# --------------------------------------------------------------------------- vocabulary
def test_prune_vocabulary_keeps_the_outputs_of_kept_ids_and_maps_the_rest_to_unk(tmp_path):
    from nlpprune_lessons.structured.transformer import remove_vocabulary, vocabulary_map

    model, b = tiny_bert(), batch()
    ids = b["input_ids"]
    keep = sorted(set(ids.flatten().tolist()) - {int(ids[0, 1])})  # one id of the first row goes
    slim = remove_vocabulary(model, keep, unk_id=5)
    assert slim.config.vocab_size == len(set(keep) | {0, 5}) and vocabulary_map(model) is None
    mapping = vocabulary_map(slim)
    assert mapping[5] == slim.config.nlpprune_unk_id and mapping[0] == slim.config.pad_token_id == 0
    expected_ids = torch.where(torch.isin(ids, torch.tensor(keep + [0])), ids, torch.tensor(5))
    with torch.no_grad():
        ref = model(input_ids=expected_ids, attention_mask=b["attention_mask"]).logits
        out = slim(input_ids=mapping[ids], attention_mask=b["attention_mask"]).logits
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    loaded = load_slim(save_slim(slim, tmp_path / "v.safetensors"))
    assert torch.equal(vocabulary_map(loaded), mapping)
    torch.testing.assert_close(loaded(input_ids=mapping[ids], attention_mask=b["attention_mask"]).logits, out,
                               atol=0, rtol=0)
    with pytest.raises(ValueError, match="already pruned"):
        remove_vocabulary(slim, keep, unk_id=5)
    with pytest.raises(ValueError, match="token id 60 is out of range"):
        remove_vocabulary(model, [1, 60], unk_id=5)
