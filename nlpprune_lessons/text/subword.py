"""Subword vocabularies learned from a corpus: byte-pair encoding (Sennrich et al. 2016) trained by
Hugging Face ``tokenizers``, SentencePiece-style, and cached in the course cache.

One recipe fits both languages of lesson 10. Japanese is written without spaces, so the space is not
used to split words first: it is kept as an ordinary symbol (``▁``, the Metaspace convention of
SentencePiece), pieces may span it, and decoding restores the text exactly (after NFKC
normalisation). BPE rather than SentencePiece's unigram model because it trains in about a second on
lesson 10's 146k Japanese sentences where the unigram trainer took minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int

#: Special tokens, with the same ids in every vocabulary the course trains.
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of sentences, not a single string")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: a vocabulary needs sentences to learn from")
    odd = next((t for t in texts if not isinstance(t, str)), None)
    if odd is not None:
        raise TypeError(f"texts must be strings, got {type(odd).__name__}: {odd!r}")
    return texts


def train_subword_tokenizer(texts: Sequence[str], vocab_size: int, alphabet: int | None = None) -> Tokenizer:
    """A BPE tokenizer of ``vocab_size`` pieces (the four :data:`SPECIAL_TOKENS` first) learned from
    ``texts``: NFKC normalisation, spaces kept as ``▁``. Its base alphabet is the ``alphabet`` most
    frequent characters (default: half the vocabulary, leaving the other half to merges; Japanese has
    thousands of rare kanji); rarer characters become ``<unk>``. ``encode`` gives pieces without special
    tokens; ``decode`` restores the normalised text."""
    texts = _check_texts(texts)
    vocab_size = check_positive_int(vocab_size, "vocab_size", "the number of subword pieces")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    alphabet = vocab_size // 2 if alphabet is None else check_positive_int(alphabet, "alphabet",
                                                                         "the number of base characters")
    if alphabet > vocab_size - len(SPECIAL_TOKENS):
        raise ValueError(f"alphabet ({alphabet}) must leave room in vocab_size ({vocab_size}) for the special tokens")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), limit_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def cached_subword_tokenizer(name: str, texts: Sequence[str], vocab_size: int,
                             alphabet: int | None = None) -> Tokenizer:
    """:func:`train_subword_tokenizer` on ``texts``, saved in the course cache under ``name`` and a hash
    of the texts and sizes, and loaded from there the next time."""
    if not isinstance(name, str) or not name or any(sep in name for sep in "/\\"):
        raise ValueError(f"name must be a non-empty file-name-safe string, got {name!r}")
    texts = _check_texts(texts)
    vocab_size = check_positive_int(vocab_size, "vocab_size", "the number of subword pieces")
    digest = hashlib.sha256(json.dumps([vocab_size, alphabet, texts], ensure_ascii=False).encode("utf-8")).hexdigest()[:12]
    path = config.cache_dir() / "tokenizers" / f"{name}-{vocab_size}-{digest}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tokenizer = train_subword_tokenizer(texts, vocab_size, alphabet)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tokenizer.save(str(tmp))
    os.replace(tmp, path)  # readers never see half a file
    return tokenizer


def encode_sentences(tokenizer: Tokenizer, texts: Sequence[str], *, add_bos: bool = False,
                     add_eos: bool = True) -> list[list[int]]:
    """Piece ids of each sentence, with ``<s>`` before (``add_bos``) and ``</s>`` after (``add_eos``)."""
    texts = _check_texts(texts)
    head, tail = [BOS_ID] if add_bos else [], [EOS_ID] if add_eos else []
    return [head + encoding.ids + tail for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]


def decode_ids(tokenizer: Tokenizer, rows: Sequence[Sequence[int]]) -> list[str]:
    """Sentences from rows of ids: each row is cut at its first ``</s>``; special tokens are dropped."""
    out = []
    for row in rows:
        row = [int(i) for i in row]
        if EOS_ID in row:
            row = row[:row.index(EOS_ID)]
        out.append(tokenizer.decode([i for i in row if i not in (PAD_ID, BOS_ID)], skip_special_tokens=False))
    return out

