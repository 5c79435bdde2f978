"""Honest latency measurement: warm-up, repeated timing, medians, thread count stated."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from nlpprune_lessons.core.checks import check_positive_int


@dataclass(frozen=True)
class Latency:
    """Wall-clock timings of one callable, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int

    def __str__(self) -> str:
        return (f"median {self.median_ms:.3f} ms (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}; "
                f"{self.repeats} runs, {self.threads} threads)")


def measure_latency(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 20) -> Latency:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the percentiles.

    CUDA work is synchronised before each clock read, so asynchronous kernels are counted.
    """
    if warmup < 0 or repeats < 3:
        raise ValueError(f"need warmup >= 0 and repeats >= 3, got {warmup} and {repeats}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    deciles = statistics.quantiles(times, n=10)
    return Latency(statistics.median(times), deciles[0], deciles[-1], repeats, torch.get_num_threads())


@dataclass(frozen=True)
class RoundTimes:
    """One candidate's latency over alternating rounds (ms): the median and quartiles of the round
    medians, and its speedup over the reference candidate (the median of the per-round ratios, so
    a slow moment of the machine, which hits both in the same round, cancels) with its quartiles."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    speedup: float
    speedup_q1: float
    speedup_q3: float
    rounds: int

    @property
    def iqr_ms(self) -> float:
        """Interquartile range of the round medians."""
        return self.q3_ms - self.q1_ms


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def latency_rounds(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 5, repeats: int = 20,
                   warmup: int = 3, reference: str | None = None) -> dict[str, RoundTimes]:
    """Time every candidate with :func:`measure_latency` in ``rounds`` alternating rounds (A, B, C, A,
    B, C, ...), so that every candidate meets the machine's quiet and busy moments alike; report per
    candidate the median and interquartile range of its round medians, and its speedup over
    ``reference`` (default: the first candidate) paired by round."""
    if not isinstance(candidates, Mapping) or not all(callable(fn) for fn in candidates.values()):
        raise TypeError("candidates must be a dict {name: callable taking no arguments}")
    if not candidates:
        raise ValueError("candidates must name at least one callable")
    check_positive_int(rounds, "rounds")
    reference = next(iter(candidates)) if reference is None else reference
    if reference not in candidates:
        raise ValueError(f"reference must be one of the candidates {list(candidates)}, got {reference!r}")
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(measure_latency(fn, warmup=warmup, repeats=repeats).median_ms)
    out = {}
    for name, values in times.items():
        q1, median, q3 = _quartiles(values)
        s1, speedup, s3 = _quartiles([r / v for r, v in zip(times[reference], values)])
        out[name] = RoundTimes(median, q1, q3, speedup, s1, s3, rounds)
    return out


def compare_latency(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 5, repeats: int = 20,
                    warmup: int = 3) -> dict[str, float]:
    """Median latency in ms of each candidate over alternating rounds: :func:`latency_rounds` without
    the spread (use that function to report the interquartile range and paired speedups)."""
    return {name: t.median_ms for name, t in
            latency_rounds(candidates, rounds=rounds, repeats=repeats, warmup=warmup).items()}


def inside_iqr_noise(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two timings (or speedups), each given as its interquartile range ``(q1, q3)``, differ
    only inside the noise: their ranges overlap. A value measured once is the range ``(v, v)``."""
    for name, r in (("a", a), ("b", b)):
        if (not isinstance(r, (tuple, list)) or len(r) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r)):
            raise TypeError(f"{name} must be a pair (q1, q3) of finite numbers, got {r!r}")
        if r[0] > r[1]:
            raise ValueError(f"{name} must be (q1, q3) with q1 <= q3, got {r!r}")
    return a[0] <= b[1] and b[0] <= a[1]
