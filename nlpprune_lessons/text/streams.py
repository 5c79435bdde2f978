"""A token stream as a language model reads it: cut into parallel rows, then read in windows of
``bptt`` tokens (truncated backpropagation through time)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from nlpprune_lessons.core.checks import check_positive_int


# --------------------------------------------------------------------------- language-model streams
def batchify(ids: Sequence[int] | torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` contiguous rows ``[B, N]`` (the tail that does not fit is dropped).

    Row ``b`` continues where it left off from one BPTT window to the next, so a recurrent state
    can be carried across windows (truncated backpropagation through time).
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for {batch_size} rows of at least 2 tokens")
    return ids[: n * batch_size].view(batch_size, n)


def spread_stream(ids: Sequence[int] | torch.Tensor, tokens: int, pieces: int = 32) -> torch.Tensor:
    """``tokens`` tokens (rounded down to a multiple of ``pieces``) of a stream taken as ``pieces`` equal
    runs spread evenly over it (so a subset
    of a stream that joins several books one after another reads every book, not the first). More
    tokens than the stream holds: the whole stream, repeated, then a spread remainder. Read with
    ``batchify(result, pieces)``, each row is one run."""
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    for value, name in ((tokens, "tokens"), (pieces, "pieces")):
        check_positive_int(value, name)
    if ids.numel() < pieces:
        raise ValueError(f"a stream of {ids.numel()} tokens cannot be cut into {pieces} pieces")
    whole, rest = divmod(tokens, ids.numel())
    run = rest // pieces  # equal runs, so that batchify(result, pieces) gives one run per row
    starts = torch.linspace(0, ids.numel() - run, pieces).long() if run else torch.zeros(0, dtype=torch.long)
    spread = [ids[s : s + run] for s in starts.tolist()]
    return torch.cat([ids] * whole + spread) if whole or spread else ids[:0]


def num_bptt_windows(data: torch.Tensor, bptt: int) -> int:
    """How many windows :func:`bptt_batches` yields for ``data`` (one optimiser step each in training)."""
    return math.ceil((data.size(1) - 1) / bptt)


def bptt_batches(data: torch.Tensor, bptt: int) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive windows of a batchified stream: ``input_ids`` ``[B, T]`` and next-token ``targets``."""
    if data.ndim != 2:
        raise ValueError(f"data must be [batch, tokens] from batchify, got shape {tuple(data.shape)}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    for start in range(0, data.size(1) - 1, bptt):
        end = min(start + bptt, data.size(1) - 1)
        yield {"input_ids": data[:, start:end], "targets": data[:, start + 1 : end + 1]}
