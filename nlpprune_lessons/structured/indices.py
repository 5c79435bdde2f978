"""Validation of the indices that structured pruning removes (units, heads, neurons, layers)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch


def as_index(value, size: int, what: str) -> int:
    """``value`` as an int in ``range(size)``; ValueError naming ``what`` otherwise (bools refused)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        index = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an int, got {value!r}") from None
    if not 0 <= index < size:
        raise ValueError(f"{what} {index} is out of range: allowed 0..{size - 1}")
    return index


def check_indices(values, size: int, what: str, whole: str) -> list[int]:
    """``values`` as a list of distinct ints in ``range(size)`` that leaves at least one of ``whole``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{whole} to remove must be given as a sequence of int indices, got {values!r}")
    indices = [as_index(v, size, what) for v in values]
    for pos, index in enumerate(indices):
        if index in indices[:pos]:
            raise ValueError(f"{what} {index} is listed more than once")
    if len(indices) == size:
        raise ValueError(f"cannot remove all {size} {whole}; keep at least one")
    return indices


def kept(size: int, removed: Sequence[int]) -> torch.Tensor:
    """The indices of ``range(size)`` not in ``removed``, ascending."""
    return torch.tensor(sorted(set(range(size)) - set(removed)), dtype=torch.long)
