"""Lesson 07's reading of the fine-pruning runs: the movement variant is chosen on validation among the
runs that reached the target, and the verdict comes with the test set's noise."""

import pandas as pd
import pytest

from nlpprune_lessons.lessons import l07_sparse_bert


def _runs(soft_reached=0.97, soft_validation=0.80):
    return pd.DataFrame([
        {"method": "gradual", "sparsity_target": 0.0, "validation_accuracy": 0.82, "test_accuracy": 0.84, "prunable_sparsity": 0.0},
        {"method": "gradual", "sparsity_target": 0.97, "validation_accuracy": 0.70, "test_accuracy": 0.71, "prunable_sparsity": 0.97},
        {"method": "movement", "sparsity_target": 0.97, "validation_accuracy": 0.76, "test_accuracy": 0.76, "prunable_sparsity": 0.97},
        {"method": "soft movement", "sparsity_target": 0.97, "validation_accuracy": soft_validation, "test_accuracy": 0.70,
         "prunable_sparsity": soft_reached},
    ])


def test_validation_chooses_the_movement_variant_and_test_only_judges_it():
    verdicts = l07_sparse_bert.fine_pruning_verdicts(_runs(), n_test=1066)
    assert list(verdicts.sparsity) == [0.97]  # the dense control (0%) is not a comparison
    row = verdicts.iloc[0]
    # soft movement is better on validation, so it is compared, though its test accuracy is the worse one
    assert row.movement_chosen == "soft movement" and row.difference == pytest.approx(-0.01)
    assert row.verdict == "tie" and row.left_out == ""
    assert row.se == pytest.approx((0.7 * 0.3 / 1066 + 0.71 * 0.29 / 1066) ** 0.5)


def test_a_run_short_of_the_target_is_left_out():
    row = l07_sparse_bert.fine_pruning_verdicts(_runs(soft_reached=0.90), n_test=1066).iloc[0]
    assert row.movement_chosen == "movement" and row.verdict == "win"
    assert row.z == pytest.approx(0.05 / row.se) and "soft movement (reached 90.0%)" in row.left_out


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_test"):
        l07_sparse_bert.fine_pruning_verdicts(_runs(), n_test=0)
    with pytest.raises(ValueError, match="columns"):
        l07_sparse_bert.fine_pruning_verdicts(_runs().drop(columns="prunable_sparsity"), n_test=10)


def test_ramp_budget_counts_the_steps_and_the_first_cut():
    budget = l07_sparse_bert.ramp_budget(957, 319, 638, 0.97)
    assert (budget["before the ramp"], budget["ramp"], budget["at the final sparsity"]) == (319, 319, 319)
    assert budget["pruned in the ramp's first step"] == pytest.approx(0.97 * (1 - (1 - 1 / 319) ** 3))
    paper = l07_sparse_bert.PAPER_FINE_PRUNING_BUDGET
    assert paper["steps"] == 54_750 and paper["steps"] - paper["hold_steps"] - paper["dense_steps"] == 38_550
    with pytest.raises(ValueError, match="start"):
        l07_sparse_bert.ramp_budget(10, 5, 5, 0.9)
    with pytest.raises(ValueError, match="steps"):
        l07_sparse_bert.ramp_budget(0, 0, 1, 0.9)
