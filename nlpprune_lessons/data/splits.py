"""Seeded, stratified splits shared by every dataset loader."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def check_split(split: str | None) -> None:
    """Raise ``ValueError`` unless ``split`` is None or one of :data:`SPLITS`."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} (or None for all)")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate train/validation/test fractions: three numbers in (0, 1) that sum to 1."""
    if isinstance(fractions, (str, bytes)) or len(fractions) != 3:
        raise ValueError(f"fractions must be three numbers (train, validation, test), got {fractions!r}")
    values = tuple(float(f) for f in fractions)
    for name, value in zip(SPLITS, values):
        if not 0.0 < value < 1.0:
            raise ValueError(f"the {name} fraction must be in (0, 1), got {value}")
    if abs(sum(values) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {values} (sum {sum(values)})")
    return values  # type: ignore[return-value]


def stratified_split(
    labels: Sequence, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Split row indices into train/validation/test with each label's share kept in every split.

    Within each label the rows are shuffled with ``seed`` and cut at the fractions (rounded), so the
    result is deterministic, the splits are disjoint and together cover every row.
    """
    train_f, val_f, _ = check_fractions(fractions)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train = int(round(len(idx) * train_f))
        n_val = int(round(len(idx) * val_f))
        parts["train"].append(idx[:n_train])
        parts["validation"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def stratified_subsample(labels: Sequence, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a seeded subsample holding ``fraction`` of each label's rows (order kept)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        n = max(1, int(round(len(idx) * fraction)))
        keep.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep))
