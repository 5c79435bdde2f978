"""Gradual (cubic) pruning during training, and lottery-ticket rewinding."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.pruning.importance import Batch
from nlpprune_lessons.pruning.masks import prune
from nlpprune_lessons.pruning.params import Param, is_pruned


def _check_steps(start_step: int, end_step: int) -> None:
    if not (isinstance(start_step, int) and isinstance(end_step, int) and 0 <= start_step <= end_step):
        raise ValueError(f"need integer steps with 0 <= start_step <= end_step, got {start_step!r}, {end_step!r}")


def cubic_sparsity(
    step: int, final_sparsity: float, start_step: int, end_step: int, initial_sparsity: float = 0.0
) -> float:
    """Zhu & Gupta (2017): ``s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))**3``.

    ``initial_sparsity`` before ``start_step``, ``final_sparsity`` from ``end_step`` on; fast pruning
    early, when many redundant weights remain, and slow near the end.
    """
    _check_steps(start_step, end_step)
    if not 0.0 <= initial_sparsity <= final_sparsity <= 1.0:
        raise ValueError(
            f"need 0 <= initial_sparsity <= final_sparsity <= 1, got {initial_sparsity!r}, {final_sparsity!r}"
        )
    if step <= start_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    progress = (step - start_step) / (end_step - start_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


class GradualPruner:
    """Prune to :func:`cubic_sparsity` every ``frequency`` steps between ``start_step`` and ``end_step``.

    Call :meth:`step` after every optimiser step. The other arguments go to :func:`prune` (for
    ``"taylor"``, ``data`` must be re-iterable, e.g. a list of batches or a DataLoader).
    """

    def __init__(
        self,
        model: nn.Module,
        final_sparsity: float,
        start_step: int,
        end_step: int,
        frequency: int = 100,
        initial_sparsity: float = 0.0,
        method: str = "magnitude",
        scope: str = "global",
        params: Sequence[Param] | None = None,
        data: Iterable[Batch] | None = None,
        loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None,
        seed: int = 0,
    ):
        cubic_sparsity(start_step, final_sparsity, start_step, end_step, initial_sparsity)  # validates
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"frequency must be an integer >= 1, got {frequency!r}")
        self.model, self.params, self.frequency = model, params, frequency
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.start_step, self.end_step = start_step, end_step
        self.prune_kwargs = {"method": method, "scope": scope, "data": data, "loss_fn": loss_fn, "seed": seed}
        self.history: list[tuple[int, float]] = []

    def step(self, step: int) -> float | None:
        """Prune if ``step`` is a pruning step; return the sparsity pruned to, else None."""
        if not self.start_step <= step <= self.end_step:
            return None
        if (step - self.start_step) % self.frequency and step != self.end_step:
            return None
        sparsity = cubic_sparsity(step, self.final_sparsity, self.start_step, self.end_step, self.initial_sparsity)
        prune(self.model, sparsity, params=self.params, **self.prune_kwargs)
        self.history.append((step, sparsity))
        return sparsity


def _named_stored(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter by its post-``make_permanent`` name (``x.weight_orig`` -> ``x.weight``)."""
    named = {}
    for prefix, module in model.named_modules():
        for key, tensor in module._parameters.items():
            base = key.removesuffix("_orig")
            if tensor is not None:
                name = base if key != base and is_pruned(module, base) else key
                named.setdefault(f"{prefix}.{name}" if prefix else name, tensor)
    return named


def weights_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Clones of every parameter's unpruned values, by name as after ``make_permanent``."""
    return {name: tensor.detach().clone() for name, tensor in _named_stored(model).items()}


@torch.no_grad()
def rewind(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Lottery-ticket rewinding: copy ``snapshot`` back into the weights (into ``<name>_orig`` of pruned
    ones), keeping every mask. Raises ValueError when names or shapes differ."""
    current = _named_stored(model)
    if current.keys() != snapshot.keys():
        missing, unexpected = sorted(current.keys() - snapshot.keys()), sorted(snapshot.keys() - current.keys())
        raise ValueError(f"snapshot does not match the model: missing {missing}, unexpected {unexpected}")
    for name, tensor in current.items():
        if tensor.shape != snapshot[name].shape:
            shapes = f"{tuple(snapshot[name].shape)} != model shape {tuple(tensor.shape)}"
            raise ValueError(f"{name}: snapshot shape {shapes}")
    for name, tensor in current.items():
        tensor.copy_(snapshot[name])
