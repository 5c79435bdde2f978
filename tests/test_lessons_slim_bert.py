"""Lesson 08's readings: random draws against a score, verdicts against the dense control trained as
long, training budgets as labels, lesson 07's collapsed runs, same-shape latency noise and the
figure's sentences."""

import math

import pandas as pd
import pytest
import torch

from nlpprune_lessons.lessons import l08_slim_bert as l08
from nlpprune_lessons.metrics import binomial_standard_error


def test_random_scores_are_seeded_draws_of_the_given_shapes():
    draws = l08.random_scores([(2, 3)], 5, seed=1)
    assert len(draws) == 5 and all(d[0].shape == (2, 3) for d in draws)
    assert not torch.equal(draws[0][0], draws[1][0])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(draws, l08.random_scores([(2, 3)], 5, seed=1)))
    ffn = l08.random_scores([4, 6], 2)
    assert [t.shape[0] for t in ffn[0]] == [4, 6]
    with pytest.raises(ValueError, match="draws must be"):
        l08.random_scores([4], 0)
    with pytest.raises(TypeError, match="shapes must be"):
        l08.random_scores("4", 2)


def test_versus_random_reads_the_score_in_standard_deviations_of_the_draws():
    out = l08.versus_random(0.80, [0.70, 0.72, 0.74])
    assert out["mean"] == pytest.approx(0.72) and out["sds"] == pytest.approx(4.0) and out["above_all"]
    assert not l08.versus_random(0.73, [0.70, 0.72, 0.74])["above_all"]
    assert math.isnan(l08.versus_random(0.8, [0.7, 0.7])["sds"])  # draws that do not vary give no scale


def test_budget_label_names_steps_epochs_embeddings_and_teacher():
    assert l08.budget_label([319] * 3, 1, True, "logits") == "3 x 319 steps (1 epoch each), embeddings frozen, KD on logits"
    assert l08.budget_label([319], 1, False, "none") == "319 steps (1 epoch), embeddings trained, no KD"
    assert l08.budget_label([10, 12], 2, True, "logits + hidden states").startswith("10 + 12 = 22 steps (2 epochs each)")
    for args, message in [(([], 1, True, "none"), "steps must be"), (([3], 0, True, "none"), "epochs must be"),
                          (([3], 1, True, "hidden"), "teacher must be")]:
        with pytest.raises(ValueError, match=message):
            l08.budget_label(*args)


def _scored(accuracy, n=1000):
    return {"test_accuracy": accuracy, "test_accuracy_se": binomial_standard_error(accuracy, n)}


def test_against_control_gives_the_difference_in_standard_errors_and_the_verdict():
    table = l08.against_control({"slim": _scored(0.80), "tiny": _scored(0.70)}, _scored(0.81))
    slim, tiny = table.iloc[0], table.iloc[1]
    assert slim.verdict == "tie" and slim.difference == pytest.approx(-0.01)
    assert slim.se == pytest.approx(math.hypot(binomial_standard_error(0.80, 1000), binomial_standard_error(0.81, 1000)))
    assert tiny.verdict == "loss" and tiny.ses < -2 and "loss" in tiny.text and "dense control" in tiny.text
    with pytest.raises(ValueError, match="split must be"):
        l08.against_control({"slim": _scored(0.8)}, _scored(0.8), split="train")
    with pytest.raises(ValueError, match="scores lack"):
        l08.against_control({"slim": {"test_accuracy": 0.8}}, _scored(0.8))


def _sparse_records():
    run = dict(kd_hidden_weight=0.0, lr=1e-3, epochs=1, steps=319, freeze_embeddings=False, search=False,
               validation_accuracy=0.8)
    return [
        run | dict(method="one-shot", sparsity_target=0.9, distill=False, test_accuracy=0.80),
        run | dict(method="movement", sparsity_target=0.9, distill=False, test_accuracy=0.5776),
        run | dict(method="movement", sparsity_target=0.9, distill=True, kd_hidden_weight=1.0, test_accuracy=0.58),
        run | dict(method="one-shot", sparsity_target=0.9, distill=False, test_accuracy=0.70, search=True),
        {"experiment": "latency_b32_s64_ms", "dense": 380.0, "masked": 370.0},
        {"target": "something", "measured": 1.0, "met": True},
    ]


def test_sparse_reference_points_mark_collapsed_runs_and_name_budgets():
    runs, speedup = l08.sparse_reference_points(_sparse_records(), 1276, 0.5776)
    assert speedup == pytest.approx(380 / 370)
    assert len(runs) == 3  # the learning-rate search run is left out
    assert runs.collapsed.tolist() == [False, True, True]
    assert runs.budget[0] == "319 steps (1 epoch), embeddings trained, no KD"
    assert runs.budget[2].endswith("KD on logits + hidden states")
    with pytest.raises(ValueError, match="latency_b32_s64_ms"):
        l08.sparse_reference_points(_sparse_records()[:4] + [{"experiment": "storage"}], 1276, 0.5776)
    with pytest.raises(ValueError, match="results records"):
        l08.sparse_reference_points(_sparse_records()[:4], 1276, 0.5776)


def _latency():
    rows = []
    for model, ms, s, q1, q3 in [("dense", 500.0, 1.0, 1.0, 1.0), ("slim", 180.0, 2.8, 2.7, 2.9),
                                 ("dense control", 495.0, 1.01, 0.98, 1.03)]:
        rows.append({"model": model, "batch": 32, "seq_len": 64, "ms": ms, "ms_iqr": 5.0, "speedup": s,
                     "speedup_q1": q1, "speedup_q3": q3, "threads": 2})
    return pd.DataFrame(rows)


def test_same_shape_speedup_and_latency_view():
    same = l08.same_shape_speedup(_latency(), "dense control")
    assert same["inside_noise"] and same["q1"] == 0.98 and "inside the noise" in same["text"]
    assert not l08.same_shape_speedup(_latency(), "slim")["inside_noise"]
    with pytest.raises(ValueError, match="no row"):
        l08.same_shape_speedup(_latency(), "missing")
    ms, speedup = l08.latency_view(_latency())
    assert ms.loc["slim"].iloc[0] == "180.0 [5.0]" and speedup.loc["slim"].iloc[0] == "2.80 [2.70-2.90]"
    with pytest.raises(ValueError, match="lacks the columns"):
        l08.latency_view(_latency().drop(columns="speedup_q1"))


def test_figure_reading_and_plot_name_collapsed_runs_noise_and_budgets():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = pd.DataFrame([{"stage": "dense", "speedup": 1.0, "flop_ratio": 1.0, **_scored(0.83)},
                          {"stage": "heads + ffn + layers", "speedup": 2.8, "flop_ratio": 3.0, **_scored(0.82)}])
    runs, speedup = l08.sparse_reference_points(_sparse_records(), 1276, 0.5776)
    same = l08.same_shape_speedup(_latency(), "dense control")
    budget = l08.budget_label([319] * 3, 1, True, "logits")
    lines = l08.figure_reading(curve, budget, _scored(0.83), budget, same, runs, speedup, (1276, 0.5776))
    assert "2.80x" in lines[0] and "0.830" in lines[0]
    assert "2 collapsed" in lines[1] and "movement 90%" in lines[1]
    assert "inside the spread" in lines[2]  # 380/370 = 1.027 lies within 0.98-1.03
    assert lines[3].startswith("The budgets differ")
    assert l08.figure_reading(curve, budget, _scored(0.83), budget, same)[-1].startswith("Lesson 07's reference")
    fig, ax = plt.subplots()
    l08.plot_speed_accuracy(ax, curve, budget, floor=0.5, mode="FAST", control=_scored(0.83), control_speedup=1.0,
                            control_budget=budget, sparse=runs, sparse_speedup=speedup, sparse_floor=0.5776)
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("hollow: collapsed") for label in labels)
    assert sum(budget in label for label in labels) == 2 and any("embeddings trained, no KD" in label for label in labels)
    plt.close(fig)
