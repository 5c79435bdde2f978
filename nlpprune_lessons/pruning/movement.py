"""Movement pruning (Sanh, Wolf & Rush, 2020): learn which weights to keep while fine-tuning.

Each pruned weight ``W`` gets a score matrix ``S`` of the same shape (a parameter, starting at 0).
The forward pass uses ``W * M`` where ``M`` keeps the top-scoring weights of each matrix (hard
top-k). ``M`` has no useful gradient, so the straight-through estimator passes ``dL/dM`` to ``S``
unchanged: ``dL/dS = dL/d(W*M) * W``. A score grows when gradient descent moves its weight away
from zero, whatever the weight's size: the model keeps the weights that are *becoming* important
for the new task, where magnitude pruning keeps the ones that were large in pre-training.
(The paper's "soft movement" variant, a learned threshold with an L1 penalty on sigmoid(S), is not
implemented here.)

``torch.nn.utils.prune`` only holds fixed masks, so the learned mask is a parametrisation
(``torch.nn.utils.parametrize``). :meth:`MovementPruner.finalize` turns it into ordinary pruning
masks, after which every other tool of :mod:`nlpprune_lessons.pruning` applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from .masks import _install_mask
from .params import Param, check_params, is_pruned, param_name
from .schedule import cubic_sparsity


def topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Float mask of ``scores``' shape keeping exactly the ``numel - round(sparsity * numel)`` highest
    scores (ties broken by :func:`torch.topk`)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    mask = torch.ones_like(scores)
    k = round(sparsity * scores.numel())
    if k:
        mask.view(-1)[torch.topk(scores.reshape(-1), k, largest=False).indices] = 0
    return mask


class MovementMask(nn.Module):
    """Parametrisation ``W -> W * topk_mask(S)`` with a straight-through gradient to the scores ``S``.

    The mask depends only on the scores and the sparsity, so it is recomputed only after an optimiser
    step changed the scores (their version counter) or the sparsity changed: one top-k per step, not
    per forward pass.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.scores = nn.Parameter(torch.zeros_like(weight))
        self.sparsity = 0.0
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def mask(self) -> torch.Tensor:
        """The current 0/1 mask (top-k of the scores at the current sparsity)."""
        key = (self.scores._version, self.scores.data_ptr(), self.sparsity)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, topk_mask(self.scores.detach(), self.sparsity))
        return self._cache[1]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mask = self.mask()
        if not (torch.is_grad_enabled() and self.scores.requires_grad):
            return weight * mask
        # value: weight * mask; gradient to the scores: dL/d(W*M) * W (straight-through)
        return weight * (mask + self.scores - self.scores.detach())


class MovementPruner:
    """Learn movement scores for ``params`` (default: a model's prunable weights) during fine-tuning.

    The sparsity follows :func:`~nlpprune_lessons.pruning.cubic_sparsity` from 0 at ``start_step`` to
    ``final_sparsity`` at ``end_step``; every matrix keeps its own top-k (the paper's setting). Use:

    >>> pruner = MovementPruner(model, 0.9, start_step=30, end_step=210)  # doctest: +SKIP
    >>> train_classifier(model, ..., param_groups=pruner.param_groups(lr=1e-2),
    ...                  on_step=pruner.step, restore_best=False)          # doctest: +SKIP
    >>> pruner.finalize()                                                   # doctest: +SKIP

    Scores need a much larger learning rate than the weights (the paper: 1e-2 vs 3e-5), hence
    :meth:`param_groups`. :meth:`finalize` replaces the learned masks by ordinary pruning masks.
    """

    def __init__(
        self,
        model: nn.Module,
        final_sparsity: float,
        start_step: int,
        end_step: int,
        params: Sequence[Param] | None = None,
    ):
        cubic_sparsity(start_step, final_sparsity, start_step, end_step)  # validates steps and sparsity
        self.model = model
        self.params = check_params(model, params)
        for module, name in self.params:
            if is_pruned(module, name) or parametrize.is_parametrized(module, name):
                raise ValueError(f"{param_name(model, module, name)} already carries a mask; movement "
                                 "pruning starts from a dense model (call make_permanent first)")
        self.names = [param_name(model, m, n) for m, n in self.params]
        self.masks: list[MovementMask] = []
        for module, name in self.params:
            movement = MovementMask(getattr(module, name).detach())
            parametrize.register_parametrization(module, name, movement)
            self.masks.append(movement)
        self.final_sparsity, self.start_step, self.end_step = final_sparsity, start_step, end_step
        self.history: list[tuple[int, float]] = []
        self.finalized = False

    @property
    def scores(self) -> list[nn.Parameter]:
        """The learned score tensors, one per pruned weight."""
        return [m.scores for m in self.masks]

    def param_groups(self, lr: float = 1e-2) -> list[dict]:
        """An optimiser group for the scores: their own ``lr``, no weight decay."""
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        return [{"params": self.scores, "lr": lr, "weight_decay": 0.0}]

    def set_sparsity(self, sparsity: float) -> None:
        """Make every matrix keep the top ``1 - sparsity`` of its scores from the next forward pass on."""
        if not 0.0 <= sparsity <= 1.0:
            raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
        for movement in self.masks:
            movement.sparsity = sparsity

    def step(self, step: int) -> float:
        """Set the sparsity of the cubic schedule at optimiser step ``step``; return it."""
        if self.finalized:
            raise RuntimeError("the pruner was finalized; its masks are now ordinary pruning masks")
        sparsity = cubic_sparsity(step, self.final_sparsity, self.start_step, self.end_step)
        self.set_sparsity(sparsity)
        self.history.append((step, sparsity))
        return sparsity

    def finalize(self) -> dict[str, float]:
        """Replace the learned masks by ``torch.nn.utils.prune`` masks (current top-k) and drop the
        scores. Returns the sparsity of each weight by dotted name."""
        if self.finalized:
            raise RuntimeError("finalize() was already called")
        result = {}
        for (module, name), movement, dotted in zip(self.params, self.masks, self.names):
            mask = movement.mask().clone()
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
            _install_mask(module, name, mask)
            result[dotted] = 1.0 - mask.mean().item()
        self.finalized = True
        return result
