"""Short sentences as fixed-length rows for sentence-level generators: the data of a text GAN,
its splits, batches and decoding back to words."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nlpprune_lessons.data import gutenberg_sentences
from nlpprune_lessons.data.splits import check_split
from nlpprune_lessons.text.vocab import Vocab

Batch = dict[str, torch.Tensor]
IGNORE = -100  # target of padded positions (cross-entropy's default ignore_index)


# --------------------------------------------------------------------------- data
@dataclass
class SentenceData:
    """Short sentences as padded id rows ``[N, max_len]`` per split: words, ``<eos>``, then ``<pad>``.

    A sentence is generated (and scored) after feeding ``start_id``: ``<eos>``, because lesson 02's
    language model read sentences separated by ``<eos>``, so "after ``<eos>``" already means "a
    sentence starts here" to it."""

    vocab: Vocab
    ids: dict[str, torch.Tensor]
    max_len: int

    @property
    def start_id(self) -> int:
        return self.vocab.eos_id

    def batch(self, rows: torch.Tensor) -> Batch:
        """Teacher-forcing batch of id rows: ``input_ids`` = start + tokens[:-1], ``targets`` = tokens
        (padding → :data:`IGNORE`)."""
        start = torch.full((rows.size(0), 1), self.start_id, dtype=torch.long, device=rows.device)
        return {"input_ids": torch.cat([start, rows[:, :-1]], 1),
                "targets": rows.masked_fill(rows == self.vocab.pad_id, IGNORE)}

    def sentences(self, split: str) -> list[list[str]]:
        """The split's sentences as token lists, as the model sees them (out-of-vocabulary → ``<unk>``)."""
        return decode(self.ids[split], self.vocab)


def short_sentences(vocab: Vocab, max_len: int = 20, min_words: int = 3, fast: bool = False) -> SentenceData:
    """Gutenberg (Austen, lower-cased) sentences of ``min_words`` to ``max_len - 1`` words (+ ``<eos>``)
    from each split of :func:`~nlpprune_lessons.data.gutenberg_sentences`, encoded with ``vocab``."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or isinstance(min_words, bool) \
            or not isinstance(min_words, int) or not 1 <= min_words < max_len:
        raise ValueError(f"need ints 1 <= min_words < max_len, got min_words={min_words!r}, max_len={max_len!r}")
    ids = {}
    for split in ("train", "validation", "test"):
        rows = [vocab.encode(s, add_eos=True) for s in gutenberg_sentences(split, fast=fast, lowercase=True)
                if min_words <= len(s) <= max_len - 1]
        if not rows:
            raise ValueError(f"no {split} sentence has {min_words}..{max_len - 1} words")
        ids[split] = torch.tensor([r + [vocab.pad_id] * (max_len - len(r)) for r in rows])
    return SentenceData(vocab, ids, max_len)


def decode(rows: torch.Tensor, vocab: Vocab) -> list[list[str]]:
    """Token lists of id rows, cut before the first ``<eos>`` (padding dropped)."""
    out = []
    for row in rows.tolist():
        words = []
        for i in row:
            if i in (vocab.eos_id, vocab.pad_id):
                break
            words.append(vocab.itos[i])
        out.append(words)
    return out


def check_sentence_split(split: str) -> None:
    if split is None:
        raise ValueError("split must be one of train, validation, test")
    check_split(split)


def shuffled_batches(rows: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batches of rows, a new permutation each epoch (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(rows.size(0), generator=generator).split(batch_size):
            yield rows[idx]
