"""Lesson 10's settings and steps: the parallel corpus in one direction with its subword vocabularies,
a from-scratch encoder-decoder of the lesson's size, and translations of a split scored with
sacrebleu (BLEU and chrF with bootstrap intervals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.data import load_japanese_wordnet
from nlpprune_lessons.metrics import translation_scores
from nlpprune_lessons.models.seq2seq import (
    PretrainedEncoderTranslator,
    Seq2SeqConfig,
    Seq2SeqTransformer,
    greedy_decode,
)
from nlpprune_lessons.models.transformers import encode_for_encoder, load_pretrained_encoder
from nlpprune_lessons.text.batching import translation_batches
from nlpprune_lessons.text.subword import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    cached_subword_tokenizer,
    decode_ids,
    encode_sentences,
)
from nlpprune_lessons.text.tokenize import load_wordpiece_tokenizer

DIRECTIONS = ("ja-en", "en-ja")
#: Source encoders: ``"bpe"`` (the course's subword vocabulary and an encoder trained from scratch) or
#: ``"minilm"`` (MiniLM's WordPiece and its pretrained encoder; English sources only).
SOURCE_ENCODERS = ("bpe", "minilm")
LANGUAGES = {"en": "english", "ja": "japanese"}
#: By mode: subword vocabulary per language, the longest sentence kept (pieces, with </s>), the tokens
#: of a training batch, the model (d 128, 3 + 2 layers, FFN 512: the calibration's design a), the
#: optimiser, and how many validation sentences are translated to score a design.
TRANSLATOR_SETTINGS = dict(
    full=dict(vocab_size=4000, max_sentence_tokens=24, max_batch_tokens=2048, d_model=128, heads=4,
              encoder_layers=3, decoder_layers=2, ffn=512, dropout=0.1, lr=1e-3, warmup_steps=400,
              smoothing=0.1, validate_every=200, scored_sentences=1000, validation_loss_sentences=2000),
    fast=dict(vocab_size=1000, max_sentence_tokens=24, max_batch_tokens=1024, d_model=64, heads=4,
              encoder_layers=2, decoder_layers=1, ffn=128, dropout=0.1, lr=2e-3, warmup_steps=50,
              smoothing=0.1, validate_every=50, scored_sentences=100, validation_loss_sentences=200),
)


def translator_settings() -> dict:
    """:data:`TRANSLATOR_SETTINGS` of the current mode."""
    return TRANSLATOR_SETTINGS["fast" if config.is_fast() else "full"]


@dataclass
class TranslationData:
    """One direction of the corpus: the source and target texts of each split (pairs too long for the
    settings dropped), their ids (targets end with ``</s>``), how sources are encoded (``encode_source``,
    by the tokenizer of ``source_encoder``), the target tokenizer, and counts."""

    direction: str
    source_encoder: str
    texts: dict[str, tuple[list[str], list[str]]]
    ids: dict[str, tuple[list[list[int]], list[list[int]]]]
    encode_source: Callable[[list[str]], list[list[int]]]
    source_vocab: int
    target_tokenizer: object
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def target_language(self) -> str:
        return self.direction.split("-")[1]


def translation_data(direction: str = "ja-en", seed: int = 0, settings: dict | None = None,
                     source_encoder: str = "bpe") -> TranslationData:
    """The Japanese WordNet pairs (FAST: the fixed subset) in ``direction``, with subword tokenizers
    trained on the training split only (cached; with ``source_encoder="minilm"`` the sources use
    MiniLM's WordPiece instead), and every pair longer than ``max_sentence_tokens`` on either side
    dropped (counted in ``counts``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if source_encoder not in SOURCE_ENCODERS:
        raise ValueError(f"source_encoder must be one of {SOURCE_ENCODERS}, got {source_encoder!r}")
    if source_encoder == "minilm" and direction != "en-ja":
        raise ValueError("MiniLM reads English: source_encoder='minilm' needs direction 'en-ja'")
    settings = settings or translator_settings()
    corpus = load_japanese_wordnet(seed=seed, fast=config.is_fast())
    source, target = (LANGUAGES[code] for code in direction.split("-"))

    def tokenizer(language: str):
        return cached_subword_tokenizer(f"wordnet-{language}-{config.mode().lower()}-seed{seed}",
                                        list(corpus["train"][language]), settings["vocab_size"])

    target_tokenizer = tokenizer(target)
    limit = settings["max_sentence_tokens"]
    if source_encoder == "minilm":
        wordpiece = load_wordpiece_tokenizer()
        source_vocab = len(wordpiece)

        def encode_source(texts: list[str]) -> list[list[int]]:
            return encode_for_encoder(wordpiece, texts, max_length=4 * limit)
    else:
        source_tokenizer = tokenizer(source)
        source_vocab = source_tokenizer.get_vocab_size()

        def encode_source(texts: list[str]) -> list[list[int]]:
            return encode_sentences(source_tokenizer, texts)

    texts, ids, counts = {}, {}, dict(corpus.counts)
    for split, frame in corpus.splits.items():
        src_texts, tgt_texts = list(frame[source]), list(frame[target])
        src_ids, tgt_ids = encode_source(src_texts), encode_sentences(target_tokenizer, tgt_texts)
        keep = [i for i in range(len(frame)) if len(src_ids[i]) <= limit and len(tgt_ids[i]) <= limit]
        counts[f"{split}: pairs over {limit} pieces dropped"] = len(frame) - len(keep)
        texts[split] = ([src_texts[i] for i in keep], [tgt_texts[i] for i in keep])
        ids[split] = ([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
    return TranslationData(direction, source_encoder, texts, ids, encode_source, source_vocab, target_tokenizer,
                           counts)


def new_translator(data: TranslationData, settings: dict | None = None, seed: int = 0) -> Seq2SeqTransformer:
    """A freshly initialised (seeded) encoder-decoder sized by ``settings`` for ``data``'s vocabularies;
    with MiniLM sources, MiniLM's pretrained encoder (frozen) and a decoder of ``settings``' size."""
    settings = settings or translator_settings()
    sizes = dict(source_vocab=data.source_vocab, target_vocab=data.target_tokenizer.get_vocab_size(),
                 d_model=settings["d_model"], heads=settings["heads"], encoder_layers=settings["encoder_layers"],
                 decoder_layers=settings["decoder_layers"], ffn=settings["ffn"], dropout=settings["dropout"],
                 pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID)
    with config.seeded(seed):
        if data.source_encoder == "minilm":
            encoder = load_pretrained_encoder()[0]
            model = PretrainedEncoderTranslator(Seq2SeqConfig(**sizes, memory_dim=encoder.config.hidden_size),
                                                encoder, freeze_encoder=True)
        else:
            model = Seq2SeqTransformer(Seq2SeqConfig(**sizes))
    return model.to(config.get_device())


def split_batches(data: TranslationData, split: str, settings: dict | None = None, limit: int | None = None,
                  shuffle: bool = False, seed: int = 0) -> list[dict]:
    """Token-budget batches of the first ``limit`` pairs of ``split`` (all by default)."""
    settings = settings or translator_settings()
    sources, targets = data.ids[split]
    return translation_batches(sources[:limit], targets[:limit], max_tokens=settings["max_batch_tokens"],
                               shuffle=shuffle, seed=seed, pad_id=PAD_ID, bos_id=BOS_ID)


def translate(model: Seq2SeqTransformer, data: TranslationData, sources: list[str],
              batch_size: int = 64) -> list[str]:
    """Greedy translations of ``sources`` (texts in ``data``'s source language), in their order."""
    ids = data.encode_source(list(sources))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: less padding
    device = next(model.parameters()).device
    out: list[str] = [""] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        rows = [ids[i] for i in chunk]
        batch = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
        for row, source in enumerate(rows):
            batch[row, :len(source)] = torch.tensor(source)
        decoded = decode_ids(data.target_tokenizer, greedy_decode(model, batch.to(device)).tolist())
        for i, text in zip(chunk, decoded):
            out[i] = text
    return out


def score_translations(model: Seq2SeqTransformer, data: TranslationData, split: str, limit: int | None = None,
                       seed: int = 0) -> tuple[dict, list[str]]:
    """BLEU and chrF (with 95% bootstrap intervals) of the greedy translations of the first ``limit``
    pairs of ``split``, and the translations; Japanese targets are scored on characters."""
    sources, references = (texts[:limit] for texts in data.texts[split])
    hypotheses = translate(model, data, sources)
    tokenize = "char" if data.target_language == "ja" else "13a"
    return translation_scores(hypotheses, references, tokenize=tokenize, seed=seed), hypotheses
