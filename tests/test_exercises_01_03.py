"""The checks of lessons 01-03: a right answer passes, a typical wrong one fails with a message that names
the mismatch; and the library functions and figures these lessons added (negation-safe stopwords, lesson
03's weight histograms, per-matrix sparsity bars and mask images)."""

from __future__ import annotations

import math
from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402

from nlpprune_lessons.lessons import l03_unstructured  # noqa: E402
from nlpprune_lessons.lessons.exercises import (  # noqa: E402
    NOT_DONE,
    PASSED,
    ExerciseError,
    check_cubic_schedule,
    check_global_magnitude_masks,
    check_layer_magnitude_mask,
    check_lottery_rewind,
    check_lstm_parameter_count,
    check_lstm_step,
    check_negation_safe_stopwords,
    check_oov_rate,
    check_padding_share,
    check_perplexity_from_batches,
    check_taylor_importance,
    check_vocabulary_tokens,
)
from nlpprune_lessons.pruning import prune  # noqa: E402
from nlpprune_lessons.text.tokenize import negation_safe_stopwords  # noqa: E402

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


# =========================================================================== lesson 01
def vocabulary_tokens(token_lists, min_freq):
    counts = Counter(t for tokens in token_lists for t in tokens)
    return SPECIALS + sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))


def test_vocabulary_check_passes_the_right_list(capsys):
    assert check_vocabulary_tokens(vocabulary_tokens) == PASSED
    assert "passed" in capsys.readouterr().out


def test_vocabulary_check_names_a_tie_broken_by_input_order():
    def first_seen_order(token_lists, min_freq):
        counts = Counter(t for tokens in token_lists for t in tokens)  # ties stay in first-seen order
        return SPECIALS + [t for t, c in counts.most_common() if c >= min_freq]

    with pytest.raises(ExerciseError, match=r"id 4 should be 'a' .* you have 'b' .*ties alphabetically"):
        check_vocabulary_tokens(first_seen_order)


def test_vocabulary_check_names_missing_specials_and_rare_tokens():
    with pytest.raises(ExerciseError, match="must start with the special tokens"):
        check_vocabulary_tokens(lambda token_lists, min_freq: vocabulary_tokens(token_lists, min_freq)[4:])
    with pytest.raises(ExerciseError, match=r"'c' is seen 1 time\(s\), fewer than min_freq=2"):
        check_vocabulary_tokens(lambda token_lists, min_freq: vocabulary_tokens(token_lists, min(min_freq, 1)))


def test_oov_check_passes_tokens_and_names_a_types_count():
    def right(token_lists, vocab):
        return sum(t not in vocab for ts in token_lists for t in ts) / sum(map(len, token_lists))

    def types(token_lists, vocab):
        distinct = {t for ts in token_lists for t in ts}
        return sum(t not in vocab for t in distinct) / len(distinct)

    assert check_oov_rate(right) == PASSED
    with pytest.raises(ExerciseError, match=r"the OOV rate: expected 0\.25, got 0\.5.*count repeats"):
        check_oov_rate(types)
    assert check_oov_rate(lambda token_lists, vocab: torch.tensor(right(token_lists, vocab))) == PASSED  # 0-d tensor


def test_negation_safe_stopwords_drops_the_cues_and_keeps_the_rest():
    words = ["the", "not", "Never", "didn", "didn't", "won", "won't", "no", "very", "n't", "ain"]
    assert negation_safe_stopwords(words) == ["the", "won", "very"]
    assert negation_safe_stopwords(iter(["a", "nor"])) == ["a"]
    with pytest.raises(TypeError, match="not a single string"):
        negation_safe_stopwords("not")
    with pytest.raises(TypeError, match="must be strings"):
        negation_safe_stopwords(["a", 3])


def test_negation_check_passes_the_library_and_the_hand_rule():
    def hand_rule(stopwords):
        words = set(stopwords)
        return [w for w in stopwords if w not in {"no", "not", "nor", "ain"} and not w.endswith("n't")
                and w + "'t" not in words]  # also drops "won", which may go either way

    assert check_negation_safe_stopwords(negation_safe_stopwords) == PASSED
    assert check_negation_safe_stopwords(hand_rule) == PASSED


def test_negation_check_names_kept_cues_dropped_words_and_order():
    with pytest.raises(ExerciseError, match=r"still holds these negation cues.*from the text: \['don', \"don't\""):
        check_negation_safe_stopwords(lambda words: [w for w in words if w not in {"no", "not", "nor"}])
    with pytest.raises(ExerciseError, match=r"you dropped: \['i'\]"):
        check_negation_safe_stopwords(lambda words: [w for w in negation_safe_stopwords(words) if w != "i"])
    with pytest.raises(ExerciseError, match="in the order of the list"):
        check_negation_safe_stopwords(lambda words: sorted(negation_safe_stopwords(words)))


def test_padding_check_passes_all_positions_and_names_a_mean_of_batch_shares():
    def right(batch_lengths):
        positions = sum(len(n) * int(n.max()) for n in batch_lengths)
        return 1 - sum(int(n.sum()) for n in batch_lengths) / positions

    def mean_of_shares(batch_lengths):
        return sum(1 - float(n.sum()) / (len(n) * int(n.max())) for n in batch_lengths) / len(batch_lengths)

    assert check_padding_share(right) == PASSED
    with pytest.raises(ExerciseError, match=r"lengths \[3, 1\] and \[2\], the padding share: expected 0\.25, got "
                                            r"0\.166667.*divide once"):
        check_padding_share(mean_of_shares)


# =========================================================================== lesson 02
def test_lstm_parameter_check_passes_the_formula_and_names_a_single_bias(capsys):
    assert check_lstm_parameter_count(lambda i, h: 4 * (h * i + h * h + 2 * h)) == PASSED
    assert "passed" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="nn.LSTM has 395264 parameters, you returned 394240.*two bias vectors"):
        check_lstm_parameter_count(lambda i, h: 4 * (h * i + h * h + h))


def test_lstm_parameter_check_needs_a_function():
    with pytest.raises(TypeError, match="not its result"):
        check_lstm_parameter_count(4 * (128 * 256 + 256 * 256 + 2 * 256))


def lstm_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh, order="ifgo"):
    blocks = dict(zip(order, (x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh).chunk(4, dim=1)))
    c_new = torch.sigmoid(blocks["f"]) * c + torch.sigmoid(blocks["i"]) * torch.tanh(blocks["g"])
    return torch.sigmoid(blocks["o"]) * torch.tanh(c_new), c_new


def test_lstm_step_check_passes_pytorchs_gate_order_and_names_a_swapped_one():
    assert check_lstm_step(lstm_step) == PASSED
    with pytest.raises(ExerciseError, match=r"the new cell state c: \d+ of 12 entries differ; the first is \[0, 0\]: "
                                            r"expected .*, got .*order i, f, g, o"):
        check_lstm_step(lambda *args: lstm_step(*args, order="igfo"))
    with pytest.raises(ExerciseError, match=r"return the pair \(h, c\)"):
        check_lstm_step(lambda *args: lstm_step(*args)[0])


def test_perplexity_check_passes_token_weighting_and_names_a_mean_of_window_means():
    def right(batches):
        total = sum(F.cross_entropy(lg.flatten(0, 1), tg.flatten(), reduction="sum").item() for lg, tg in batches)
        return math.exp(total / sum(tg.numel() for _, tg in batches))

    def mean_of_means(batches):
        means = [F.cross_entropy(lg.flatten(0, 1), tg.flatten()).item() for lg, tg in batches]
        return math.exp(sum(means) / len(means))

    assert check_perplexity_from_batches(right) == PASSED
    with pytest.raises(ExerciseError, match=r"windows of \[35, 35, 35, 6\] tokens .* expected .*, got .*"
                                            r"A mean of per-window means"):
        check_perplexity_from_batches(mean_of_means)


# =========================================================================== lesson 03
def global_masks(weights, amount):
    scores = torch.cat([w.abs().flatten() for w in weights])
    flat = torch.ones_like(scores)
    k = round(amount * scores.numel())
    if k:
        flat[scores.topk(k, largest=False).indices] = 0
    return [m.view_as(w) for m, w in zip(flat.split([w.numel() for w in weights]), weights)]


def layer_mask(weight, amount):
    return global_masks([weight], amount)[0]


def test_global_masks_check_passes_one_threshold_and_names_a_per_tensor_one():
    assert check_global_magnitude_masks(global_masks) == PASSED
    with pytest.raises(ExerciseError, match=r"amount 0\.5, the mask of tensor 0: \d+ of 12 entries differ.*one flat"):
        check_global_magnitude_masks(lambda weights, amount: [layer_mask(w, amount) for w in weights])
    with pytest.raises(ExerciseError, match="return a list of 2 masks"):
        check_global_magnitude_masks(lambda weights, amount: global_masks(weights, amount)[0])


def taylor(model, params, batches, loss_fn, zero_grad=True):
    scores = [torch.zeros_like(getattr(m, n)) for m, n in params]
    for batch in batches:
        if zero_grad:
            model.zero_grad()
        loss_fn(model, batch).backward()
        for score, (m, n) in zip(scores, params):
            score += (getattr(m, n) * getattr(m, n).grad).abs().detach()
    return scores


def test_taylor_check_passes_the_sum_of_absolute_terms_and_names_accumulated_gradients():
    assert check_taylor_importance(taylor) == PASSED
    with pytest.raises(ExerciseError, match=r"3 batch\(es\), scores of 0\.weight .* entries differ; the first is "
                                            r"\[\d+, \d+\]: expected .*clear what the previous batch left"):
        check_taylor_importance(lambda *args: taylor(*args, zero_grad=False))


def test_layer_mask_check_passes_smallest_absolute_values_and_names_signed_ones():
    assert check_layer_magnitude_mask(layer_mask) == PASSED
    with pytest.raises(ExerciseError, match=r"shape \(6, 4\) at amount 0\.5, the mask: .*large negative weight"):
        check_layer_magnitude_mask(lambda w, amount: layer_mask(w + 10, amount))  # most negative w, not smallest |w|


def test_layer_mask_check_names_a_count_truncated_instead_of_rounded():
    def truncated(weight, amount):
        mask = torch.ones_like(weight)
        k = int(amount * weight.numel())  # 14.7 -> 14, where round() gives 15
        if k:
            mask.view(-1)[weight.abs().flatten().topk(k, largest=False).indices] = 0
        return mask

    with pytest.raises(ExerciseError, match=r"shape \(7, 3\) at amount 0\.7, the mask: 1 of 21 entries differ"):
        check_layer_magnitude_mask(truncated)


def cubic(step, final, start, end, initial=0.0, power=3):
    if step <= start:
        return initial
    if step >= end:
        return final
    return final + (initial - final) * (1 - (step - start) / (end - start)) ** power


def test_cubic_check_passes_the_schedule_and_names_a_linear_one():
    assert check_cubic_schedule(cubic) == PASSED
    with pytest.raises(ExerciseError, match=r"at step 1 \(final 0\.9, start 0, end 100, initial 0\.0\): expected "
                                            r"0\.0267309, got 0\.009"):
        check_cubic_schedule(lambda *args: cubic(*args, power=1))


def rewind_all(model, initial):
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            tensor.copy_(initial[name.removesuffix("_orig")])


def test_rewind_check_passes_the_library_protocol_and_names_lost_masks_and_biases():
    assert check_lottery_rewind(rewind_all) == PASSED

    def weights_only(model, initial):
        with torch.no_grad():
            for name, tensor in model.named_parameters():
                if name.endswith("weight_orig"):
                    tensor.copy_(initial[name.removesuffix("_orig")])

    def permanent(model, initial):
        for module in (model[0], model[2]):
            torch_prune.remove(module, "weight")
        model.load_state_dict(initial)

    with pytest.raises(ExerciseError, match=r"60% sparsity, 0\.bias .* 8 of 8 entries differ.*every bias"):
        check_lottery_rewind(weights_only)
    with pytest.raises(ExerciseError, match=r"the masks of \['Linear.weight', 'Linear.weight'\] are gone"):
        check_lottery_rewind(permanent)


@pytest.mark.parametrize("check", [check_vocabulary_tokens, check_oov_rate, check_negation_safe_stopwords,
                                   check_padding_share, check_lstm_step, check_perplexity_from_batches,
                                   check_global_magnitude_masks, check_taylor_importance, check_layer_magnitude_mask,
                                   check_cubic_schedule, check_lottery_rewind])
def test_every_check_reports_a_stub_as_not_done_and_refuses_a_non_function(check, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise: replace this line with your solution")

    assert check(stub) == NOT_DONE
    assert "not done yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="not its result"):
        check(0.5)


# =========================================================================== lesson 03's figures
def _tiny_lstm_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.LSTM(3, 4), nn.Linear(4, 2))


def test_prunable_weights_are_the_masked_values_of_the_prunable_set():
    model = _tiny_lstm_model()
    assert l03_unstructured.prunable_weights(model).numel() == 16 * 3 + 16 * 4 + 2 * 4  # no biases
    prune(model, 0.5)
    values = l03_unstructured.prunable_weights(model)
    assert int((values == 0).sum()) == 60 and values.device.type == "cpu"
    with pytest.raises(TypeError, match="torch.nn.Module"):
        l03_unstructured.prunable_weights(torch.zeros(3))


def test_weight_histograms_leave_out_the_zeros_and_report_their_share():
    dense, pruned = _tiny_lstm_model(), _tiny_lstm_model()
    prune(pruned, 0.75)
    fig, ax = plt.subplots()
    zeros = l03_unstructured.plot_weight_histograms(ax, {"dense": dense, "pruned": pruned}, bins=10)
    assert zeros == {"dense": 0.0, "pruned": pytest.approx(0.75, abs=0.01)}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["dense", "pruned (75% zeros, not drawn)"]
    drawn = sum(patch.get_path().vertices.shape[0] > 0 for patch in ax.patches)
    assert drawn == 2 and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="non-empty mapping"):
        l03_unstructured.plot_weight_histograms(ax, {})
    plt.close(fig)


def test_matrix_sparsity_bars_and_mask_image():
    fig, (ax1, ax2) = plt.subplots(1, 2)
    l03_unstructured.plot_matrix_sparsity(ax1, {"rnn.weight_ih_l0": 0.5, "decoder.weight": 0.99}, "t")
    assert [round(bar.get_width(), 2) for bar in ax1.patches] == [0.5, 0.99]
    mask = (torch.rand(8, 5, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    l03_unstructured.plot_mask(ax2, mask, "mask", blocks=4)
    image = ax2.get_images()[0].get_array()
    assert image.shape == (8, 5) and (image == mask.numpy()).all()
    assert len(ax2.get_lines()) == 3  # the lines between four gate blocks
    with pytest.raises(ValueError, match="does not divide"):
        l03_unstructured.plot_mask(ax2, mask, blocks=3)
    with pytest.raises(ValueError, match="2-D tensor"):
        l03_unstructured.plot_mask(ax2, mask.flatten())
    with pytest.raises(ValueError, match="non-empty mapping"):
        l03_unstructured.plot_matrix_sparsity(ax1, {})
    plt.close(fig)
