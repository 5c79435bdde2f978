"""The indices that structured pruning removes (units, heads, neurons, layers): their validation,
and :func:`lowest`, the one selection of the lowest-scoring ones."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch


def as_index(value, size: int, what: str) -> int:
    """``value`` as an int in ``range(size)``; ValueError naming ``what`` otherwise (bools refused)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        index = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an int, got {value!r}") from None
    if not 0 <= index < size:
        raise ValueError(f"{what} {index} is out of range: allowed 0..{size - 1}")
    return index


def check_indices(values, size: int, what: str, whole: str) -> list[int]:
    """``values`` as a list of distinct ints in ``range(size)`` that leaves at least one of ``whole``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{whole} to remove must be given as a sequence of int indices, got {values!r}")
    indices = [as_index(v, size, what) for v in values]
    for pos, index in enumerate(indices):
        if index in indices[:pos]:
            raise ValueError(f"{what} {index} is listed more than once")
    if len(indices) == size:
        raise ValueError(f"cannot remove all {size} {whole}; keep at least one")
    return indices


def kept(size: int, removed: Sequence[int]) -> torch.Tensor:
    """The indices of ``range(size)`` not in ``removed``, ascending."""
    return torch.tensor(sorted(set(range(size)) - set(removed)), dtype=torch.long)


def lowest(scores: torch.Tensor | list[torch.Tensor], count: int, *, keep_per_layer: int = 1) -> dict[int, list[int]]:
    """The ``count`` lowest-scoring entries across layers, as ``{layer: indices}``, never taking a
    layer below ``keep_per_layer`` entries (NaN padding is skipped). Accepts a padded ``[layers, units]``
    tensor (e.g. head scores) or a list of 1-D tensors (FFN neurons, RNN hidden units). Ties go to the
    lower index. The one selection of "lowest-scoring units" of the RNN and transformer paths."""
    rows = list(scores) if isinstance(scores, (list, tuple)) else list(scores.unbind(0))
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    if isinstance(keep_per_layer, bool) or not isinstance(keep_per_layer, int) or keep_per_layer < 1:
        raise ValueError(f"keep_per_layer must be an int >= 1, got {keep_per_layer!r}")
    valid = [(~r.isnan()).nonzero().flatten().tolist() for r in rows]
    for layer, (r, indices) in enumerate(zip(rows, valid)):
        if indices != list(range(len(indices))):
            raise ValueError(f"layer {layer}'s scores hold NaN before a real score (NaN may only pad the end): {r.tolist()}")
    sizes = [len(indices) for indices in valid]
    removable = sum(max(0, n - keep_per_layer) for n in sizes)
    if count > removable:
        raise ValueError(f"cannot remove {count}: keeping {keep_per_layer} per layer leaves only {removable} removable")
    entries = sorted((float(r[i]), layer, i) for layer, r in enumerate(rows) for i in range(sizes[layer]))
    chosen: dict[int, list[int]] = {}
    taken = 0
    for _, layer, i in entries:
        if taken == count:
            break
        if sizes[layer] - len(chosen.get(layer, [])) > keep_per_layer:
            chosen.setdefault(layer, []).append(i)
            taken += 1
    return {layer: sorted(v) for layer, v in sorted(chosen.items())}
