"""Latency helpers: percentiles, validation, alternating comparisons."""

import time

import pytest

from nlpprune_lessons.measure.latency import Latency, compare_latency, latency_rounds, measure_latency


def test_measure_latency_counts_calls_and_reports_percentiles():
    calls = []
    latency = measure_latency(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and isinstance(latency, Latency)
    assert latency.p10_ms <= latency.median_ms <= latency.p90_ms and latency.repeats == 5


def test_measure_latency_bad_arguments():
    with pytest.raises(ValueError, match="repeats >= 3"):
        measure_latency(lambda: None, repeats=2)


def test_compare_latency_alternates_and_ranks_a_slow_call_slower():
    order = []

    def fast():
        order.append("fast")

    def slow():
        order.append("slow")
        time.sleep(0.002)

    ms = compare_latency({"fast": fast, "slow": slow}, rounds=2, repeats=3, warmup=0)  # median of the round medians
    assert ms["slow"] > ms["fast"] and ms["slow"] >= 2.0
    assert order == ["fast"] * 3 + ["slow"] * 3 + ["fast"] * 3 + ["slow"] * 3  # round by round


@pytest.mark.parametrize("kwargs, message", [({"rounds": 0}, "rounds must be a positive int"),
                                             ({"rounds": True}, "rounds must be a positive int")])
def test_compare_latency_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare_latency({"a": lambda: None}, **kwargs)
    with pytest.raises(ValueError, match="at least one callable"):
        compare_latency({})


def test_latency_rounds_reports_spread_and_paired_speedup():
    def slow():
        time.sleep(0.002)

    times = latency_rounds({"slow": slow, "fast": lambda: None}, rounds=3, repeats=3, warmup=0)
    assert times["slow"].speedup == 1.0 and times["fast"].speedup > 5  # paired ratio over the reference (first)
    assert times["fast"].q1_ms <= times["fast"].median_ms <= times["fast"].q3_ms and times["fast"].rounds == 3
    assert times["slow"].iqr_ms >= 0
    with pytest.raises(ValueError, match="reference must be one of"):
        latency_rounds({"a": lambda: None}, reference="b")


def test_inside_iqr_noise_is_overlap_of_the_ranges():
    from nlpprune_lessons.measure.latency import inside_iqr_noise

    assert inside_iqr_noise((0.98, 1.03), (1.0, 1.0))
    assert inside_iqr_noise((1.0, 2.0), (2.0, 3.0))  # touching counts as overlap
    assert not inside_iqr_noise((1.05, 1.10), (1.0, 1.0))
    assert not inside_iqr_noise((2.0, 2.1), (2.5, 2.7))
    with pytest.raises(ValueError, match="q1 <= q3"):
        inside_iqr_noise((1.1, 1.0), (1.0, 1.0))
    with pytest.raises(TypeError, match="pair"):
        inside_iqr_noise(1.0, (1.0, 1.0))
