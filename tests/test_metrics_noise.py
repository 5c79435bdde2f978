"""The noise around a measurement: binomial standard error, bootstrap of a mean, the verdict rule."""

import math

import pytest
import torch

from nlpprune_lessons.metrics import binomial_standard_error, bootstrap_mean, verdict


def test_binomial_standard_error_matches_the_formula():
    assert binomial_standard_error(0.77, 1276) == pytest.approx(math.sqrt(0.77 * 0.23 / 1276))
    assert binomial_standard_error(1.0, 10) == 0.0


@pytest.mark.parametrize("accuracy, n", [(1.2, 10), (-0.1, 10), (0.5, 0), (0.5, 2.5), (True, 10), (0.5, True)])
def test_binomial_standard_error_bad_arguments(accuracy, n):
    with pytest.raises(ValueError, match="accuracy must be|n must be"):
        binomial_standard_error(accuracy, n)


def test_bootstrap_mean_is_weighted_repeatable_and_shrinks_with_more_data():
    values = torch.tensor([1.0, 3.0])
    assert bootstrap_mean(values, [3, 1])["mean"] == pytest.approx(1.5)  # (3*1 + 1*3) / 4
    noisy = torch.randn(100, generator=torch.Generator().manual_seed(0))
    first, again = bootstrap_mean(noisy), bootstrap_mean(noisy)
    assert first == again  # seeded
    assert first["low"] < first["mean"] < first["high"]
    assert first["se"] == pytest.approx(1 / 10, rel=0.3)  # about sd / sqrt(n)
    more = bootstrap_mean(torch.randn(10_000, generator=torch.Generator().manual_seed(0)))
    assert more["se"] < first["se"] / 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(values=[1.0]), "need >= 2 values"), (dict(values=[1.0, 2.0], weights=[1.0]), "one weight per value"),
    (dict(values=[1.0, 2.0], weights=[-1.0, 2.0]), "weights must be >= 0"),
    (dict(values=[1.0, 2.0], resamples=5), "resamples must be")])
def test_bootstrap_mean_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean(**kwargs)


def test_verdict_calls_a_difference_inside_two_standard_errors_a_tie():
    assert verdict(0.03, 0.01) == "win"
    assert verdict(-0.03, 0.01) == "loss"
    assert verdict(0.019, 0.01) == "tie"
    assert verdict(0.0, 0.0) == "tie"
    assert verdict(0.001, 0.0) == "win"  # no noise at all: any difference counts
    for bad in (dict(difference=float("nan"), standard_error=0.1), dict(difference=0.1, standard_error=-1.0),
                dict(difference="0.1", standard_error=0.1)):
        with pytest.raises(ValueError):
            verdict(**bad)


def test_majority_share_and_collapse_to_the_majority_class():
    from nlpprune_lessons.metrics import collapsed_to_majority, majority_share

    assert majority_share([1, 0, 1, 1]) == 0.75
    assert majority_share(torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)
    se = binomial_standard_error(0.60, 1000)  # about 0.0155
    assert collapsed_to_majority(0.60, 1000, 0.58)  # 0.02 above: inside two standard errors
    assert not collapsed_to_majority(0.60 + 0.0, 1000, 0.60 - 2.01 * se)
    assert collapsed_to_majority(0.40, 1000, 0.58)  # below the floor counts too
    for bad in ([], [[0, 1]]):
        with pytest.raises(ValueError, match="labels must be"):
            majority_share(bad)
    with pytest.raises(ValueError, match="majority must be"):
        collapsed_to_majority(0.6, 100, 1.5)
    with pytest.raises(ValueError, match="n must be"):
        collapsed_to_majority(0.6, 0, 0.5)


def test_mean_and_spread_of_repeated_measurements():
    from nlpprune_lessons.metrics import mean_and_spread

    out = mean_and_spread([0.70, 0.72, 0.74])
    assert out["mean"] == pytest.approx(0.72) and out["sd"] == pytest.approx(0.02)
    assert out["se"] == pytest.approx(0.02 / math.sqrt(3)) and out["n"] == 3
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_spread([0.7])
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_spread([0.7, float("nan")])
    with pytest.raises(TypeError, match="sequence"):
        mean_and_spread("0.7")
