"""Checks for the exercises of lesson 00 (welcome and setup)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import compare_numbers, exercise, require_callable
from nlpprune_lessons.pruning import zero_fraction as library_zero_fraction

__all__ = ["check_zero_fraction"]


@exercise("00.1", "zero_fraction")
def check_zero_fraction(zero_fraction: Callable[[torch.Tensor], float]) -> str:
    """Exercise 00.1: ``zero_fraction(t)`` returns the share of entries of ``t`` equal to zero."""
    require_callable(zero_fraction, "zero_fraction")
    hint = ("Count only the entries exactly equal to zero (-0.0 is zero; a tiny value such as 1e-12 is not) and "
            "divide by the number of all entries, whatever the tensor's shape and dtype.")
    cases = [
        (torch.tensor([0.0, 1.0, 0.0, 2.0]), 0.5),
        (torch.zeros(3, 5), 1.0),
        (torch.ones(7), 0.0),
        (torch.tensor([[0, 3], [4, 5], [0, 0]]), 0.5),  # integers, 2-D
        (torch.tensor([-0.0, 1e-12, 0.0], dtype=torch.float64), 2 / 3),  # -0.0 is zero; a tiny number is not
    ]
    for tensor, stated in cases:
        expected = library_zero_fraction(tensor)
        assert math.isclose(expected, stated)  # the cases document the library's answers
        got = zero_fraction(tensor.clone())
        what = f"for {tensor.tolist()} ({str(tensor.dtype).removeprefix('torch.')}), the share of zeros"
        compare_numbers(got, expected, what, hint)
    return "zero_fraction counts exact zeros over all entries, for any shape and dtype."
