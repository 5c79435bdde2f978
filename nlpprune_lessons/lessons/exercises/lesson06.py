"""Checks for the exercises of lesson 06 (BERT fine-tuning)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_attention_mask"]


@exercise("06.1", "attention mask")
def check_attention_mask(attention_mask: Callable[[torch.Tensor, int], torch.Tensor]) -> str:
    """Exercise 06.1: ``attention_mask(lengths, width)`` -> ``[B, width]`` with 1 on each row's first
    ``lengths[b]`` positions (real tokens) and 0 after (padding)."""
    require_callable(attention_mask, "attention_mask")
    cases = [(torch.tensor([3, 1, 4]), 4), (torch.tensor([2]), 5), (torch.tensor([6, 6]), 6)]
    for lengths, width in cases:
        expected = (torch.arange(width)[None, :] < lengths[:, None]).long()
        got = attention_mask(lengths.clone(), width)
        require(isinstance(got, torch.Tensor) and got.shape == expected.shape,
                 f"for lengths {lengths.tolist()} and width {width} return a tensor of shape "
                 f"{tuple(expected.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        require(torch.equal(got.long(), expected),
                 f"for lengths {lengths.tolist()} and width {width} the mask is {expected.tolist()}, you returned "
                 f"{got.tolist()}. Compare positions torch.arange(width) with each row's length.")
    return ("1 marks real tokens, 0 padding; the encoder's attention ignores the 0 positions.")
