"""Pruning experiments shared by lesson 03 and ``benchmarks/rnn_unstructured.py``.

Each function takes the dense trained model, an ``evaluate(model) -> dict`` and, where training is
involved, a ``fine_tune(model)`` callable; it returns one record (a dict) per measured point, ready
for a DataFrame or :func:`nlpprune_lessons.course.results.save_results`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence

from torch import nn
from tqdm.auto import tqdm

from nlpprune_lessons.pruning import (
    METHODS,
    SCOPES,
    GradualPruner,
    default_params,
    param_name,
    prune,
    rewind,
    sparsity_report,
    weights_snapshot,
)

Evaluate = Callable[[nn.Module], dict]
FineTune = Callable[[nn.Module], object]
#: ``train(model, on_step)``: trains ``model``, calling ``on_step(step)`` after every optimiser step.
Train = Callable[[nn.Module, Callable[[int], object]], object]


def _record(model: nn.Module, metrics: dict, **fields) -> dict:
    report = sparsity_report(model)
    return {**fields, **metrics, "prunable_sparsity": report.prunable_sparsity,
            "overall_sparsity": report.overall_sparsity}


def _check_sparsities(sparsities: Sequence[float]) -> list[float]:
    values = list(sparsities)
    if not values or any(not 0.0 <= s <= 1.0 for s in values):
        raise ValueError(f"sparsities must be a non-empty list of numbers in [0, 1], got {sparsities!r}")
    return sorted(values)


#: How many times :func:`one_shot` calls ``fine_tune``: once, or as often as :func:`iterative` has by
#: the time it reaches the same sparsity (k times at the k-th smallest sparsity): the equal budget.
BUDGETS = ("one round", "as iterative")


def one_shot(dense: nn.Module, evaluate: Evaluate, sparsities: Sequence[float], method: str = "magnitude",
             scope: str = "global", fine_tune: FineTune | None = None, data: Iterable | None = None,
             seed: int = 0, budget: str = "one round", progress: bool = True) -> list[dict]:
    """Prune a fresh copy of ``dense`` to each sparsity in one step, then ``fine_tune`` it (if given)
    for the ``budget`` of :data:`BUDGETS`; ``fine_tune_rounds`` in each record says how many rounds."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    records = []
    values = _check_sparsities(sparsities)
    for position, sparsity in enumerate(tqdm(values, desc=f"one-shot {method}", disable=not progress, leave=False)):
        model = copy.deepcopy(dense)
        prune(model, sparsity, method=method, scope=scope, data=data, seed=seed)
        rounds = 0 if fine_tune is None else (1 if budget == "one round" else position + 1)
        for _ in range(rounds):
            fine_tune(model)
        records.append(_record(model, evaluate(model), method=method, scope=scope, schedule="one-shot",
                               fine_tuned=fine_tune is not None, sparsity=sparsity, fine_tune_rounds=rounds))
    return records


def iterative(dense: nn.Module, evaluate: Evaluate, sparsities: Sequence[float], fine_tune: FineTune,
              method: str = "magnitude", scope: str = "global", data: Iterable | None = None,
              seed: int = 0, progress: bool = True) -> list[dict]:
    """Prune one copy of ``dense`` step by step through the sparsities, fine-tuning after each step."""
    model = copy.deepcopy(dense)
    records = []
    for sparsity in tqdm(_check_sparsities(sparsities), desc=f"iterative {method}", disable=not progress, leave=False):
        prune(model, sparsity, method=method, scope=scope, data=data, seed=seed)
        fine_tune(model)
        records.append(_record(model, evaluate(model), method=method, scope=scope, schedule="iterative",
                               fine_tuned=True, sparsity=sparsity, fine_tune_rounds=len(records) + 1))
    return records


def gradual(dense: nn.Module, evaluate: Evaluate, sparsities: Sequence[float], train: Train, total_steps: int,
            prune_until: float = 0.75, pruning_events: int = 20, method: str = "magnitude", scope: str = "layer",
            data: Iterable | None = None, seed: int = 0, progress: bool = True) -> list[dict]:
    """Gradual pruning (Zhu & Gupta, 2017): for each target, train a fresh copy of ``dense`` with
    ``train(model, on_step)`` while a :class:`GradualPruner` raises the sparsity on the cubic schedule,
    from 0 to the target at step ``prune_until * total_steps`` in at most ``pruning_events`` steps;
    the rest of the training runs at the target sparsity.

    ``total_steps`` is the number of optimiser steps ``train`` takes. ``train`` must end with its last
    weights (e.g. ``restore_best=False``): an earlier epoch's weights carry an earlier, lower sparsity.
    The default scope is layer-wise, as in Zhu & Gupta's implementation.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if isinstance(prune_until, bool) or not isinstance(prune_until, (int, float)) or not 0.0 < prune_until <= 1.0:
        raise ValueError(f"prune_until must be a number in (0, 1], got {prune_until!r}")
    if isinstance(pruning_events, bool) or not isinstance(pruning_events, int) or pruning_events < 1:
        raise ValueError(f"pruning_events must be an integer >= 1, got {pruning_events!r}")
    if method not in METHODS or scope not in SCOPES:  # checked now, not at the first pruning event
        raise ValueError(f"method must be one of {', '.join(METHODS)} and scope one of {', '.join(SCOPES)}, "
                         f"got {method!r} and {scope!r}")
    if method == "taylor" and data is None:
        raise ValueError("method 'taylor' needs data: a re-iterable collection of batches")
    end_step = max(1, round(prune_until * total_steps))
    frequency = math.ceil(end_step / pruning_events)  # at most pruning_events events, the last at end_step
    records = []
    for sparsity in tqdm(_check_sparsities(sparsities), desc=f"gradual {method}", disable=not progress, leave=False):
        model = copy.deepcopy(dense)
        pruner = GradualPruner(model, sparsity, start_step=0, end_step=end_step, frequency=frequency,
                               method=method, scope=scope, data=data, seed=seed)
        train(model, pruner.step)
        if not pruner.history or pruner.history[-1][0] != end_step:
            raise ValueError(f"training stopped before step {end_step}, where the schedule reaches {sparsity}; "
                             f"check total_steps={total_steps} and early stopping")
        reached = sparsity_report(model).prunable_sparsity
        if abs(reached - sparsity) > 1e-3:
            raise ValueError(f"the trained model has sparsity {reached:.4f}, not {sparsity}: did train() restore "
                             "an earlier epoch's weights? Use restore_best=False")
        records.append(_record(model, evaluate(model), method=method, scope=scope, schedule="gradual",
                               fine_tuned=True, sparsity=sparsity, pruning_steps=end_step, total_steps=total_steps,
                               pruning_events=len(pruner.history), pruning_history=list(pruner.history)))
    return records


def dense_control(dense: nn.Module, evaluate: Evaluate, fine_tune: FineTune, rounds: int) -> list[dict]:
    """The control for pruning with fine-tuning: a copy of ``dense`` fine-tuned the same way, ``rounds``
    times in a row, with no pruning; one record after each round (``fine_tune_rounds`` = 1, 2, ...).
    Compare one-shot + fine-tuning with round 1 and step k of :func:`iterative` with round k, so that
    what the extra training did is not credited to pruning."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    model = copy.deepcopy(dense)
    records = []
    for k in range(1, rounds + 1):
        fine_tune(model)
        records.append(_record(model, evaluate(model), schedule="dense control", fine_tuned=True, sparsity=0.0,
                               fine_tune_rounds=k))
    return records


def sensitivity_scan(dense: nn.Module, evaluate: Evaluate, sparsities: Sequence[float],
                     progress: bool = True) -> list[dict]:
    """Prune one weight matrix at a time (magnitude, that matrix only) and measure the damage."""
    records = []
    names = [param_name(dense, m, n) for m, n in default_params(dense)]
    for index, name in enumerate(tqdm(names, desc="layers", disable=not progress, leave=False)):
        for sparsity in _check_sparsities(sparsities):
            model = copy.deepcopy(dense)
            prune(model, sparsity, scope="layer", params=[default_params(model)[index]])
            records.append({"parameter": name, "sparsity": sparsity, **evaluate(model)})
    return records


def lottery_ticket(build: Callable[[int], nn.Module], train: Callable[[nn.Module, Callable[[int], object]], object],
                   evaluate: Evaluate, sparsity: float, rewind_steps: Sequence[int] = (0,), seed: int = 0) -> list[dict]:
    """Frankle & Carbin (2019) in its one-shot form (one pruning step, not their iterative rounds),
    with rewinding to initialisation (step 0) or late, to step k (Frankle et al., 2020, who found the
    late rewind necessary for larger networks).

    Trains ``build(seed)`` with ``train(model, on_step)``, keeping a snapshot of its weights after each
    of ``rewind_steps`` optimiser steps (0 = the initialisation); prunes the trained model to ``sparsity``
    (global magnitude); then trains (a) one *ticket* per rewind step: that mask with the weights rewound
    to the snapshot, and (b) the control: the same mask on another random initialisation,
    ``build(seed + 1)``. Returns records for dense, each ticket and the control.
    """
    steps = list(rewind_steps)
    if not steps or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in steps):
        raise ValueError(f"rewind_steps must be a non-empty list of ints >= 0, got {rewind_steps!r}")
    dense = build(seed)
    snapshots = {0: weights_snapshot(dense)} if 0 in steps else {}

    def keep_snapshot(step: int) -> None:
        if step in steps:
            snapshots[step] = weights_snapshot(dense)

    train(dense, keep_snapshot)
    missing = sorted(set(steps) - set(snapshots))
    if missing:
        raise ValueError(f"training took fewer steps than rewind_steps {missing}")
    records = [_record(dense, evaluate(dense), variant="dense", sparsity=0.0)]
    prune(dense, sparsity)  # the mask of the trained model
    masks = {name: buf.clone() for name, buf in dense.named_buffers() if name.endswith("_mask")}

    def with_the_mask(model: nn.Module) -> nn.Module:
        prune(model, sparsity)  # creates the mask buffers; overwritten by the trained model's mask
        for name, buf in model.named_buffers():
            if name in masks:
                buf.copy_(masks[name])
        return model

    for step in steps:
        ticket = with_the_mask(build(seed))  # a pruned model cannot be deep-copied: rebuild, mask, rewind
        rewind(ticket, snapshots[step])
        train(ticket, lambda _: None)
        records.append(_record(ticket, evaluate(ticket), variant=f"ticket (rewound to step {step})",
                               sparsity=sparsity, rewind_step=step))
    control = with_the_mask(build(seed + 1))
    train(control, lambda _: None)
    records.append(_record(control, evaluate(control), variant="same mask, random re-init", sparsity=sparsity))
    return records
