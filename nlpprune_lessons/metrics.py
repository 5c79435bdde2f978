"""Quality measures shared by the lessons."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _as_tensors(preds, labels) -> tuple[torch.Tensor, torch.Tensor]:
    preds, labels = torch.as_tensor(preds), torch.as_tensor(labels)
    if preds.shape != labels.shape or preds.ndim != 1:
        raise ValueError(f"preds and labels must be 1-D of equal length, got {tuple(preds.shape)} and {tuple(labels.shape)}")
    if preds.numel() == 0:
        raise ValueError("no predictions given")
    return preds, labels


def accuracy(preds: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    preds, labels = _as_tensors(preds, labels)
    return (preds == labels).float().mean().item()


def macro_f1(preds: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """F1 averaged over the classes present in ``labels`` or ``preds`` (each class weighs the same)."""
    preds, labels = _as_tensors(preds, labels)
    scores = []
    for c in torch.unique(torch.cat([preds, labels])):
        tp = ((preds == c) & (labels == c)).sum().item()
        fp = ((preds == c) & (labels != c)).sum().item()
        fn = ((preds != c) & (labels == c)).sum().item()
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)
