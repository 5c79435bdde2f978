"""Lesson 10's encoder-decoder: the decoder's causal mask, the key/value cache, padding, tied weights."""

from __future__ import annotations

import pytest
import torch

from nlpprune_lessons.models.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqTransformer,
    greedy_decode,
    label_smoothed_loss,
    max_target_length,
    sinusoidal_positions,
)


def tiny(**overrides) -> Seq2SeqTransformer:
    torch.manual_seed(0)
    config = Seq2SeqConfig(**(dict(source_vocab=23, target_vocab=19, d_model=16, heads=4, encoder_layers=2,
                                   decoder_layers=2, ffn=32, dropout=0.0, max_positions=64) | overrides))
    return Seq2SeqTransformer(config).eval()


def sources(batch: int = 3, length: int = 7) -> torch.Tensor:
    ids = torch.randint(4, 23, (batch, length), generator=torch.Generator().manual_seed(1))
    ids[1, 5:] = 0  # a shorter sentence, padded
    return ids


def test_shapes_and_the_tied_output_layer():
    model = tiny()
    target = torch.randint(4, 19, (3, 5))
    logits = model(sources(), target)
    assert logits.shape == (3, 5, 19)
    memory, mask = model.encode(sources())
    assert memory.shape == (3, 7, 16) and mask[1].tolist() == [True] * 5 + [False] * 2
    names = [name for name, _ in model.named_parameters()]
    assert "target_embedding.weight" in names and not any("output" in name for name in names)


def test_a_future_target_token_cannot_change_an_earlier_output():
    model = tiny()
    target = torch.randint(4, 19, (3, 6))
    changed = target.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 19
    a, b = model(sources(), target), model(sources(), changed)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)


def test_padding_a_source_leaves_its_outputs_unchanged():
    model = tiny()
    short = sources()[1:2, :5]
    padded = torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    target = torch.randint(4, 19, (1, 6))
    assert torch.allclose(model(short, target), model(padded, target), atol=1e-5)


def test_greedy_decoding_with_and_without_the_cache_is_identical():
    model = tiny()
    with_cache = greedy_decode(model, sources(), use_cache=True)
    without = greedy_decode(model, sources(), use_cache=False)
    assert torch.equal(with_cache, without)
    caps = max_target_length(torch.tensor([7, 5, 7]))
    assert with_cache.shape[1] <= int(caps.max())
    for row, cap in zip(with_cache.tolist(), caps.tolist()):
        assert 2 in row and row.index(2) < cap  # every sentence ends with </s> within its cap
        assert all(token == 0 for token in row[row.index(2) + 1:])


def test_the_cached_step_equals_the_full_decoder_at_every_position():
    model = tiny()
    memory, mask = model.encode(sources())
    target = torch.randint(4, 19, (3, 6))
    full = model.decode(target, memory, mask)
    cache = model.new_cache()
    steps = torch.cat([model.decode(target[:, t:t + 1], memory, mask, cache, start=t) for t in range(6)], dim=1)
    assert torch.allclose(full, steps, atol=1e-5)


def test_greedy_decoding_leaves_the_training_mode_and_grad_mode_as_they_were():
    model = tiny(dropout=0.1).train()
    greedy_decode(model, sources(), max_length=3)
    assert model.training and torch.is_grad_enabled()


def test_label_smoothing_and_padding_in_the_loss():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    plain = label_smoothed_loss(logits, targets, pad_id=0, smoothing=0.0)
    kept = logits.reshape(-1, 5)[targets.reshape(-1) != 0]
    expected = torch.nn.functional.cross_entropy(kept, targets.reshape(-1)[targets.reshape(-1) != 0])
    assert torch.allclose(plain, expected)
    assert not torch.allclose(label_smoothed_loss(logits, targets, pad_id=0, smoothing=0.1), plain)


def test_positions_are_the_sinusoids():
    table = sinusoidal_positions(10, 8)
    assert table.shape == (10, 8) and torch.allclose(table[0, 0::2], torch.zeros(4))
    assert torch.allclose(table[3, 1], torch.cos(torch.tensor(3.0)))


@pytest.mark.parametrize("call, error, match", [
    (lambda: Seq2SeqConfig(source_vocab=10, target_vocab=10, d_model=10, heads=4), ValueError, "multiple"),
    (lambda: Seq2SeqConfig(source_vocab=0, target_vocab=10), ValueError, "source_vocab"),
    (lambda: Seq2SeqConfig(source_vocab=10, target_vocab=10, dropout=1.0), ValueError, "dropout"),
    (lambda: Seq2SeqTransformer({"d_model": 8}), TypeError, "Seq2SeqConfig"),
    (lambda: greedy_decode(torch.nn.Linear(2, 2), sources()), TypeError, "Seq2SeqTransformer"),
    (lambda: greedy_decode(tiny(), sources().float()), ValueError, "token ids"),
    (lambda: greedy_decode(tiny(), sources(), max_length=0), ValueError, "max_length"),
    (lambda: tiny().encode(torch.zeros(7, dtype=torch.long)), ValueError, "batch, length"),
    (lambda: tiny(max_positions=4)(sources(), torch.ones(3, 2, dtype=torch.long)), ValueError, "max_positions"),
    (lambda: label_smoothed_loss(torch.zeros(1, 1, 3), torch.zeros(1, 1, dtype=torch.long), 0, 1.5), ValueError,
     "smoothing"),
])
def test_bad_arguments_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- a pretrained encoder
def tiny_bert(hidden: int = 24):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32), add_pooling_layer=False)


def test_a_pretrained_encoder_feeds_the_decoder_frozen_and_decodes_the_same_with_the_cache():
    from nlpprune_lessons.models.seq2seq import PretrainedEncoderTranslator

    config = Seq2SeqConfig(source_vocab=30, target_vocab=19, d_model=16, heads=4, decoder_layers=2, ffn=32,
                           dropout=0.0, memory_dim=24)
    model = PretrainedEncoderTranslator(config, tiny_bert(), freeze_encoder=True).eval()
    assert not hasattr(model, "source_embedding") and not hasattr(model, "encoder")
    source = sources().clamp(max=29)
    loss = model(source, torch.randint(4, 19, (3, 5))).sum()
    loss.backward()
    assert all(p.grad is None for p in model.pretrained_encoder.parameters())
    assert model.decoder[0].cross_attention.key.weight.grad is not None
    assert model.decoder[0].cross_attention.key.in_features == 24
    assert torch.equal(greedy_decode(model, source), greedy_decode(model, source, use_cache=False))
    model.freeze_encoder(False)
    model(source, torch.randint(4, 19, (3, 5))).sum().backward()
    assert any(p.grad is not None for p in model.pretrained_encoder.parameters())
    with pytest.raises(ValueError, match="hidden size"):
        PretrainedEncoderTranslator(config, tiny_bert(hidden=32))
