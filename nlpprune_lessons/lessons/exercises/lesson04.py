"""Checks for the exercises of lesson 04 (structured pruning of RNNs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_unit_rows"]


@exercise("04.1", "a hidden unit's rows")
def check_unit_rows(unit_rows: Callable[[int, int, int], Sequence[int]]) -> str:
    """Exercise 04.1: ``unit_rows(unit, hidden_size, gates)`` = the rows of ``weight_ih`` / ``weight_hh``
    (and bias entries) that belong to hidden unit ``unit``: one per gate block, in block order."""
    require_callable(unit_rows, "unit_rows")
    for unit, hidden_size, gates in [(0, 4, 4), (3, 4, 4), (5, 256, 4), (2, 3, 3), (255, 256, 3)]:
        expected = [g * hidden_size + unit for g in range(gates)]
        got = list(unit_rows(unit, hidden_size, gates))
        require(got == expected,
                 f"for unit={unit}, hidden_size={hidden_size}, gates={gates} the rows are {expected}, you returned "
                 f"{got}. weight_ih stacks the gate blocks (LSTM: i, f, g, o; GRU: r, z, n) on top of each other, "
                 "each hidden_size rows tall; the unit has one row in each block.")
    # the rows really are the unit: zero them in an LSTM and the unit's output stays exactly 0
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(lstm, name)[list(unit_rows(2, 5, 4))] = 0.0
        out, _ = lstm(torch.randn(2, 6, 3))
    require(bool((out[..., 2] == 0).all()), "zeroing your rows did not silence unit 2 of an LSTM.")
    return ("row g * hidden_size + unit of each gate block; zeroing them silences the unit.")
