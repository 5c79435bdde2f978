"""Language-model streams (batchify, bptt_batches), LM training/evaluation, training hooks, default_loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nlpprune_lessons.evaluate import evaluate_language_model
from nlpprune_lessons.losses import classification_loss, default_loss, lm_loss
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.text.batching import make_loader
from nlpprune_lessons.text.streams import batchify, bptt_batches, spread_stream
from nlpprune_lessons.training.loop import History, train_classifier, train_language_model

VOCAB = 10
TRAIN = torch.arange(1000) % VOCAB  # the cycle 0, 1, ..., 9, 0, 1, ...: each token fixes the next
VAL = torch.arange(400) % VOCAB


def _tiny_lm(seed: int = 0, **kwargs) -> RNNLanguageModel:
    torch.manual_seed(seed)
    kwargs = {"embed_dim": 16, "hidden_size": 32, "num_layers": 1, **kwargs}
    return RNNLanguageModel(VOCAB, **kwargs)


def _train_lm(model, **kwargs) -> History:
    kwargs = {"epochs": 1, "lr": 2e-2, "batch_size": 10, "bptt": 20, "progress": False, "device": "cpu",
              **kwargs}
    return train_language_model(model, TRAIN, VAL, **kwargs)


# =========================================================================== batchify / bptt_batches
def test_batchify_shape_rows_and_dropped_tail():
    data = batchify(list(range(23)), 4)
    assert data.shape == (4, 5) and data.dtype == torch.long
    # Rows are contiguous pieces of the stream; tokens 20..22 do not fill a column and are dropped.
    assert data.tolist() == [list(range(r * 5, r * 5 + 5)) for r in range(4)]
    assert batchify(torch.arange(20), 4).shape == (4, 5)  # exact fit: nothing dropped
    assert batchify(torch.arange(20), 1).tolist() == [list(range(20))]


def test_bptt_windows_shapes_targets_and_continuation():
    data = batchify(torch.arange(46), 3)  # [3, 15]; token 45 dropped
    windows = list(bptt_batches(data, 4))
    # Inputs cover columns 0..13 (the last column is only a target): 4 + 4 + 4 + 2.
    assert [w["input_ids"].shape for w in windows] == [(3, 4), (3, 4), (3, 4), (3, 2)]
    for w in windows:
        assert w["targets"].shape == w["input_ids"].shape
        # Within each row the targets are the inputs shifted by one token of the stream.
        assert torch.equal(w["targets"][:, :-1], w["input_ids"][:, 1:])
        assert torch.equal(w["targets"], w["input_ids"] + 1)  # the stream is 0, 1, 2, ...
    for prev, nxt in zip(windows, windows[1:]):
        # The next window starts where the previous one's targets ended: each row continues.
        assert torch.equal(nxt["input_ids"][:, 0], prev["targets"][:, -1])
    assert torch.equal(torch.cat([w["input_ids"] for w in windows], dim=1), data[:, :-1])
    assert torch.equal(torch.cat([w["targets"] for w in windows], dim=1), data[:, 1:])


def test_bptt_window_larger_than_rows():
    windows = list(bptt_batches(batchify(torch.arange(12), 2), 100))
    assert len(windows) == 1
    assert windows[0]["input_ids"].tolist() == [[0, 1, 2, 3, 4], [6, 7, 8, 9, 10]]
    assert windows[0]["targets"].tolist() == [[1, 2, 3, 4, 5], [7, 8, 9, 10, 11]]


@pytest.mark.parametrize(
    "ids, batch_size, message",
    [
        (torch.arange(10), 0, "batch_size must be >= 1"),
        (torch.arange(10), -2, "batch_size must be >= 1"),
        (torch.arange(7), 4, "7 tokens are too few for 4 rows"),
        ([], 1, "0 tokens are too few"),
    ],
)
def test_batchify_bad_arguments(ids, batch_size, message):
    with pytest.raises(ValueError, match=message):
        batchify(ids, batch_size)


def test_bptt_batches_bad_arguments():
    data = batchify(torch.arange(20), 2)
    with pytest.raises(ValueError, match="bptt must be >= 1, got 0"):
        next(bptt_batches(data, 0))
    with pytest.raises(ValueError, match=r"data must be \[batch, tokens\].*\(20,\)"):
        next(bptt_batches(torch.arange(20), 5))


# =========================================================================== training and evaluation
def test_lm_learns_a_deterministic_cycle():
    model = _tiny_lm()
    history = _train_lm(model, epochs=5)
    assert isinstance(history, History)
    assert history.epochs == 5
    assert len(history.val_perplexity) == len(history.val_loss) == 5
    assert history.val_accuracy == []
    assert 0 <= history.best_epoch < 5
    for loss, ppl in zip(history.val_loss, history.val_perplexity):
        assert ppl == pytest.approx(math.exp(loss))
    assert history.val_perplexity[history.best_epoch] == min(history.val_perplexity)
    assert min(history.val_perplexity) < 1.5
    assert history.val_perplexity[-1] < history.val_perplexity[0]
    assert history.seconds > 0
    # The model holds the weights of its best epoch.
    final = evaluate_language_model(model, VAL)
    assert final["loss"] == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)
    # Greedy generation follows the cycle.
    assert model.generate([3, 4], max_new_tokens=6, temperature=0) == [5, 6, 7, 8, 9, 0]


def test_evaluate_language_model_is_token_weighted_with_state_carried():
    model = _tiny_lm(seed=3, num_layers=2, hidden_size=16)
    ids = torch.randint(0, VOCAB, (53,), generator=torch.Generator().manual_seed(0))
    result = evaluate_language_model(model, ids, batch_size=4, bptt=5)
    # By hand: 4 rows of 13 tokens (token 52 dropped), windows of 5, 5 and 2 targets per row.
    rows = ids[:52].view(4, 13)
    total, count, window_means, state = 0.0, 0, [], None
    with torch.no_grad():
        for start in (0, 5, 10):
            end = min(start + 5, 12)
            logits, state = model(rows[:, start:end], state)
            ce = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), rows[:, start + 1 : end + 1].reshape(-1),
                                             reduction="none")
            total += ce.sum().item()
            count += ce.numel()
            window_means.append(ce.mean().item())
    assert count == 48
    assert result["loss"] == pytest.approx(total / count, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-6)
    # The plain mean of window means would weigh the short last window too much.
    assert sum(window_means) / 3 != pytest.approx(result["loss"], rel=1e-6)
    # With the state carried, the windows together equal one pass over each whole row.
    with torch.no_grad():
        logits, _ = model(rows[:, :-1])
    full = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), rows[:, 1:].reshape(-1)).item()
    assert result["loss"] == pytest.approx(full, rel=1e-5)


def test_evaluate_language_model_gives_a_bootstrap_interval_around_the_perplexity():
    model = _tiny_lm(seed=3, num_layers=2, hidden_size=16)
    ids = torch.randint(0, VOCAB, (400,), generator=torch.Generator().manual_seed(0))
    result = evaluate_language_model(model, ids, batch_size=4, bptt=5)
    assert result["perplexity_low"] < result["perplexity"] < result["perplexity_high"]
    assert result["loss_se"] > 0
    assert evaluate_language_model(model, ids, batch_size=4, bptt=5) == result  # seeded resampling


def test_spread_stream_reads_every_part_of_the_stream():
    ids = torch.arange(1000)
    subset = spread_stream(ids, 100, pieces=4)
    assert subset.numel() == 100
    rows = batchify(subset, 4)
    assert rows[:, 0].tolist() == [0, 325, 650, 975]  # evenly spaced runs, the last ending at the stream's end
    assert all(torch.equal(r, torch.arange(int(r[0]), int(r[0]) + 25)) for r in rows)  # each run contiguous
    longer = spread_stream(ids, 2500, pieces=4)  # more than the stream: the whole, twice, then a spread remainder
    assert longer.numel() == 2500 and torch.equal(longer[:1000], ids) and torch.equal(longer[1000:2000], ids)
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        spread_stream(ids, 0)
    with pytest.raises(ValueError, match="cannot be cut into"):
        spread_stream(torch.arange(3), 2, pieces=4)


def test_evaluate_language_model_uses_eval_mode_and_restores_it():
    model = _tiny_lm(num_layers=2, dropout=0.5).train()
    first = evaluate_language_model(model, VAL, batch_size=4, bptt=7)
    assert model.training
    assert evaluate_language_model(model, VAL, batch_size=4, bptt=7) == first  # no dropout noise


def test_penalty_is_added_to_the_objective():
    plain, penalised = _tiny_lm(), _tiny_lm()
    assert torch.equal(plain.decoder.weight, penalised.decoder.weight)
    calls = []

    def l1(model):
        calls.append(1)
        return 100.0 * model.decoder.weight.abs().sum()

    _train_lm(plain, bptt=5)
    _train_lm(penalised, bptt=5, penalty=l1)
    steps = len(list(bptt_batches(batchify(TRAIN, 10), 5)))
    assert len(calls) == steps == 20
    w_plain = plain.decoder.weight.abs().mean().item()
    w_pen = penalised.decoder.weight.abs().mean().item()
    assert w_pen < 0.03 < 0.1 < w_plain
    assert w_pen < 0.2 * w_plain


def test_on_step_runs_after_every_lm_optimiser_step():
    model = _tiny_lm()
    steps, changed, last = [], [], [model.decoder.bias.detach().clone()]

    def on_step(step):
        steps.append(step)
        now = model.decoder.bias.detach().clone()
        changed.append(not torch.equal(now, last[0]))  # the optimiser has already stepped
        last[0] = now

    _train_lm(model, epochs=3, bptt=30, on_step=on_step)
    windows = len(list(bptt_batches(batchify(TRAIN, 10), 30)))
    assert windows == 4  # 99 input columns per row: 30 + 30 + 30 + 9
    assert steps == list(range(1, 3 * windows + 1))
    assert all(changed)


def test_train_language_model_bad_arguments():
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        _train_lm(_tiny_lm(), epochs=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        _train_lm(_tiny_lm(), lr=0)
    with pytest.raises(ValueError, match="too few"):
        _train_lm(_tiny_lm(), batch_size=600)


def _toy_classification(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    seqs, labels = [], []
    for i in range(n):
        seq = torch.randint(1, 8, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist()
        seq[0] = 8 + i % 2  # token 8 -> class 0, token 9 -> class 1
        seqs.append(seq)
        labels.append(i % 2)
    return seqs, labels


def test_train_classifier_calls_hooks_once_per_batch():
    torch.manual_seed(0)
    model = RNNClassifier(VOCAB, 2, embed_dim=8, hidden_size=8)
    train = make_loader(*_toy_classification(40, seed=1), batch_size=8, shuffle=True, bucket=False)
    val = make_loader(*_toy_classification(16, seed=2), batch_size=8)
    steps, penalties = [], []

    def penalty(m):
        penalties.append(1)
        return 0.0 * m.classifier.weight.abs().sum()

    history = train_classifier(model, train, val, epochs=3, lr=1e-2, penalty=penalty, on_step=steps.append,
                               progress=False, device="cpu")
    assert len(train) == 5
    assert len(penalties) == 5 * 3
    assert steps == list(range(1, 5 * 3 + 1))
    assert len(history.val_accuracy) == 3 and history.val_perplexity == []


# =========================================================================== default_loss
def test_default_loss_picks_the_task_by_batch_keys():
    torch.manual_seed(0)
    clf = RNNClassifier(VOCAB, 3, embed_dim=4, hidden_size=4).eval()
    clf_batch = {"input_ids": torch.tensor([[1, 2, 3], [4, 5, 0]]), "lengths": torch.tensor([3, 2]),
                 "labels": torch.tensor([0, 2])}
    expected = nn.functional.cross_entropy(clf(clf_batch["input_ids"], clf_batch["lengths"]), clf_batch["labels"])
    torch.testing.assert_close(default_loss(clf, clf_batch), expected)
    torch.testing.assert_close(classification_loss(clf, clf_batch), expected)

    lm = _tiny_lm().eval()
    window = next(bptt_batches(batchify(torch.arange(30) % VOCAB, 2), 4))
    logits, _ = lm(window["input_ids"])
    expected = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), window["targets"].reshape(-1))
    torch.testing.assert_close(default_loss(lm, window), expected)
    torch.testing.assert_close(lm_loss(lm, window), expected)


def test_default_loss_rejects_unknown_batches():
    with pytest.raises(ValueError, match=r"cannot tell the task from batch keys \['input_ids', 'lengths'\]"):
        default_loss(_tiny_lm(), {"input_ids": torch.tensor([[1, 2]]), "lengths": torch.tensor([2])})


def test_every_perplexity_is_exp_of_the_token_weighted_mean_loss():
    from nlpprune_lessons.evaluate import token_perplexity

    assert token_perplexity(6.0, 3) == {"loss": 2.0, "perplexity": pytest.approx(math.exp(2.0))}
    with pytest.raises(ValueError, match="no token was scored"):
        token_perplexity(0.0, 0)
