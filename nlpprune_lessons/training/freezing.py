"""Freeze the embedding tables for the length of a block (their gradients and optimiser state
are most of a small transformer's training memory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen_embeddings(model: nn.Module, freeze: bool = True) -> Iterator[None]:
    """Inside the block, the embedding tables of ``model`` get no gradient (when ``freeze``); they
    train again afterwards. For MiniLM that is 11.9M parameters; sparing their gradients and AdamW
    state (three float32 copies of the tables) keeps lessons 07-08 within a 2 GB machine. Each table's
    own setting comes back."""
    tables = [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))] if freeze else []
    before = [(p, p.requires_grad) for m in tables for p in m.parameters()]
    for p, _ in before:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)
