"""Lesson 10's training: token-budget batches of sentence pairs, the inverse square-root schedule, and
a tiny encoder-decoder that learns to copy."""

from __future__ import annotations

import pytest
import torch

from nlpprune_lessons.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, greedy_decode
from nlpprune_lessons.text.batching import translation_batches
from nlpprune_lessons.training.schedules import inverse_sqrt
from nlpprune_lessons.training.seq2seq import train_translator, translation_loss


def copy_pairs(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    g = torch.Generator().manual_seed(seed)
    sources = [torch.randint(4, 12, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
               for _ in range(n)]
    return sources, [s + [2] for s in sources]  # the target is the source, then </s>


def test_batches_respect_the_token_budget_and_shift_the_target():
    sources, targets = copy_pairs(200, 0)
    batches = translation_batches(sources, targets, max_tokens=40, seed=0)
    assert sum(len(b["source"]) for b in batches) == 200
    for batch in batches:
        assert batch["source"].numel() <= 40 and batch["target_out"].numel() <= 40
        assert (batch["target_in"][:, 0] == 1).all()
        assert torch.equal(batch["target_in"][:, 1:], batch["target_out"][:, :-1].masked_fill(
            batch["target_out"][:, :-1] == 2, 0))
    again = translation_batches(sources, targets, max_tokens=40, seed=0)
    assert all(torch.equal(a["source"], b["source"]) for a, b in zip(batches, again))
    other = translation_batches(sources, targets, max_tokens=40, seed=1)
    assert any(not torch.equal(a["source"], b["source"]) for a, b in zip(batches, other))


@pytest.mark.parametrize("kwargs, match", [
    (dict(sources=[[4]], targets=[[4], [5]], max_tokens=8), "equal length"),
    (dict(sources=[[4]], targets=[[4]], max_tokens=0), "max_tokens"),
    (dict(sources=[[4] * 9], targets=[[4]], max_tokens=8), "1 to max_tokens"),
    (dict(sources=[[]], targets=[[4]], max_tokens=8), "1 to max_tokens"),
])
def test_bad_batch_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        translation_batches(**kwargs)


def test_the_inverse_square_root_schedule_peaks_at_the_end_of_warm_up():
    assert inverse_sqrt(0, 4) == 0.25 and inverse_sqrt(3, 4) == 1.0
    assert inverse_sqrt(15, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        inverse_sqrt(0, 0)


def test_a_tiny_translator_learns_to_copy_and_stops_on_its_step_budget():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(source_vocab=12, target_vocab=12, d_model=32, heads=4,
                                             encoder_layers=1, decoder_layers=1, ffn=64, dropout=0.0))
    sources, targets = copy_pairs(400, 1)
    val_sources, val_targets = copy_pairs(50, 2)
    validation = translation_batches(val_sources, val_targets, max_tokens=200, shuffle=False)
    before = translation_loss(model, validation)
    history = train_translator(model, lambda epoch: translation_batches(sources, targets, max_tokens=200, seed=epoch),
                               validation, lr=3e-3, warmup_steps=20, max_steps=150, validate_every=50,
                               progress=False, device=torch.device("cpu"))
    assert history.steps == 150 and history.validation_steps == [50, 100, 150]
    assert history.validation_loss[-1] < 0.25 * before
    assert history.tokens_per_second > 0 and model.training
    copied = greedy_decode(model, validation[0]["source"])
    expected = validation[0]["target_out"]
    width = min(copied.shape[1], expected.shape[1])
    assert (copied[:, :width] == expected[:, :width]).float().mean() > 0.8


def test_a_time_budget_ends_training():
    model = Seq2SeqTransformer(Seq2SeqConfig(source_vocab=12, target_vocab=12, d_model=16, heads=2,
                                             encoder_layers=1, decoder_layers=1, ffn=32))
    sources, targets = copy_pairs(100, 3)
    validation = translation_batches(sources[:10], targets[:10], max_tokens=100, shuffle=False)
    history = train_translator(model, lambda epoch: translation_batches(sources, targets, max_tokens=50, seed=epoch),
                               validation, seconds=0.5, validate_every=10_000, progress=False)
    assert 0 < history.steps and history.validation_steps == [history.steps]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(), ValueError, "max_steps or seconds"),
    (dict(max_steps=0), ValueError, "max_steps"),
    (dict(seconds=-1), ValueError, "seconds"),
    (dict(max_steps=5, lr=0), ValueError, "lr"),
    (dict(max_steps=5, validate_every=0), ValueError, "validate_every"),
])
def test_bad_training_arguments_are_refused(kwargs, error, match):
    model = Seq2SeqTransformer(Seq2SeqConfig(source_vocab=12, target_vocab=12, d_model=16, heads=2))
    with pytest.raises(error, match=match):
        train_translator(model, lambda epoch: [], [], progress=False, **kwargs)
    with pytest.raises(TypeError, match="Seq2SeqTransformer"):
        train_translator(torch.nn.Linear(2, 2), lambda epoch: [], [], max_steps=1)
