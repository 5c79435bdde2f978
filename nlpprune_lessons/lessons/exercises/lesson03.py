"""Checks for the exercises of lesson 03 (unstructured pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_global_magnitude_masks"]


@exercise("03.1", "global magnitude masks")
def check_global_magnitude_masks(global_magnitude_masks: Callable[[list, float], list]) -> str:
    """Exercise 03.1: masks (1 keep, 0 prune) zeroing the ``round(amount * total)`` smallest |w|
    over all the given weight tensors together, as ``torch.nn.utils.prune.global_unstructured``."""
    from torch.nn.utils import prune as torch_prune

    require_callable(global_magnitude_masks, "global_magnitude_masks")
    generator = torch.Generator().manual_seed(0)
    for shapes, amount in [([(4, 3), (2, 5)], 0.5), ([(8, 8), (3, 8), (16,)], 0.9), ([(5, 5)], 0.0)]:
        weights = [torch.randn(*shape, generator=generator) * (i + 1) for i, shape in enumerate(shapes)]
        holders = [torch.nn.Module() for _ in weights]
        for holder, w in zip(holders, weights):
            holder.weight = torch.nn.Parameter(w.clone())
        torch_prune.global_unstructured([(h, "weight") for h in holders], torch_prune.L1Unstructured, amount=amount)
        expected = [h.weight_mask for h in holders]
        got = global_magnitude_masks([w.clone() for w in weights], amount)
        require(
            isinstance(got, (list, tuple)) and len(got) == len(weights)
            and all(torch.is_tensor(g) and g.shape == w.shape for g, w in zip(got, weights)),
            "return one mask per weight, each with that weight's shape",
        )
        wrong = sum(int((g.float() != e).sum()) for g, e in zip(got, expected))
        require(
            wrong == 0,
            f"for shapes {shapes} at amount {amount}, {wrong} mask entries differ from torch's. Rank all "
            "|w| of all tensors together (torch.cat of the flattened weights), zero the "
            "round(amount * total) smallest, then split the flat mask back per tensor.",
        )
    return ("one threshold over all matrices, identical to prune.global_unstructured.")
