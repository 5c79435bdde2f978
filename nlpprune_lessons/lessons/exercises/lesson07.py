"""Checks for the exercises of lesson 07 (sparse BERT)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_topk_mask"]


@exercise("07.1", "top-k mask")
def check_topk_mask(keep_top: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    """Exercise 07.1: ``keep_top(scores, sparsity)`` keeps exactly the ``numel - round(sparsity * numel)``
    highest scores (1) and zeroes the rest (0), in ``scores``' shape."""
    from nlpprune_lessons.pruning import topk_mask

    require_callable(keep_top, "keep_top")
    generator = torch.Generator().manual_seed(7)
    for shape, sparsity in [((4, 6), 0.5), ((10, 3), 0.9), ((5,), 0.0), ((8, 8), 0.95)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = topk_mask(scores, sparsity), keep_top(scores.clone(), sparsity)
        require(isinstance(got, torch.Tensor) and got.shape == scores.shape,
                 f"return a tensor of shape {tuple(scores.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        require(torch.equal(got.float(), expected),
                 f"for sparsity {sparsity} on a {tuple(shape)} tensor keep {int(expected.sum())} of {scores.numel()} "
                 f"entries (the highest scores); you kept {int((got != 0).sum())}, or not the highest ones. "
                 "Zero the round(sparsity * numel) lowest scores (torch.topk(..., largest=False)).")
    return ("exactly the top-k scores are kept in every matrix, as movement pruning's forward pass does.")
