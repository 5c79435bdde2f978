"""Checks for the exercises of lesson 00 (welcome and setup)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import (
    exercise,
    require,
    require_callable,
)
from nlpprune_lessons.pruning import zero_fraction as library_zero_fraction

__all__ = ["check_zero_fraction"]


@exercise("00.1", "zero_fraction")
def check_zero_fraction(zero_fraction: Callable[[torch.Tensor], float]) -> str:
    """Exercise 00.1: ``zero_fraction(t)`` returns the share of entries of ``t`` equal to zero."""
    require_callable(zero_fraction, "zero_fraction")
    cases = [
        (torch.tensor([0.0, 1.0, 0.0, 2.0]), 0.5),
        (torch.zeros(3, 5), 1.0),
        (torch.ones(7), 0.0),
        (torch.tensor([[0, 3], [4, 5], [0, 0]]), 0.5),  # integers, 2-D
        (torch.tensor([-0.0, 1e-12, 0.0]), 2 / 3),  # -0.0 is zero; a tiny number is not
    ]
    for tensor, stated in cases:
        expected = library_zero_fraction(tensor)
        assert math.isclose(expected, stated)  # the cases document the library's answers
        got = zero_fraction(tensor.clone())
        require(
            isinstance(got, (float, int)) and not isinstance(got, bool),
            f"return a Python float (use .item()), got {type(got).__name__} for {tensor.tolist()}",
        )
        require(
            math.isclose(float(got), expected, abs_tol=1e-9),
            f"for {tensor.tolist()} the answer is {expected:.4f}, you returned {float(got):.4f}. "
            "Count entries with t == 0 (not abs(t) < eps) and divide by t.numel().",
        )
    return "zero_fraction counts exact zeros over all entries, for any shape and dtype."
