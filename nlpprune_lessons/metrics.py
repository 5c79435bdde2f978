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


def parameter_counts(model: torch.nn.Module) -> "pd.DataFrame":
    """One row per leaf module with parameters: name, type, kind, parameters, share of the total.

    ``kind`` groups modules the way the pruning lessons discuss them: embedding, recurrent, linear.
    Shared (tied) parameters are counted once, at their first module.
    """
    import pandas as pd

    seen: set[int] = set()
    rows = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        if not own:
            continue
        seen.update(id(p) for p in own)
        kind = ("embedding" if isinstance(module, torch.nn.Embedding)
                else "recurrent" if isinstance(module, torch.nn.RNNBase)
                else "linear" if isinstance(module, torch.nn.Linear) else "other")
        rows.append({"module": name or "(root)", "type": type(module).__name__, "kind": kind,
                     "parameters": sum(p.numel() for p in own)})
    if not rows:
        raise ValueError(f"{type(model).__name__} has no parameters to count")
    table = pd.DataFrame(rows)
    table["share"] = (table["parameters"] / table["parameters"].sum()).round(4)
    return table
