"""Batches as dicts of tensors: move one to a device, cut a recurrent state from the graph."""

from __future__ import annotations

import torch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` with its tensors on ``device``, except ``lengths``, which stays on the CPU
    (``pack_padded_sequence`` requires it)."""
    return {k: (v if k == "lengths" else v.to(device)) for k, v in batch.items()}


def detach_state(state):
    """A recurrent state cut from the graph: a tensor, or tuples/lists of states (container kept)."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state.detach()
