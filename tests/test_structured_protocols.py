"""Lesson 04's experiments: zeroing vs removing units, iterative removal, cost reports."""

from __future__ import annotations

import pytest
import torch
from tiny_models import (
    KINDS,
    UNITS,
    assert_same_rnn_outputs,
    rnn_classifier_batches,
    rnn_outputs,
    tiny_rnn,
    tiny_rnn_classifier,
    tiny_rnn_lm,
)

from nlpprune_lessons.measure.size import file_size_bytes
from nlpprune_lessons.structured import hidden_sizes, recurrent_flops, remove_hidden_units
from nlpprune_lessons.structured.protocols import RemovalStep, cost_report, iterative_unit_removal, zero_hidden_units


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zeroing_every_weight_of_a_unit_equals_removing_it_and_keeps_every_shape(kind, cell):
    model = tiny_rnn(kind, cell, 3)
    zeroed = zero_hidden_units(model, UNITS)
    assert [p.shape for p in zeroed.parameters()] == [p.shape for p in model.parameters()]
    assert sum(p.numel() for p in zeroed.parameters()) == sum(p.numel() for p in model.parameters())
    assert sum(int((p == 0).sum()) for p in zeroed.parameters()) > sum(int((p == 0).sum()) for p in model.parameters())
    assert_same_rnn_outputs(zeroed, remove_hidden_units(model, UNITS), kind)
    # and it did change the function (so the comparison above can fail)
    assert not torch.allclose(rnn_outputs(zeroed, kind)[0], rnn_outputs(model, kind)[0], atol=1e-5)


def test_zeroing_leaves_the_input_model_alone_and_validates_units():
    model = tiny_rnn_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zero_hidden_units(model, {0: [1]})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="listed more than once"):
        zero_hidden_units(model, {0: [1, 1]})
    with pytest.raises(ValueError, match="out of range"):
        zero_hidden_units(model, {5: [1]})
    with pytest.raises(TypeError, match="units must be a dict"):
        zero_hidden_units(model, [1])


def test_iterative_removal_shrinks_step_by_step_from_the_original_sizes():
    dense = tiny_rnn_classifier(num_layers=2)  # hidden 8 per layer
    tuned = []
    steps = iterative_unit_removal(dense, lambda m: {"sizes": hidden_sizes(m)}, [0.75, 0.25], "activation",
                                   fine_tune=lambda m: tuned.append(hidden_sizes(m)), data=rnn_classifier_batches(),
                                   progress=False)
    assert [s.fraction for s in steps] == [0.25, 0.75]
    assert [hidden_sizes(s.model) for s in steps] == [[6, 6], [2, 2]]  # round((1 - f) * 8)
    assert tuned == [[6, 6], [2, 2]]
    assert isinstance(steps[0], RemovalStep) and steps[0].record()["hidden_sizes"] == [6, 6]
    assert steps[1].record()["sizes"] == [2, 2] and steps[1].record()["criterion"] == "activation"
    assert hidden_sizes(dense) == [8, 8]


@pytest.mark.parametrize("sparsities", [[], [0.0], [1.0], [True]])
def test_iterative_removal_bad_sparsities(sparsities):
    with pytest.raises(ValueError, match="sparsities must be a non-empty list of numbers in"):
        iterative_unit_removal(tiny_rnn_classifier(), lambda m: {}, sparsities, "l2", None, progress=False)


def test_cost_report_ratios_and_file_size_follow_the_shapes():
    dense = tiny_rnn_lm(num_layers=2)
    slim = remove_hidden_units(dense, {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]})
    report = cost_report(slim, dense, seq_len=8, batch_sizes=(1, 4), repeats=3)
    assert report["params"] == sum(p.numel() for p in slim.parameters())
    assert report["flop_ratio"] == pytest.approx(recurrent_flops(dense, 8) / recurrent_flops(slim, 8))
    assert report["flop_ratio"] > 1
    assert {"rnn_ms_b1", "rnn_ms_b4", "speedup_b1", "speedup_b4", "threads", "file_MB"} <= report.keys()
    assert report["file_MB"] * 1e6 == file_size_bytes(slim) < file_size_bytes(dense)
    same = cost_report(dense, dense, seq_len=8, batch_sizes=(1,), repeats=3)
    assert same["flop_ratio"] == 1.0 and same["params"] == sum(p.numel() for p in dense.parameters())


def test_zeroing_refuses_the_last_layer_of_a_tied_lm():
    model = tiny_rnn_lm(tie_weights=True, embed_dim=8)
    with pytest.raises(ValueError, match="tied weights"):
        zero_hidden_units(model, {1: [0]})
    zeroed = zero_hidden_units(model, {0: [0, 3]})  # an inner layer is fine, and the tie is kept
    assert zeroed.decoder.weight is zeroed.embedding.weight
    assert_same_rnn_outputs(zeroed, remove_hidden_units(model, {0: [0, 3]}), "lm")


def test_cost_report_validates_and_restores_the_training_mode():
    model = remove_hidden_units(tiny_rnn_classifier(), {}).train()
    report = cost_report(model, tiny_rnn_classifier(), seq_len=5, batch_sizes=(2,), repeats=3, rounds=1)
    assert report["flop_ratio"] == 1.0 and model.training
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        cost_report(model, tiny_rnn_classifier(), seq_len=0, batch_sizes=(2,), repeats=3, rounds=1)
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        cost_report(model, tiny_rnn_classifier(), seq_len=5, batch_sizes=(2,), repeats=3, rounds=0)
