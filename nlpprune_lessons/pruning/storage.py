"""Pruned weights stored compactly: a bitmask of the nonzeros plus their values, in one safetensors file.

A tensor stored sparse becomes two entries, ``<name>.__bitmask__`` (uint8, ``numpy.packbits`` of the
flattened nonzero pattern, row-major) and ``<name>.__values__`` (the nonzeros in row-major order, same
dtype). The JSON metadata under ``"nlpprune_sparse"`` records their shapes and dtypes, tied tensors (kept
once) and, for transformers models, the class and config needed to rebuild the model. No pickle anywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from nlpprune_lessons.pruning.params import effective_state_dict, pruned_params
from nlpprune_lessons.pruning.report import zero_fraction

FORMAT_VERSION = 1
METADATA_KEY = "nlpprune_sparse"
BITMASK, VALUES = ".__bitmask__", ".__values__"
# The only classes load_sparse builds from the file alone (model class -> config class of transformers).
REBUILDABLE = {
    "BertForSequenceClassification": "BertConfig",
    "BertModel": "BertConfig",
    "LlamaForCausalLM": "LlamaConfig",
}
_DEFAULT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # torch.set_default_dtype takes these


def _check_min_sparsity(min_sparsity: float) -> float:
    valid = isinstance(min_sparsity, (int, float)) and not isinstance(min_sparsity, bool)
    if not (valid and 0.0 <= min_sparsity <= 1.0):
        raise ValueError(
            "min_sparsity must be a number in [0, 1] (the fraction of zeros from which a tensor is stored "
            f"as bitmask + values), got {min_sparsity!r}"
        )
    return float(min_sparsity)


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Each distinct tensor once, and ``{alias: name kept}`` for the identical views of a kept one (tied
    weights). A tensor that only overlaps a kept one's storage is copied, as safetensors refuses sharing."""
    unique, aliases, views, storages = {}, {}, {}, set()
    for name, tensor in state.items():
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        view = (*storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if tensor.numel() and view in views:
            aliases[name] = views[view]
            continue
        if tensor.numel() and storage in storages:
            tensor = tensor.clone()
        views[view] = name
        storages.add(storage)
        unique[name] = tensor
    return unique, aliases


def encode_bitmask(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compact form of ``tensor`` that :func:`save_sparse` stores: ``(bits, values)``.

    ``bits`` is a uint8 tensor of ``ceil(numel / 8)`` bytes, the flattened (row-major) nonzero pattern
    packed eight entries to a byte, the first entry in the most significant bit (``numpy.packbits``'s
    order; the last byte is padded with zero bits); ``values`` holds the nonzero entries in row-major
    order, in ``tensor``'s dtype. :func:`decode_bitmask` inverts it."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"tensor must hold real numbers, got dtype {tensor.dtype}")
    flat = tensor.detach().cpu().reshape(-1)
    nonzero = flat != 0
    return torch.from_numpy(np.packbits(nonzero.numpy())), flat[nonzero].clone()


def bitmask_nbytes(tensor: torch.Tensor) -> int:
    """Bytes of :func:`encode_bitmask`'s output for ``tensor``: one bit per entry (rounded up to whole
    bytes) plus the nonzero values at ``tensor``'s element size."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    return math.ceil(tensor.numel() / 8) + int(tensor.count_nonzero()) * tensor.element_size()


def decode_bitmask(bits: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """The dense tensor of ``shape`` that :func:`encode_bitmask` encoded as ``bits`` and ``values``:
    zeros where a bit is 0, the values in order where it is 1."""
    if not isinstance(bits, torch.Tensor) or bits.dtype != torch.uint8 or bits.ndim != 1:
        raise TypeError("bits must be a 1-D uint8 tensor (packed bits, as encode_bitmask returns)")
    if not isinstance(values, torch.Tensor) or values.ndim != 1:
        raise TypeError("values must be a 1-D tensor of the nonzero entries")
    numel = math.prod(shape)
    if bits.numel() != math.ceil(numel / 8):
        raise ValueError(f"{bits.numel()} bytes of bits cannot encode shape {tuple(shape)} ({numel} entries "
                         f"need {math.ceil(numel / 8)} bytes)")
    nonzero = _unpack(bits, numel)
    if values.numel() != int(nonzero.sum()):
        raise ValueError(f"{values.numel()} values for {int(nonzero.sum())} set bits")
    return _scatter(nonzero, values, shape)


def _unpack(bits: torch.Tensor, numel: int) -> torch.Tensor:
    """The bool nonzero pattern (``numel`` entries) packed in ``bits``."""
    return torch.from_numpy(np.unpackbits(bits.cpu().numpy(), count=numel).astype(bool))


def _scatter(nonzero: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    """Zeros of ``shape`` with ``values``, in order, where ``nonzero`` is set."""
    dense = torch.zeros(nonzero.numel(), dtype=values.dtype)
    dense[nonzero] = values.cpu()
    return dense.view(tuple(shape))


def _encode(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """The bitmask and values entries of ``tensor``."""
    bits, values = encode_bitmask(tensor)
    return {name + BITMASK: bits, name + VALUES: values}


def _metadata(model: nn.Module, sparse: dict[str, dict], aliases: dict[str, str]) -> dict:
    meta = {"format_version": FORMAT_VERSION, "sparse": sparse, "aliases": aliases}
    config = getattr(model, "config", None)
    if callable(getattr(config, "to_json_string", None)):  # a transformers model: enough to rebuild it
        meta["model_class"] = type(model).__name__
        meta["config"] = config.to_json_string(use_diff=False)
    return meta


def save_sparse(model: nn.Module, path: str | Path, *, min_sparsity: float = 0.05) -> dict:
    """Write the effective weights of ``model`` (masks folded) to one safetensors file at ``path``.

    Floating-point tensors with at least 2 dims and a fraction of exact zeros >= ``min_sparsity`` are
    stored as bitmask + values when that takes fewer bytes, the rest dense; tied tensors are stored once. Returns a summary:
    ``path``, ``file_bytes``, ``dense_bytes`` (every distinct tensor stored dense), ``sparse_tensors``
    (per sparse tensor: ``dense_bytes``, ``stored_bytes``, ``sparsity``), ``sparse_dense_bytes`` and
    ``sparse_stored_bytes``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    min_sparsity = _check_min_sparsity(min_sparsity)
    tensors, aliases = _dedupe(effective_state_dict(model))
    stored, sparse, report = {}, {}, {}
    for name, tensor in tensors.items():
        candidate = tensor.is_floating_point() and tensor.dim() >= 2 and tensor.numel() > 0
        sparsity = zero_fraction(tensor) if candidate else 0.0
        if not (candidate and sparsity >= min_sparsity):
            stored[name] = tensor.contiguous()
            continue
        parts = _encode(name, tensor)
        if sum(_nbytes(p) for p in parts.values()) >= _nbytes(tensor):  # e.g. float16 with few zeros
            stored[name] = tensor.contiguous()
            continue
        stored.update(parts)
        sparse[name] = {"shape": list(tensor.shape), "dtype": _dtype_name(tensor.dtype)}
        report[name] = {
            "dense_bytes": _nbytes(tensor),
            "stored_bytes": sum(_nbytes(p) for p in parts.values()),
            "sparsity": sparsity,
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(stored, str(tmp), metadata={METADATA_KEY: json.dumps(_metadata(model, sparse, aliases))})
    tmp.replace(path)  # readers never see a half-written file
    return {
        "path": path,
        "file_bytes": path.stat().st_size,
        "dense_bytes": sum(_nbytes(t) for t in tensors.values()),
        "sparse_tensors": report,
        "sparse_dense_bytes": sum(r["dense_bytes"] for r in report.values()),
        "sparse_stored_bytes": sum(r["stored_bytes"] for r in report.values()),
    }


def _read_metadata(handle, path: str | Path) -> dict:
    raw = (handle.metadata() or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path} was not written by save_sparse (no {METADATA_KEY!r} metadata)")
    meta = json.loads(raw)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has sparse format version {version!r}; this code reads version {FORMAT_VERSION}")
    return meta


def _decode(handle, name: str, info: dict) -> torch.Tensor:
    """The dense tensor ``name``: zeros where its bitmask is 0, its values (in order) elsewhere."""
    nonzero = _unpack(handle.get_tensor(name + BITMASK), math.prod(info["shape"]))
    values = handle.get_tensor(name + VALUES)
    if values.numel() != int(nonzero.sum()) or _dtype_name(values.dtype) != info["dtype"]:
        raise ValueError(
            f"corrupt sparse tensor {name!r}: {values.numel()} {_dtype_name(values.dtype)} values for "
            f"{int(nonzero.sum())} set bits, metadata says {info['dtype']}"
        )
    return _scatter(nonzero, values, info["shape"])


def _read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The dense state dict stored at ``path`` (aliases restored as the same tensor) and its metadata."""
    with safe_open(str(path), framework="pt") as handle:
        meta = _read_metadata(handle, path)
        parts = {name + suffix for name in meta["sparse"] for suffix in (BITMASK, VALUES)}
        state = {name: _decode(handle, name, info) for name, info in meta["sparse"].items()}
        state.update({key: handle.get_tensor(key) for key in handle.keys() if key not in parts})
    for alias, name in meta["aliases"].items():
        state[alias] = state[name]
    return state, meta


def _rebuild(meta: dict, state: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    """A fresh transformers model of the allow-listed class and config named in ``meta``, created in
    the dtype of the stored floating-point tensors when they all share one."""
    cls = meta.get("model_class")
    if cls not in REBUILDABLE:
        named = f"model class {cls!r}" if cls else "no model class"
        raise ValueError(
            f"{path} names {named}; without model= load_sparse only rebuilds {', '.join(REBUILDABLE)}. "
            "Build the model yourself and pass it as model="
        )
    import transformers  # lazily: importing the pruning package stays fast

    config = getattr(transformers, REBUILDABLE[cls]).from_dict(json.loads(meta["config"]))
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    previous = torch.get_default_dtype()
    dtype = dtypes.pop() if len(dtypes) == 1 else previous
    torch.set_default_dtype(dtype if dtype in _DEFAULT_DTYPES else previous)
    try:
        return getattr(transformers, cls)(config)
    finally:
        torch.set_default_dtype(previous)


def load_sparse(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Load a file written by :func:`save_sparse` (strict) into ``model`` and return it.

    Without ``model``, the transformers model recorded in the file is rebuilt (only the classes of
    :data:`REBUILDABLE`, never remote code) and put in eval mode. Either way the result is a plain
    model without masks, whose pruned weights hold exact zeros.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
    if model is not None and pruned_params(model):
        raise ValueError("model carries pruning masks; pass an unpruned model (or call make_permanent on it first)")
    state, meta = _read_state(path)
    if model is not None:
        model.load_state_dict(state, strict=True)
        return model
    model = _rebuild(meta, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def sparse_storage_report(summary: dict) -> pd.DataFrame:
    """One row per sparse tensor of a :func:`save_sparse` summary (dense MB, stored MB, ratio, sparsity),
    then a ``"(whole file)"`` row: the file size against every tensor stored dense."""
    rows = [(name, r["dense_bytes"], r["stored_bytes"], r["sparsity"]) for name, r in summary["sparse_tensors"].items()]
    rows.append(("(whole file)", summary["dense_bytes"], summary["file_bytes"], float("nan")))
    table = pd.DataFrame(rows, columns=["name", "dense_mb", "stored_mb", "sparsity"])
    table[["dense_mb", "stored_mb"]] /= 1e6
    table.insert(3, "ratio", table["stored_mb"] / table["dense_mb"])
    return table
