"""Checks for the exercises of lesson 03 (unstructured pruning)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.lessons.exercises.protocol import (
    compare_numbers,
    compare_tensors,
    exercise,
    require,
    require_callable,
)

__all__ = [
    "check_cubic_schedule",
    "check_global_magnitude_masks",
    "check_layer_magnitude_mask",
    "check_lottery_rewind",
    "check_taylor_importance",
]


@exercise("03.1", "global magnitude masks")
def check_global_magnitude_masks(global_magnitude_masks: Callable[[list, float], list]) -> str:
    """Exercise 03.1: masks (1 keep, 0 prune) zeroing the ``round(amount * total)`` smallest |w|
    over all the given weight tensors together, as ``torch.nn.utils.prune.global_unstructured``."""
    from torch.nn.utils import prune as torch_prune

    require_callable(global_magnitude_masks, "global_magnitude_masks")
    generator = torch.Generator().manual_seed(0)
    hint = ("Rank the |w| of all tensors together (one flat vector), zero the round(amount * total) smallest, "
            "then split the flat mask back into one piece per tensor, in the tensors' shapes.")
    for shapes, amount in [([(4, 3), (2, 5)], 0.5), ([(8, 8), (3, 8), (16,)], 0.9), ([(5, 5)], 0.0)]:
        weights = [torch.randn(*shape, generator=generator) * (i + 1) for i, shape in enumerate(shapes)]
        holders = [torch.nn.Module() for _ in weights]
        for holder, w in zip(holders, weights):
            holder.weight = torch.nn.Parameter(w.clone())
        torch_prune.global_unstructured([(h, "weight") for h in holders], torch_prune.L1Unstructured, amount=amount)
        expected = [h.weight_mask for h in holders]
        got = global_magnitude_masks([w.clone() for w in weights], amount)
        require(isinstance(got, (list, tuple)) and len(got) == len(weights),
                f"for {len(weights)} weight tensors return a list of {len(weights)} masks, one per tensor, got "
                f"{type(got).__name__}{f' of length {len(got)}' if isinstance(got, (list, tuple)) else ''}")
        for i, (g, e) in enumerate(zip(got, expected)):
            compare_tensors(g.float() if torch.is_tensor(g) else g, e,
                            f"for shapes {shapes} at amount {amount}, the mask of tensor {i}", hint)
    return "one threshold over all matrices, identical to prune.global_unstructured."


def _taylor_case(seed: int):
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    batches = [{"x": torch.randn(8, 6, generator=generator), "y": torch.randint(0, 3, (8,), generator=generator)}
               for _ in range(3)]
    return model, batches


def _classification_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch["x"]), batch["y"])


@exercise("03.2", "Taylor importance")
def check_taylor_importance(
    taylor_importance: Callable[[nn.Module, Sequence, Iterable, Callable], list[torch.Tensor]],
) -> str:
    """Exercise 03.2: ``taylor_importance(model, params, batches, loss_fn)`` = one tensor per (module, name)
    of ``params``: ``sum over batches of |w * dL/dw|``, as :func:`~nlpprune_lessons.pruning.taylor_scores`."""
    from nlpprune_lessons.pruning import default_params, param_name, taylor_scores

    require_callable(taylor_importance, "taylor_importance")
    hint = ("For each batch take the gradient of that batch's loss alone (clear what the previous batch left in "
            ".grad), multiply it entry by entry with the weight, take the absolute value, and add the result over "
            "the batches (the absolute value comes before the sum).")
    for seed, n_batches in [(0, 1), (1, 3)]:
        model, batches = _taylor_case(seed)
        batches = batches[:n_batches]
        params = default_params(model)
        expected = taylor_scores(model, params, batches, _classification_loss)
        got = taylor_importance(model, params, batches, _classification_loss)
        require(isinstance(got, (list, tuple)) and len(got) == len(params),
                f"return a list with one score tensor per (module, name) pair of params ({len(params)} here), got "
                f"{type(got).__name__}")
        names = [param_name(model, m, n) for m, n in params]
        for name, g, e in zip(names, got, expected):
            compare_tensors(g.detach() if torch.is_tensor(g) else g, e,
                            f"{n_batches} batch(es), scores of {name} of Linear(6, 5) -> Tanh -> Linear(5, 3)", hint)
    return "sum over batches of |w * dL/dw|, as pruning.taylor_scores computes it (method='taylor')."


@exercise("03.3", "layer-wise magnitude mask")
def check_layer_magnitude_mask(layer_magnitude_mask: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    """Exercise 03.3: ``layer_magnitude_mask(weight, amount)`` = the 0/1 mask of one tensor zeroing its
    ``round(amount * numel)`` smallest |w|, as ``prune(..., scope="layer")`` gives each matrix."""
    from nlpprune_lessons.pruning import prune

    require_callable(layer_magnitude_mask, "layer_magnitude_mask")
    generator = torch.Generator().manual_seed(0)
    hint = ("Zero the round(amount * weight.numel()) entries of this tensor with the smallest absolute value "
            "(a large negative weight is large), keep the rest; the mask has the weight's shape.")
    # (7, 3) at 0.7: 14.7 entries, so round() zeroes 15 and int() only 14
    for shape, amount in [((6, 4), 0.5), ((16, 8), 0.9), ((10,), 0.3), ((7, 3), 0.7), ((5, 5), 0.0), ((3, 4), 1.0)]:
        weight = torch.randn(*shape, generator=generator) - 0.5  # more negative than positive weights
        holder = nn.Module()
        holder.weight = nn.Parameter(weight.clone())
        prune(holder, amount, scope="layer", params=[(holder, "weight")])
        got = layer_magnitude_mask(weight.clone(), amount)
        compare_tensors(got.float() if torch.is_tensor(got) else got, holder.weight_mask,
                        f"for a weight of shape {shape} at amount {amount}, the mask", hint)
    return "each matrix loses the same share, its own smallest |w|: what prune(..., scope='layer') does."


@exercise("03.4", "cubic sparsity schedule")
def check_cubic_schedule(cubic_schedule: Callable[..., float]) -> str:
    """Exercise 03.4: ``cubic_schedule(step, final_sparsity, start_step, end_step, initial_sparsity=0.0)``,
    Zhu & Gupta's schedule, as :func:`~nlpprune_lessons.pruning.cubic_sparsity`."""
    from nlpprune_lessons.pruning import cubic_sparsity

    require_callable(cubic_schedule, "cubic_schedule")
    hint = ("Before start_step the sparsity is the initial one and from end_step on the final one; in between it is "
            "s_f + (s_i - s_f) * (1 - progress)**3, where progress is the share of the way from start_step to "
            "end_step that step has gone.")
    cases = [((0.9, 0, 100, 0.0), [0, 1, 10, 50, 99, 100, 150]),
             ((0.8, 20, 60, 0.3), [0, 20, 21, 35, 40, 59, 60, 61])]
    for (final, start, end, initial), steps in cases:
        for step in steps:
            expected = cubic_sparsity(step, final, start, end, initial)
            got = cubic_schedule(step, final, start, end, initial)
            where = f"at step {step} (final {final}, start {start}, end {end}, initial {initial})"
            compare_numbers(got, expected, where, hint, rel=1e-9, abs_tol=1e-12)
    return "fast pruning early, slow near the end, flat outside [start_step, end_step]: pruning.cubic_sparsity."


def _trained_and_pruned(seed: int, sparsity: float):
    """A small model, its initial weights, then "trained" (moved by seeded noise) and pruned by magnitude."""
    from nlpprune_lessons.pruning import prune, weights_snapshot

    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    initial = weights_snapshot(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator))
    prune(model, sparsity)
    return model, initial


@exercise("03.5", "lottery-ticket rewinding")
def check_lottery_rewind(rewind_ticket: Callable[[nn.Module, dict], object]) -> str:
    """Exercise 03.5: ``rewind_ticket(model, initial)`` resets the weights of a pruned model to ``initial``
    (every parameter, by its unpruned name) and keeps the masks, as :func:`~nlpprune_lessons.pruning.rewind`."""
    from nlpprune_lessons.pruning import default_params, effective_state_dict, is_pruned, rewind

    require_callable(rewind_ticket, "rewind_ticket")
    hint = ("The ticket is the trained mask on the initial weights: every surviving weight, and every bias, takes "
            "its value from initial, and every pruned weight stays zero. With torch's pruning a weight's values "
            "are in <name>_orig and its mask in <name>_mask.")
    for seed, sparsity in [(0, 0.6), (1, 0.9)]:
        reference, initial = _trained_and_pruned(seed, sparsity)
        rewind(reference, initial)
        model, initial = _trained_and_pruned(seed, sparsity)
        returned = rewind_ticket(model, {k: v.clone() for k, v in initial.items()})
        if isinstance(returned, nn.Module):
            model = returned
        lost = [f"{type(m).__name__}.{n}" for m, n in default_params(model) if not is_pruned(m, n)]
        require(not lost, f"the masks of {lost} are gone: rewind the values under the mask and keep the mask "
                          "(do not make the pruning permanent, or the zeros may grow back in training)")
        expected, got = effective_state_dict(reference), effective_state_dict(model)
        for name in expected:
            what = (f"at {sparsity:.0%} sparsity, {name} after rewinding (masks applied) of "
                    "Linear(6, 8) -> ReLU -> Linear(8, 3)")
            compare_tensors(got[name], expected[name], what, hint)
    return "the surviving weights start again from their initial values, the zeros stay: a lottery ticket."
