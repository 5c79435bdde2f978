"""The pruning experiments shared by lesson 03 and the benchmark."""

import pytest
import torch
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.pruning import default_params, protocols, sparsity_report


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _dense(seed=0):
    config.set_seed(seed)
    return Toy()


def _evaluate(model):
    return {"prunable": sparsity_report(model).prunable_sparsity}


def test_one_shot_prunes_fresh_copies_and_leaves_the_dense_model_alone():
    dense = _dense()
    before = [p.clone() for p in dense.parameters()]
    records = protocols.one_shot(dense, _evaluate, [0.9, 0.5], progress=False)
    assert [r["sparsity"] for r in records] == [0.5, 0.9]  # sorted
    assert [r["prunable"] for r in records] == [32 / 64, 58 / 64]  # round(s * 64) of 64 weights
    assert all(torch.equal(a, b) for a, b in zip(before, dense.parameters()))
    assert records[0]["schedule"] == "one-shot" and records[0]["fine_tuned"] is False


def test_iterative_fine_tunes_after_every_step_on_one_model():
    dense = _dense()
    calls = []
    records = protocols.iterative(dense, _evaluate, [0.5, 0.8], fine_tune=lambda m: calls.append(id(m)),
                               progress=False)
    assert len(calls) == 2 and calls[0] == calls[1]  # the same model, pruned further
    assert [r["prunable"] for r in records] == [32 / 64, 51 / 64]
    assert all(r["fine_tuned"] for r in records)


def test_one_shot_with_the_iterative_budget_fine_tunes_k_times_at_the_kth_sparsity():
    calls = []
    records = protocols.one_shot(_dense(), _evaluate, [0.8, 0.5, 0.9], fine_tune=lambda m: calls.append(1),
                                 budget="as iterative", progress=False)
    assert [r["fine_tune_rounds"] for r in records] == [1, 2, 3] and len(calls) == 6
    iterative = protocols.iterative(_dense(), _evaluate, [0.5, 0.8, 0.9], fine_tune=lambda m: None, progress=False)
    assert [r["fine_tune_rounds"] for r in iterative] == [1, 2, 3]  # the same budget, sparsity by sparsity
    once = protocols.one_shot(_dense(), _evaluate, [0.5, 0.9], fine_tune=lambda m: None, progress=False)
    assert [r["fine_tune_rounds"] for r in once] == [1, 1]
    with pytest.raises(ValueError, match="budget must be one of"):
        protocols.one_shot(_dense(), _evaluate, [0.5], fine_tune=lambda m: None, budget="twice", progress=False)


def test_lottery_ticket_bad_rewind_steps():
    for steps in ([], [-1], [True]):
        with pytest.raises(ValueError, match="rewind_steps"):
            protocols.lottery_ticket(_dense, lambda m, s: None, _evaluate, 0.5, rewind_steps=steps)
    with pytest.raises(ValueError, match="fewer steps than rewind_steps"):
        protocols.lottery_ticket(_dense, lambda m, s: None, _evaluate, 0.5, rewind_steps=(0, 5))


def test_sensitivity_scan_prunes_one_matrix_at_a_time():
    dense = _dense()
    rows = protocols.sensitivity_scan(dense, _evaluate, [0.5], progress=False)
    assert [r["parameter"] for r in rows] == ["a.weight", "b.weight"]
    sizes = {"a.weight": 48, "b.weight": 16}
    for row in rows:
        assert row["prunable"] == pytest.approx(0.5 * sizes[row["parameter"]] / 64)


def test_bad_sparsities_are_rejected():
    with pytest.raises(ValueError, match="sparsities"):
        protocols.one_shot(_dense(), _evaluate, [], progress=False)
    with pytest.raises(ValueError, match="sparsities"):
        protocols.one_shot(_dense(), _evaluate, [1.5], progress=False)


def test_lottery_ticket_rewinds_the_survivors_and_gives_the_control_the_same_mask():
    seen = {}

    def train(model, on_step):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
        for step in range(1, 4):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
            on_step(step)
        seen.setdefault("models", []).append(model)

    def evaluate(model):
        return {"a_orig": model.a.weight_orig.detach().clone() if hasattr(model.a, "weight_orig") else None}

    records = protocols.lottery_ticket(_dense, train, evaluate, sparsity=0.75, rewind_steps=(0, 2), seed=0)
    assert [r["variant"] for r in records] == ["dense", "ticket (rewound to step 0)", "ticket (rewound to step 2)",
                                               "same mask, random re-init"]
    ticket, late, control = seen["models"][1], seen["models"][2], seen["models"][3]
    assert torch.equal(ticket.a.weight_mask, late.a.weight_mask)
    assert not torch.equal(records[1]["a_orig"], records[2]["a_orig"])  # trained on from different snapshots
    assert torch.equal(ticket.a.weight_mask, control.a.weight_mask)
    assert sparsity_report(ticket).prunable_sparsity == pytest.approx(0.75)
    # the control starts from another initialisation than the ticket
    assert not torch.equal(_dense(0).a.weight, _dense(1).a.weight)
    assert len(default_params(ticket)) == 2


def _sgd_train(steps, restore_first_step=False):
    """A ``train(model, on_step)`` of ``steps`` SGD steps on fixed random data; ``restore_first_step``
    ends with the state after step 1 (what ``restore_best=True`` may do when that epoch was best)."""
    def train(model, on_step):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
        first = None
        for step in range(1, steps + 1):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
            on_step(step)
            if step == 1:
                first = {k: v.clone() for k, v in model.state_dict().items()}
        if restore_first_step:
            model.load_state_dict(first)
    return train


def test_gradual_reaches_each_target_on_a_fresh_copy_and_leaves_the_dense_model_alone():
    dense = _dense()
    before = [p.clone() for p in dense.parameters()]
    records = protocols.gradual(dense, _evaluate, [0.75, 0.5], _sgd_train(20), total_steps=20, prune_until=0.5,
                             pruning_events=5, progress=False)
    assert [r["sparsity"] for r in records] == [0.5, 0.75]
    # layer-wise by default: each matrix at the target, so the prunable total is exact
    assert [r["prunable"] for r in records] == [0.5, 0.75]
    assert all(r["schedule"] == "gradual" and r["scope"] == "layer" and r["pruning_steps"] == 10 for r in records)
    assert all(torch.equal(a, b) for a, b in zip(before, dense.parameters()))


def test_gradual_refuses_a_training_that_stops_before_the_schedule_ends():
    with pytest.raises(ValueError, match="stopped before step 15"):
        protocols.gradual(_dense(), _evaluate, [0.5], _sgd_train(10), total_steps=20, progress=False)


def test_gradual_refuses_a_training_that_restores_earlier_weights():
    with pytest.raises(ValueError, match="restore_best=False"):
        protocols.gradual(_dense(), _evaluate, [0.5], _sgd_train(20, restore_first_step=True), total_steps=20,
                       pruning_events=20, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"total_steps": 0}, "total_steps must be an integer >= 1"),
    ({"total_steps": 10, "prune_until": 0.0}, r"prune_until must be a number in \(0, 1\]"),
    ({"total_steps": 10, "pruning_events": 0}, "pruning_events must be an integer >= 1"),
])
def test_gradual_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        protocols.gradual(_dense(), _evaluate, [0.5], _sgd_train(10), progress=False, **kwargs)


def test_gradual_prunes_at_most_pruning_events_times_and_checks_the_method_first():
    calls = []
    records = protocols.gradual(_dense(), _evaluate, [0.5], _sgd_train(30), total_steps=30, prune_until=0.8,
                             pruning_events=5, progress=False)
    assert records[0]["pruning_events"] == 5 and records[0]["pruning_steps"] == 24
    history = records[0]["pruning_history"]
    assert len(history) == 5 and history[-1] == (24, 0.5) and [s for s, _ in history] == sorted(s for s, _ in history)
    with pytest.raises(ValueError, match="method must be one of"):
        protocols.gradual(_dense(), _evaluate, [0.5], lambda m, s: calls.append(1), total_steps=10, method="biggest",
                       progress=False)
    with pytest.raises(ValueError, match="'taylor' needs data"):
        protocols.gradual(_dense(), _evaluate, [0.5], lambda m, s: calls.append(1), total_steps=10, method="taylor",
                       progress=False)
    with pytest.raises(ValueError, match="prune_until must be a number"):
        protocols.gradual(_dense(), _evaluate, [0.5], lambda m, s: calls.append(1), total_steps=10, prune_until="all",
                       progress=False)
    assert calls == []  # nothing trained before the arguments were checked


def test_dense_control_fine_tunes_one_copy_round_after_round():
    dense = _dense()
    seen = []
    records = protocols.dense_control(dense, lambda m: {"id": id(m)}, lambda m: seen.append(id(m)), rounds=3)
    assert [r["fine_tune_rounds"] for r in records] == [1, 2, 3]
    assert len(set(seen)) == 1 and seen[0] != id(dense) and records[0]["id"] == seen[0]
    assert all(r["sparsity"] == 0.0 and r["prunable_sparsity"] == 0.0 for r in records)
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        protocols.dense_control(dense, _evaluate, lambda m: None, rounds=0)
