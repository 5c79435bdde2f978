"""Checks for the exercises of lesson 09 (pruning for generation)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_nm_mask"]


@exercise("09.1", "N:M mask")
def check_nm_mask(keep_n_of_m: Callable[[torch.Tensor, int, int], torch.Tensor]) -> str:
    """Exercise 09.1: ``keep_n_of_m(scores, n, m)`` keeps (1) the ``n`` highest of every ``m`` consecutive
    scores along each row and zeroes (0) the rest, in ``scores``' shape."""
    from nlpprune_lessons.pruning import nm_mask

    require_callable(keep_n_of_m, "keep_n_of_m")
    generator = torch.Generator().manual_seed(9)
    for shape, n, m in [((3, 8), 2, 4), ((4, 16), 2, 4), ((2, 16), 4, 8), ((5, 6), 1, 3)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = nm_mask(scores, n, m), keep_n_of_m(scores.clone(), n, m)
        require(isinstance(got, torch.Tensor) and got.shape == scores.shape,
                 f"return a tensor of shape {tuple(scores.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        require(torch.equal(got.float(), expected),
                 f"for {n}:{m} on a {tuple(shape)} tensor, every group of {m} consecutive entries of a row must keep "
                 f"its {n} highest scores. Reshape to (-1, {m}), take topk({n}, dim=1) and scatter ones.")
    return ("every group of m consecutive weights keeps its n highest scores: the pattern sparse tensor cores read.")
