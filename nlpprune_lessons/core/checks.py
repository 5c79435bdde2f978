"""Argument checks shared by the public helpers: each raises ValueError naming the argument, what it
must be, and what it got (bools are refused where numbers are expected: ``True`` is not a count)."""

from __future__ import annotations


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is True or False, else TypeError naming ``name`` (0, 1 and strings are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_positive_int(value: object, name: str, meaning: str = "") -> int:
    """``value`` if it is an int >= 1 (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{f' ({meaning})' if meaning else ''}, got {value!r}")
    return value


def check_positive_number(value: object, name: str, meaning: str = "") -> float:
    """``value`` as a float if it is a finite number > 0 (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number{f' ({meaning})' if meaning else ''}, got {value!r}")
    return float(value)


def check_warmup_ratio(value: object, name: str = "warmup_ratio") -> float:
    """``value`` as a float if it is a number in [0, 1) (the share of steps spent warming up the learning
    rate; not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1) (the share of steps that warm up), got {value!r}")
    return float(value)
