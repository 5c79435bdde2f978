"""How big a model is: parameters per module (tied weights counted once) and bytes on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from nlpprune_lessons.structured.io import save_slim


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


def file_size_bytes(model: nn.Module) -> int:
    """Bytes of the model saved with :func:`save_slim` (safetensors; architecture in the header)."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_slim(model, Path(tmp) / "model.safetensors").stat().st_size
