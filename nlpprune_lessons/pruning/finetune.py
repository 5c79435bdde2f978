"""Pruning while fine-tuning a classifier (lesson 07): one-shot magnitude then fine-tuning, gradual
magnitude with the cubic schedule, movement pruning and soft movement pruning, each optionally
distilled from a fine-tuned teacher. Every method gets the same number of optimiser steps and the
same learning-rate schedule."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.measure.memory import release_memory
from nlpprune_lessons.pruning.masks import SCOPES, prune
from nlpprune_lessons.pruning.movement import MovementPruner, SoftMovementPruner
from nlpprune_lessons.pruning.report import sparsity_report
from nlpprune_lessons.pruning.schedule import GradualPruner
from nlpprune_lessons.training.freezing import frozen_embeddings
from nlpprune_lessons.training.loop import train_classifier

#: How the zeros are chosen and when, for a target sparsity ...
SPARSE_METHODS = ("one-shot", "gradual", "movement")
#: ... and soft movement, whose penalty, not a target, decides the sparsity.
METHODS = (*SPARSE_METHODS, "soft movement")
#: The optimiser of every pruning run, as named in its record (and in the benchmark's journal keys).
OPTIMIZER = "AdamW (fused)"
#: Weight of the hidden-state term in distilled runs (the mean squared error between each layer's
#: output and the teacher's, added to the logit distillation loss); lesson 08's recovery uses the same.
KD_HIDDEN_WEIGHT = 1.0
#: Schedule shape, as fractions of all steps, for pruning a model that is already fine-tuned: gradual
#: pruning from step 0 and movement pruning after ``movement_warmup`` (its scores first need a few
#: steps of gradient) reach the final sparsity (soft movement: its final threshold) at ``prune_until``;
#: after it, gradual pruning's masks are fixed, while movement pruning's sparsity is fixed but its scores
#: keep learning which weights to keep.
SCHEDULE = dict(prune_until=0.7, movement_warmup=0.1, pruning_events=20, warmup_ratio=0.1)
#: Sanh et al.'s fine-pruning regime, for a *pre-trained* model that learns the task while it is pruned:
#: dense for the first ``prune_from`` of the steps (the task is learned; movement scores learn from step 0),
#: the cubic ramp until ``prune_until``, then training at the final sparsity. Every method uses the same
#: two points (the reference code's magnitude baseline too), with 3 epochs: one of each.
FINE_PRUNING = dict(SCHEDULE, prune_from=1 / 3, prune_until=2 / 3, movement_warmup=1 / 3)
#: The movement scores' learning rate (Sanh et al.'s ``mask_scores_learning_rate``).
SCORE_LR = 1e-2


def _check_choice(value, allowed: Sequence, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {tuple(allowed)}, got {value!r}")


def _check_schedule(schedule: dict | None) -> dict:
    """``schedule``, or :data:`SCHEDULE` for None, if it has the keys of a schedule."""
    shape = SCHEDULE if schedule is None else schedule
    if not isinstance(shape, dict) or not set(SCHEDULE) <= set(shape) <= set(FINE_PRUNING) or not (
            0 <= shape.get("prune_from", 0) < shape["prune_until"] <= 1):
        raise ValueError(f"schedule must be SCHEDULE or FINE_PRUNING (or a dict with their keys, "
                         f"0 <= prune_from < prune_until <= 1), got {schedule!r}")
    return shape


def ramp_steps(total: int, method: str, schedule: dict | None = None) -> tuple[int, int]:
    """The optimiser steps between which ``method``'s sparsity (soft movement: its threshold) rises, in a
    run of ``total`` steps under ``schedule`` (default :data:`SCHEDULE`): gradual magnitude from
    ``prune_from``, the movement variants after their warm-up, both until ``prune_until``; one-shot
    prunes before the first step, ``(0, 0)``."""
    _check_choice(method, METHODS, "method")
    check_positive_int(total, "total", "optimiser steps of the run")
    shape = _check_schedule(schedule)
    if method == "one-shot":
        return 0, 0
    start = round(shape.get("prune_from", 0.0) * total)
    until = max(start + 1, round(shape["prune_until"] * total))
    if method == "gradual":
        return start, until
    warmup = max(start, round(shape["movement_warmup"] * total))
    return warmup, max(warmup + 1, until)


def sparse_fine_tune(
    dense: nn.Module,
    train_loader: Iterable[dict[str, torch.Tensor]],
    val_loader: Iterable[dict[str, torch.Tensor]],
    method: str,
    sparsity: float,
    *,
    lr: float,
    epochs: int = 1,
    distill: bool = False,
    kd_temperature: float = 2.0,
    kd_weight: float = 0.5,
    kd_hidden_weight: float = KD_HIDDEN_WEIGHT,
    score_lr: float = SCORE_LR,
    final_lambda: float | None = None,
    scope: str = "global",
    teacher: nn.Module | None = None,
    schedule: dict | None = None,
    freeze_embeddings: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, dict]:
    """A copy of ``dense`` pruned to ``sparsity`` of its prunable weights (encoder Linears for a
    transformer) by ``method``, fine-tuned for ``epochs`` with masks kept (AdamW, linear warm-up and
    decay; PyTorch's fused AdamW kernel). ``dense`` is either fine-tuned already (the default
    ``schedule``, :data:`SCHEDULE`) or only pre-trained, learning the task while it is pruned
    (``schedule=FINE_PRUNING``, Sanh et al.'s regime). With ``distill=True``, ``teacher`` (default:
    ``dense``; give the fine-tuned model when ``dense`` is pre-trained) is distilled: its softened
    logits (``kd_temperature``, ``kd_weight``) and, with ``kd_hidden_weight`` > 0, every layer's output (:func:`~nlpprune_lessons.losses.hidden_state_loss`, layer ``i`` to layer ``i``:
    unstructured pruning keeps the architecture; 0 distils the logits only).

    ``scope`` applies to every method: ``"global"`` (default) ranks all encoder weights together, so
    each method also decides how the sparsity is spread over the matrices; ``"layer"`` gives every
    matrix the same sparsity (for movement pruning, the paper's per-matrix top-k).
    ``score_lr`` is the movement scores' learning rate. ``"soft movement"`` imposes no sparsity: its
    penalty ``final_lambda`` (required) decides it, and ``sparsity`` is only recorded as the target the
    penalty was chosen for; read the sparsity reached from the model (:func:`evaluate_sparse`). The
    (unpruned) embedding tables train with the rest, as in dense fine-tuning (lesson 07 measures what adapting the word vectors is worth).
    ``freeze_embeddings=True`` keeps them fixed (:func:`~nlpprune_lessons.training.freezing.frozen_embeddings`),
    which saves their gradient and AdamW state (three float32 copies of the tables); every method is
    treated alike. Every run is seeded with ``seed`` (dropout, batch order) in a forked random state
    (:func:`~nlpprune_lessons.core.config.seeded`), so its result does not depend on what ran before and
    the caller's random state is left alone. Returns the pruned model (masks
    attached) and a record: steps, seconds, the sparsity schedule, training history.
    """
    _check_choice(method, METHODS, "method")
    _check_choice(scope, SCOPES, "scope")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not isinstance(distill, bool):
        raise TypeError(f"distill must be True or False, got {distill!r}")
    if isinstance(kd_hidden_weight, bool) or not isinstance(kd_hidden_weight, (int, float)) or kd_hidden_weight < 0:
        raise ValueError(f"kd_hidden_weight must be a number >= 0 (0: distil the logits only), got {kd_hidden_weight!r}")
    if (method == "soft movement") != (final_lambda is not None):
        raise ValueError("final_lambda (the soft-movement penalty) is required for method 'soft movement' and "
                         f"meaningless for the others; got method={method!r}, final_lambda={final_lambda!r}")
    if teacher is not None and not distill:
        raise ValueError("a teacher is only used with distill=True")
    shape = _check_schedule(schedule)
    teacher = dense if teacher is None else teacher
    hidden_map = None
    if distill and kd_hidden_weight > 0:
        layers = getattr(getattr(teacher, "config", None), "num_hidden_layers", None)
        if layers is None:
            raise ValueError("hidden-state distillation needs a transformers model (config.num_hidden_layers); "
                             "pass kd_hidden_weight=0 to distil the logits only")
        hidden_map = {i: i for i in range(1, layers + 1)}  # hidden state 0 is the embeddings' output
    with config.seeded(seed):
        model = copy.deepcopy(dense).train()
        total = epochs * len(train_loader)
        start_step, until = ramp_steps(total, method, shape)
        on_step, param_groups, pruner, penalty = None, None, None, None
        if method == "one-shot":
            prune(model, sparsity, scope=scope)
        elif method == "gradual":
            pruner = GradualPruner(model, sparsity, start_step=start_step, end_step=until, scope=scope,
                                   frequency=max(1, (until - start_step) // shape["pruning_events"]))
            on_step = pruner.step
        elif method == "movement":
            pruner = MovementPruner(model, sparsity, start_step=start_step, end_step=until, scope=scope)
            on_step, param_groups = pruner.step, pruner.param_groups(score_lr)
        else:
            pruner = SoftMovementPruner(model, final_lambda, start_step=start_step, end_step=until)
            on_step, param_groups, penalty = pruner.step, pruner.param_groups(score_lr), pruner.penalty
        start = time.perf_counter()
        with frozen_embeddings(model, freeze_embeddings):  # the returned model trains like any other
            history = train_classifier(
                model, train_loader, val_loader, epochs=epochs, lr=lr, schedule="linear",
                warmup_ratio=shape["warmup_ratio"], teacher=teacher if distill else None, kd_temperature=kd_temperature,
                kd_weight=kd_weight, kd_hidden_map=hidden_map, kd_hidden_weight=kd_hidden_weight,
                param_groups=param_groups, on_step=on_step, penalty=penalty, restore_best=False,
                fused_optimizer=True, progress=progress)  # fused AdamW: several times faster on CPU
        if method in ("movement", "soft movement"):
            pruner.finalize()
        release_memory()  # the optimiser state and activations are gone; give the memory back
        record = {"method": method, "sparsity_target": sparsity, "distill": distill,
                  "kd_hidden_weight": kd_hidden_weight if distill else 0.0, "lr": lr, "epochs": epochs,
                  "steps": total, "seconds": time.perf_counter() - start, "scope": scope,
                  "freeze_embeddings": freeze_embeddings, "optimizer": OPTIMIZER, "final_lambda": final_lambda,
                  "regime": "fine-pruning" if "prune_from" in shape else "pruning a fine-tuned model",
                  "schedule": [] if pruner is None else pruner.history, "history": vars(history)}
        return model.eval(), record


def evaluate_sparse(model: nn.Module, loaders: dict[str, Iterable[dict[str, torch.Tensor]]]) -> dict[str, float]:
    """Accuracy per split in ``loaders`` and the sparsity over the prunable weights and over all
    parameters (always both)."""
    report = sparsity_report(model)
    result = {f"{split}_accuracy": evaluate_classifier(model, loader)["accuracy"] for split, loader in loaders.items()}
    return result | {"prunable_sparsity": report.prunable_sparsity, "overall_sparsity": report.overall_sparsity}


def compare_sparse_methods(
    dense: nn.Module,
    loaders: dict[str, Iterable[dict[str, torch.Tensor]]],
    methods: Sequence[str],
    sparsities: Sequence[float],
    lrs: dict[str | tuple[str, float], float],
    *,
    distill: Sequence[bool] = (False, True),
    final_lambdas: dict[float, float] | None = None,
    keep: Sequence[tuple[str, float, bool]] = (),
    progress: bool = True,
    **kwargs,
) -> tuple[list[dict], dict[tuple[str, float, bool], nn.Module]]:
    """Run :func:`sparse_fine_tune` for every method x sparsity x distillation setting, each method at
    its own learning rate: ``lrs[(method, sparsity)]`` if given, else ``lrs[method]`` (a 50% cut and a
    90% cut may need different rates); ``loaders`` needs ``train``, ``validation`` and ``test``.
    ``"soft movement"`` runs at each target sparsity with the penalty ``final_lambdas[sparsity]``.

    Returns one record per run (settings, validation and test accuracy, both sparsities, seconds) and
    the pruned models named in ``keep`` as ``(method, sparsity, distill)`` (the others are dropped to
    save memory). ``kwargs`` go to :func:`sparse_fine_tune` (e.g. ``epochs``, ``score_lr``).
    """
    from tqdm.auto import tqdm

    rate = {(m, s): lrs.get((m, s), lrs.get(m)) for s in sparsities for m in methods}
    missing = [run for run, lr in rate.items() if lr is None]
    if missing:
        raise ValueError(f"lrs has no learning rate for (method, sparsity) {missing}; give one per method "
                         "or per (method, sparsity)")
    if "soft movement" in methods and not all(s in (final_lambdas or {}) for s in sparsities):
        raise ValueError(f"soft movement needs final_lambdas for every sparsity {list(sparsities)}, got {final_lambdas!r}")
    grid = [(m, s, d) for s in sparsities for m in methods for d in distill]
    records, kept = [], {}
    for method, sparsity, use_kd in tqdm(grid, desc="runs", disable=not progress):
        model, record = sparse_fine_tune(dense, loaders["train"], loaders["validation"], method, sparsity,
                                         lr=rate[(method, sparsity)], distill=use_kd, final_lambda=(
                                             final_lambdas[sparsity] if method == "soft movement" else None),
                                         **kwargs)
        # the run's last validation saw the final weights and masks (restore_best=False): reuse it
        scores = {"validation_accuracy": record["history"]["val_accuracy"][-1],
                  **evaluate_sparse(model, {"test": loaders["test"]})}
        records.append({k: v for k, v in record.items() if k not in ("history", "schedule")} | scores)
        if (method, sparsity, use_kd) in keep:
            kept[(method, sparsity, use_kd)] = model
        del model
        release_memory()
    return records, kept


def choose_learning_rate(
    dense: nn.Module,
    loaders: dict[str, Iterable[dict[str, torch.Tensor]]],
    method: str,
    sparsity: float,
    candidates: Sequence[float],
    distill: bool = False,
    **kwargs,
) -> tuple[float, list[dict]]:
    """The learning rate in ``candidates`` with the best *validation* accuracy for ``method`` at
    ``sparsity`` (with or without distillation; ties: the first), and one record per candidate (test
    accuracy included for the report, never used to choose)."""
    if not candidates:
        raise ValueError("candidates is empty: give at least one learning rate")
    records = []
    for lr in candidates:
        rows, _ = compare_sparse_methods(dense, loaders, [method], [sparsity], {method: lr}, distill=(distill,),
                                         progress=False, **kwargs)
        records += rows
    best = max(records, key=lambda r: r["validation_accuracy"])
    return best["lr"], records
