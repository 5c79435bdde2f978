"""Honest latency measurement: warm-up, repeated timing, medians, thread count stated."""

from __future__ import annotations

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


def compare_latency(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 5, repeats: int = 20,
                    warmup: int = 3) -> dict[str, float]:
    """Latency in ms of each candidate: :func:`measure_latency` in ``rounds`` alternating rounds, and
    the fastest round's median per candidate. On a shared machine other work only ever adds time, and
    alternating makes every candidate meet the quiet moments, so the ratios between candidates are fair
    (the same reasoning as ``timeit``'s advice to take the minimum)."""
    if not isinstance(candidates, Mapping) or not all(callable(fn) for fn in candidates.values()):
        raise TypeError("candidates must be a dict {name: callable taking no arguments}")
    if not candidates:
        raise ValueError("candidates must name at least one callable")
    check_positive_int(rounds, "rounds")
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(measure_latency(fn, warmup=warmup, repeats=repeats).median_ms)
    return {name: min(values) for name, values in times.items()}
