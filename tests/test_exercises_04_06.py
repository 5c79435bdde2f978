"""The exercise checks of lessons 04-06: each accepts a right answer and rejects a typical wrong one with a
message naming the mismatch; and the library pieces they were added with (the straight-through
Gumbel-softmax with given noise, the figure of what one LSTM unit owns)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlpprune_lessons.lessons.exercises import (
    NOT_DONE,
    PASSED,
    ExerciseError,
    check_attention_mask,
    check_distinct_n,
    check_lr_factor,
    check_mask_prox_step,
    check_masked_attention,
    check_remove_unit,
    check_straight_through_gumbel,
    check_unit_columns,
    check_unit_rows,
)
from nlpprune_lessons.models.gan import straight_through_gumbel_softmax

matplotlib.use("Agg")


# ------------------------------------------------------------------ right answers
def unit_rows(unit, hidden_size, gates):
    return [g * hidden_size + unit for g in range(gates)]


def unit_columns(unit, hidden_size, directions):
    return [unit], [d * hidden_size + unit for d in range(directions)]


def remove_unit(lstm, linear, unit):
    hidden = lstm.hidden_size
    keep = [j for j in range(hidden) if j != unit]
    rows = [g * hidden + j for g in range(4) for j in keep]
    new_lstm, new_linear = nn.LSTM(lstm.input_size, hidden - 1, batch_first=True), nn.Linear(hidden - 1, linear.out_features)
    with torch.no_grad():
        new_lstm.weight_ih_l0.copy_(lstm.weight_ih_l0[rows])
        new_lstm.weight_hh_l0.copy_(lstm.weight_hh_l0[rows][:, keep])
        new_lstm.bias_ih_l0.copy_(lstm.bias_ih_l0[rows])
        new_lstm.bias_hh_l0.copy_(lstm.bias_hh_l0[rows])
        new_linear.weight.copy_(linear.weight[:, keep])
        new_linear.bias.copy_(linear.bias)
    return new_lstm, new_linear


def distinct(sentences, n):
    grams = [tuple(s[i:i + n]) for s in sentences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def st_gumbel_softmax(logits, gumbel, tau):
    soft = ((logits + gumbel) / tau).softmax(-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


def prox_step(mask, grad, lr, l1):
    return (mask - lr * grad - lr * l1).clamp(min=0.0)


def mask_from_lengths(lengths, width):
    return (torch.arange(width)[None, :] < lengths[:, None]).long()


def masked_attention(q, k, v, attention_mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return scores.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf")).softmax(-1) @ v


def lr_factor(step, total_steps, warmup_steps):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


RIGHT = [(check_unit_rows, unit_rows), (check_unit_columns, unit_columns), (check_remove_unit, remove_unit),
         (check_distinct_n, distinct), (check_straight_through_gumbel, st_gumbel_softmax),
         (check_mask_prox_step, prox_step), (check_attention_mask, mask_from_lengths),
         (check_masked_attention, masked_attention), (check_lr_factor, lr_factor)]


@pytest.mark.parametrize("check, answer", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_the_right_answer_passes(check, answer, capsys):
    assert check(answer) == PASSED
    assert "passed" in capsys.readouterr().out


def test_a_blank_answer_is_not_done_yet(capsys):
    def blank(*args):
        raise NotImplementedError("write your code")

    assert check_remove_unit(blank) == NOT_DONE
    assert "not done yet" in capsys.readouterr().out


def test_the_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    for check, answer in [(check_unit_rows, unit_rows), (check_unit_columns, unit_columns),
                          (check_remove_unit, remove_unit),  # the answer itself builds new layers
                          (check_mask_prox_step, prox_step), (check_attention_mask, mask_from_lengths)]:
        check(answer)
    assert torch.equal(torch.rand(3), before)


# ------------------------------------------------------------------ wrong answers
def test_unit_rows_rejects_consecutive_rows():
    with pytest.raises(ExerciseError, match=r"expected the rows \[0, 4, 8, 12\], got \[0, 1, 2, 3\].*gate blocks"):
        check_unit_rows(lambda unit, hidden_size, gates: [unit * gates + g for g in range(gates)])


def test_unit_columns_rejects_gate_rows_as_recurrent_columns_and_a_missing_direction():
    with pytest.raises(ExerciseError, match=r"columns of weight_hh: every index must lie in 0\.\.3.*one column per unit"):
        check_unit_columns(lambda unit, hidden_size, directions: (unit_rows(unit, hidden_size, 4), [unit]))
    with pytest.raises(ExerciseError, match=r"directions=2: expected the next layer's columns \[2, 7\], got \[2\]"):
        check_unit_columns(lambda unit, hidden_size, directions: ([unit], [unit]))


def test_remove_unit_rejects_the_wrong_unit_and_a_kept_bias_column():
    with pytest.raises(ExerciseError, match=r"the new LSTM's weight_ih_l0: \d+ of \d+ entries differ"):
        check_remove_unit(lambda lstm, linear, unit: remove_unit(lstm, linear, (unit + 1) % lstm.hidden_size))

    def forgets_the_recurrent_columns(lstm, linear, unit):
        new_lstm, new_linear = remove_unit(lstm, linear, unit)
        hidden = lstm.hidden_size
        keep = [j for j in range(hidden) if j != unit]
        with torch.no_grad():  # rows right, but the columns of weight_hh taken as the first hidden-1
            new_lstm.weight_hh_l0.copy_(lstm.weight_hh_l0[[g * hidden + j for g in range(4) for j in keep]][:, :hidden - 1])
        return new_lstm, new_linear

    with pytest.raises(ExerciseError, match=r"weight_hh_l0: \d+ of \d+ entries differ"):
        check_remove_unit(forgets_the_recurrent_columns)


def test_remove_unit_rejects_changing_the_original_modules():
    def in_place(lstm, linear, unit):
        new = remove_unit(lstm, linear, unit)
        with torch.no_grad():
            linear.weight[:, unit] = 0.0
        return new

    with pytest.raises(ExerciseError, match="changed the original model's classifier.weight"):
        check_remove_unit(in_place)


def test_distinct_n_rejects_a_per_sentence_average():
    with pytest.raises(ExerciseError, match=r"n=1, distinct-n: expected 0\.4, got 0\.833333.*whole set"):
        check_distinct_n(lambda sentences, n: sum(distinct([s], n) for s in sentences) / len(sentences))


def test_straight_through_gumbel_rejects_the_soft_sample_and_a_sample_without_gradient():
    with pytest.raises(ExerciseError, match=r"the sample's value: \d+ of \d+ entries differ.*one-hot"):
        check_straight_through_gumbel(lambda logits, gumbel, tau: ((logits + gumbel) / tau).softmax(-1))
    with pytest.raises(ExerciseError, match="carries no gradient"):
        check_straight_through_gumbel(
            lambda logits, gumbel, tau: F.one_hot((logits + gumbel).argmax(-1), logits.shape[-1]).float())


def test_straight_through_gumbel_rejects_a_gradient_at_the_wrong_temperature():
    with pytest.raises(ExerciseError, match=r"tau 0\.5: the gradient .* entries differ"):
        check_straight_through_gumbel(lambda logits, gumbel, tau: st_gumbel_softmax(logits, gumbel, 1.0))


def test_prox_step_rejects_a_subgradient_step_that_goes_below_zero():
    with pytest.raises(ExerciseError, match=r"layer 0's masks after one step with lr 0\.1 and l1 2\.0: .*expected 0, got -"):
        check_mask_prox_step(lambda mask, grad, lr, l1: mask - lr * grad - lr * l1 * torch.sign(mask))


def test_attention_mask_rejects_an_off_by_one():
    with pytest.raises(ExerciseError, match=r"lengths \[3, 1, 4\] and width 4, the mask: 2 of 12 entries differ"):
        check_attention_mask(lambda lengths, width: (torch.arange(width)[None, :] <= lengths[:, None]).long())


def test_masked_attention_rejects_a_missing_scale_and_a_missing_mask():
    with pytest.raises(ExerciseError, match=r"no padding: the output: .*sqrt\(d\)"):
        check_masked_attention(lambda q, k, v, m: (q @ k.transpose(-2, -1)).softmax(-1) @ v)
    with pytest.raises(ExerciseError, match=r"lengths \[.*\]: the output: .*-inf"):
        check_masked_attention(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v))


def test_lr_factor_rejects_a_warm_up_that_starts_at_zero():
    # transformers.get_linear_schedule_with_warmup's factor: step / warmup_steps
    with pytest.raises(ExerciseError, match=r"warmup_steps 2, the factor at step 0: expected 0\.5, got 0\..*first update"):
        check_lr_factor(lambda step, total, warmup: step / warmup if step < warmup
                        else max(0.0, (total - step) / max(1, total - warmup)))


def test_lr_factor_rejects_a_decay_that_misses_zero_at_the_end():
    with pytest.raises(ExerciseError, match=r"the factor at step \d+: expected .*falls linearly"):
        check_lr_factor(lambda step, total, warmup: (step + 1) / warmup if step < warmup
                        else max(0.0, (total - step + 1) / max(1, total - warmup + 1)))


# ------------------------------------------------------------------ library pieces
def test_straight_through_gumbel_softmax_equals_torch_given_the_same_noise():
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    weights = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    with torch.random.fork_rng():
        torch.manual_seed(3)
        expected = F.gumbel_softmax(logits, tau=0.7, hard=True)
        torch.manual_seed(3)  # the noise F.gumbel_softmax draws
        gumbels = -torch.empty_like(logits).exponential_().log()
    got = straight_through_gumbel_softmax(logits, gumbels, 0.7)
    assert torch.equal(got, expected)
    assert torch.equal(got.sum(-1), torch.ones(4)) and set(got.detach().unique().tolist()) == {0.0, 1.0}
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), logits)
    (grad,) = torch.autograd.grad((got * weights).sum(), logits)
    assert torch.allclose(grad, expected_grad, atol=1e-7)


def test_straight_through_gumbel_softmax_validates_its_arguments():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same shape"):
        straight_through_gumbel_softmax(logits, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="tau"):
        straight_through_gumbel_softmax(logits, torch.zeros(2, 3), tau=0.0)
    with pytest.raises(TypeError, match="tensors"):
        straight_through_gumbel_softmax([[0.0]], torch.zeros(1, 1))


def test_plot_unit_weights_draws_the_rows_and_columns_of_a_unit():
    import matplotlib.pyplot as plt

    from nlpprune_lessons.lessons.l04_structured_rnn import plot_unit_weights

    lstm, head = nn.LSTM(6, 5, batch_first=True), nn.Linear(5, 3)
    fig = plot_unit_weights(lstm, 2, head)
    left, right = fig.axes[:2]
    assert "71 of 275 weights" in fig._suptitle.get_text()  # 4 x (6 + 5 + 2) + 4 x 4 + 3 of 4 x 5 x 13 + 15
    assert [int(t.get_text()) for t in left.get_yticklabels()] == [2, 7, 12, 17]
    assert len(left.patches) == 5 and len(right.patches) == 1  # four rows and a column; the head's column
    plt.close(fig)
    fig = plot_unit_weights(lstm, 0, nn.LSTM(5, 4))  # the next layer may be an LSTM (its weight_ih)
    assert "84 of 340 weights" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(TypeError, match="one-layer"):
        plot_unit_weights(nn.LSTM(6, 5, num_layers=2), 0, head)
    with pytest.raises(ValueError, match="reads 4 features"):
        plot_unit_weights(lstm, 0, nn.Linear(4, 3))
    with pytest.raises(ValueError, match="unit 5 is out of range"):
        plot_unit_weights(lstm, 5, head)
