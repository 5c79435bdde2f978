"""Sparsity of a model, over the prunable weights and over all parameters (always both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from nlpprune_lessons.pruning.params import (
    Param,
    check_params,
    effective_weight,
    is_pruned,
    param_name,
    pruned_params,
    transformer_blocks,
)


@dataclass
class SparsityReport:
    """Zeros per prunable weight and the two totals the course always reports together."""

    per_parameter: pd.DataFrame  # name, shape, numel, zeros, sparsity, masked
    prunable_numel: int
    prunable_zeros: int
    total_numel: int
    total_zeros: int

    @property
    def prunable_sparsity(self) -> float:
        """Fraction of zeros over the prunable weights."""
        return self.prunable_zeros / self.prunable_numel

    @property
    def overall_sparsity(self) -> float:
        """Fraction of zeros over every parameter of the model (biases, embeddings, ...)."""
        return self.total_zeros / self.total_numel if self.total_numel else 0.0

    def __str__(self) -> str:
        table = self.per_parameter.assign(sparsity=self.per_parameter["sparsity"].map("{:.2%}".format))
        return (
            f"{table.to_string(index=False)}\n"
            f"prunable sparsity: {self.prunable_sparsity:.2%} ({self.prunable_zeros:,} / {self.prunable_numel:,})\n"
            f"overall sparsity:  {self.overall_sparsity:.2%} ({self.total_zeros:,} / {self.total_numel:,})"
        )


def _zeros(tensor: torch.Tensor) -> int:
    return int((tensor == 0).sum())


def zero_fraction(tensor: torch.Tensor) -> float:
    """The share of the entries of ``tensor`` that are exactly zero (-0.0 counts; 1e-12 does not): the
    sparsity of one tensor, as every lesson reports it."""
    if not torch.is_tensor(tensor):
        raise TypeError(f"zero_fraction takes a torch.Tensor, got {type(tensor).__name__}")
    if tensor.numel() == 0:
        raise ValueError("zero_fraction of an empty tensor is undefined: it has no entries")
    return _zeros(tensor) / tensor.numel()


def _overall(model: nn.Module) -> tuple[int, int]:
    """(numel, zeros) over every parameter once, using the effective weight of pruned ones."""
    numel = zeros = 0
    seen = set()
    for module in model.modules():
        for key, tensor in module._parameters.items():
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            base = key.removesuffix("_orig")
            weight = effective_weight(module, base) if key != base and is_pruned(module, base) else tensor
            numel += tensor.numel()
            zeros += _zeros(weight)
    return numel, zeros


@torch.no_grad()
def sparsity_report(model: nn.Module, params: Sequence[Param] | None = None) -> SparsityReport:
    """Sparsity of ``params`` (default :func:`default_params`) plus every masked weight, and of the
    whole model. Pruned weights are counted through their effective value ``orig * mask``."""
    selected = check_params(model, params)
    selected += [p for p in pruned_params(model) if not any(p[0] is m and p[1] == n for m, n in selected)]
    rows = []
    for module, name in selected:
        weight = effective_weight(module, name)
        rows.append(
            {
                "name": param_name(model, module, name),
                "shape": tuple(weight.shape),
                "numel": weight.numel(),
                "zeros": _zeros(weight),
                "sparsity": _zeros(weight) / weight.numel(),
                "masked": is_pruned(module, name),
            }
        )
    table = pd.DataFrame(rows, columns=["name", "shape", "numel", "zeros", "sparsity", "masked"])
    total_numel, total_zeros = _overall(model)
    return SparsityReport(table, int(table["numel"].sum()), int(table["zeros"].sum()), total_numel, total_zeros)


@torch.no_grad()
def block_sparsity(model: nn.Module) -> pd.DataFrame:
    """Sparsity of every Linear weight of a transformer, one row per block and one column per matrix
    (named by its path inside the block, e.g. ``attention.self.query``): where the zeros landed."""
    blocks = transformer_blocks(model)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} is not a transformers model with a stack of blocks")
    rows = {}
    for index, block in enumerate(blocks):
        rows[index] = {
            name: (effective_weight(module, "weight") == 0).float().mean().item()
            for name, module in block.named_modules()
            if isinstance(module, nn.Linear)
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("block")


@torch.no_grad()
def pruned_weight_size(model: nn.Module) -> dict[str, float]:
    """How large the weights that the masks removed were: mean ``|w|`` of the masked-out weights and of
    all masked weights (their stored values, before the mask). Which weights a method removes often
    explains what the removal costs."""
    removed = total = 0.0
    count_removed = count_total = 0
    for module, name in pruned_params(model):
        weight, mask = getattr(module, f"{name}_orig").abs(), getattr(module, f"{name}_mask") == 0
        removed += float(weight[mask].sum())
        total += float(weight.sum())
        count_removed += int(mask.sum())
        count_total += weight.numel()
    if count_removed == 0:
        raise ValueError("the model has no masked-out weights: prune it first")
    return {"mean_abs_removed": removed / count_removed, "mean_abs_all": total / count_total}
