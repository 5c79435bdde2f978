"""Trained models saved as safetensors in the course cache, so later lessons reuse earlier ones."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from nlpprune_lessons.core import config


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Write the weights (safetensors; shared tensors handled) and ``meta`` as JSON in its header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # No default=str: a value that is not plain JSON would come back as a string, so fail instead.
    save_model(model, str(tmp), metadata={"meta": json.dumps(meta or {})})
    tmp.replace(path)  # readers never see a half-written file
    return path


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (strict); return the meta dict."""
    from safetensors import safe_open

    missing, unexpected = load_model(model, str(path), strict=True)
    with safe_open(str(path), framework="pt") as fh:
        return json.loads((fh.metadata() or {}).get("meta", "{}"))


def cached_model(
    name: str, recipe: dict, build: Callable[[], nn.Module], train: Callable[[nn.Module], dict]
) -> tuple[nn.Module, dict, bool]:
    """Load ``name`` trained by ``recipe`` from the cache, or build, train and cache it.

    The cache key holds the mode (FAST/FULL) and a hash of ``recipe`` (every setting that changes
    the result, seed included), so a changed recipe trains anew. Returns ``(model, meta, cached)``.
    """
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = config.cache_dir() / "checkpoints" / f"{name}-{config.mode().lower()}-{digest}.safetensors"
    model = build()
    if path.exists():
        return model, load_checkpoint(model, path), True
    meta = {"recipe": recipe, **train(model)}
    save_checkpoint(model, path, meta)
    return model, meta, False
