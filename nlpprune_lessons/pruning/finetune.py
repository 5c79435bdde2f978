"""Pruning while fine-tuning a classifier (lesson 07): one-shot magnitude then fine-tuning, gradual
magnitude with the cubic schedule, and movement pruning, each optionally distilled from the dense
teacher. Every method gets the same number of optimiser steps and the same learning-rate schedule."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.measure.memory import release_memory
from nlpprune_lessons.pruning.masks import SCOPES, prune
from nlpprune_lessons.pruning.movement import MovementPruner
from nlpprune_lessons.pruning.report import sparsity_report
from nlpprune_lessons.pruning.schedule import GradualPruner
from nlpprune_lessons.training.freezing import frozen_embeddings
from nlpprune_lessons.training.loop import train_classifier

#: How the zeros are chosen and when.
SPARSE_METHODS = ("one-shot", "gradual", "movement")
#: The optimiser of every pruning run, as named in its record (and in the benchmark's journal keys).
OPTIMIZER = "AdamW (fused)"
#: Weight of the hidden-state term in distilled runs (the mean squared error between each layer's
#: output and the teacher's, added to the logit distillation loss); lesson 08's recovery uses the same.
KD_HIDDEN_WEIGHT = 1.0
#: Schedule shape, as fractions of all steps: gradual and movement pruning reach the final sparsity at
#: ``prune_until`` (after it, gradual pruning's masks are fixed; movement pruning's sparsity is fixed
#: but its scores keep learning which weights to keep); movement pruning starts after
#: ``movement_warmup`` (its scores first need a few steps of gradient; Sanh et al. warm up too).
SCHEDULE = dict(prune_until=0.7, movement_warmup=0.1, pruning_events=20, warmup_ratio=0.1)


def _check_choice(value, allowed: Sequence, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {tuple(allowed)}, got {value!r}")


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
    score_lr: float = 1e-2,
    scope: str = "global",
    freeze_embeddings: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, dict]:
    """A copy of ``dense`` pruned to ``sparsity`` of its prunable weights (encoder Linears for a
    transformer) by ``method``, fine-tuned for ``epochs`` with masks kept (AdamW, linear warm-up and
    decay; PyTorch's fused AdamW kernel). With ``distill=True`` the dense model is the teacher: its
    softened logits (``kd_temperature``, ``kd_weight``) and, with ``kd_hidden_weight`` > 0, every
    layer's output (:func:`~nlpprune_lessons.losses.hidden_state_loss`, layer ``i`` to layer ``i``:
    unstructured pruning keeps the architecture; 0 distils the logits only).

    ``scope`` applies to every method: ``"global"`` (default) ranks all encoder weights together, so
    each method also decides how the sparsity is spread over the matrices; ``"layer"`` gives every
    matrix the same sparsity (for movement pruning, the paper's per-matrix top-k).
    ``score_lr`` is the movement scores' learning rate. The (unpruned) embedding tables train with
    the rest, as in dense fine-tuning (lesson 07 measures what adapting the word vectors is worth).
    ``freeze_embeddings=True`` keeps them fixed (:func:`~nlpprune_lessons.training.freezing.frozen_embeddings`),
    which saves their gradient and AdamW state (three float32 copies of the tables); every method is
    treated alike. Every run is seeded with ``seed`` (dropout, batch order) in a forked random state
    (:func:`~nlpprune_lessons.core.config.seeded`), so its result does not depend on what ran before and
    the caller's random state is left alone. Returns the pruned model (masks
    attached) and a record: steps, seconds, the sparsity schedule, training history.
    """
    _check_choice(method, SPARSE_METHODS, "method")
    _check_choice(scope, SCOPES, "scope")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not isinstance(distill, bool):
        raise TypeError(f"distill must be True or False, got {distill!r}")
    if isinstance(kd_hidden_weight, bool) or not isinstance(kd_hidden_weight, (int, float)) or kd_hidden_weight < 0:
        raise ValueError(f"kd_hidden_weight must be a number >= 0 (0: distil the logits only), got {kd_hidden_weight!r}")
    hidden_map = None
    if distill and kd_hidden_weight > 0:
        layers = getattr(getattr(dense, "config", None), "num_hidden_layers", None)
        if layers is None:
            raise ValueError("hidden-state distillation needs a transformers model (config.num_hidden_layers); "
                             "pass kd_hidden_weight=0 to distil the logits only")
        hidden_map = {i: i for i in range(1, layers + 1)}  # hidden state 0 is the embeddings' output
    with config.seeded(seed):
        model = copy.deepcopy(dense).train()
        total = epochs * len(train_loader)
        until = max(1, round(SCHEDULE["prune_until"] * total))
        on_step, param_groups, pruner = None, None, None
        if method == "one-shot":
            prune(model, sparsity, scope=scope)
        elif method == "gradual":
            pruner = GradualPruner(model, sparsity, start_step=0, end_step=until, scope=scope,
                                   frequency=max(1, until // SCHEDULE["pruning_events"]))
            on_step = pruner.step
        else:
            pruner = MovementPruner(model, sparsity, start_step=round(SCHEDULE["movement_warmup"] * total),
                                    end_step=until, scope=scope)
            on_step, param_groups = pruner.step, pruner.param_groups(score_lr)
        start = time.perf_counter()
        with frozen_embeddings(model, freeze_embeddings):  # the returned model trains like any other
            history = train_classifier(
                model, train_loader, val_loader, epochs=epochs, lr=lr, schedule="linear",
                warmup_ratio=SCHEDULE["warmup_ratio"], teacher=dense if distill else None, kd_temperature=kd_temperature,
                kd_weight=kd_weight, kd_hidden_map=hidden_map, kd_hidden_weight=kd_hidden_weight,
                param_groups=param_groups, on_step=on_step, restore_best=False,
                fused_optimizer=True, progress=progress)  # fused AdamW: several times faster on CPU
        if method == "movement":
            pruner.finalize()
        release_memory()  # the optimiser state and activations are gone; give the memory back
        record = {"method": method, "sparsity_target": sparsity, "distill": distill,
                  "kd_hidden_weight": kd_hidden_weight if distill else 0.0, "lr": lr, "epochs": epochs,
                  "steps": total, "seconds": time.perf_counter() - start, "scope": scope,
                  "freeze_embeddings": freeze_embeddings, "optimizer": OPTIMIZER,
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
    keep: Sequence[tuple[str, float, bool]] = (),
    progress: bool = True,
    **kwargs,
) -> tuple[list[dict], dict[tuple[str, float, bool], nn.Module]]:
    """Run :func:`sparse_fine_tune` for every method x sparsity x distillation setting, each method at
    its own learning rate: ``lrs[(method, sparsity)]`` if given, else ``lrs[method]`` (a 50% cut and a
    90% cut may need different rates); ``loaders`` needs ``train``, ``validation`` and ``test``.

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
    grid = [(m, s, d) for s in sparsities for m in methods for d in distill]
    records, kept = [], {}
    for method, sparsity, use_kd in tqdm(grid, desc="runs", disable=not progress):
        model, record = sparse_fine_tune(dense, loaders["train"], loaders["validation"], method, sparsity,
                                         lr=rate[(method, sparsity)], distill=use_kd, **kwargs)
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
