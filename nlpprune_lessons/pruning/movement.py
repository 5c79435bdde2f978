"""Movement pruning (Sanh, Wolf & Rush, 2020): learn which weights to keep while fine-tuning.

Each pruned weight ``W`` gets a score matrix ``S`` of the same shape (a parameter, starting at 0).
The forward pass uses ``W * M`` where ``M`` keeps the top-scoring weights (hard top-k, per matrix as
in the paper, or over all matrices at once). ``M`` has no useful gradient, so the straight-through estimator passes ``dL/dM`` to ``S``
unchanged: ``dL/dS = dL/d(W*M) * W``. A score grows when gradient descent moves its weight away
from zero, whatever the weight's size: the model keeps the weights that are *becoming* important
for the new task, where magnitude pruning keeps the ones that were large in pre-training.
:class:`SoftMovementPruner` is the paper's "soft movement" variant: no sparsity is imposed; the mask
keeps the weights with ``sigmoid(S) > tau`` and an L1 penalty on ``sigmoid(S)`` pushes scores down, so
the penalty's strength sets how many weights survive (the reference code's ``sigmoied_threshold``).

``torch.nn.utils.prune`` only holds fixed masks, so the learned mask is a parametrisation
(``torch.nn.utils.parametrize``). :meth:`MovementPruner.finalize` turns it into ordinary pruning
masks, after which every other tool of :mod:`nlpprune_lessons.pruning` applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from nlpprune_lessons.core.checks import check_positive_number
from nlpprune_lessons.pruning.masks import SCOPES, check_fraction, install_mask, topk_mask
from nlpprune_lessons.pruning.params import Param, check_params, is_pruned, param_name
from nlpprune_lessons.pruning.schedule import cubic_sparsity


class _StraightThrough(torch.autograd.Function):
    """``weight * mask`` forward; backward: ``grad * mask`` to the weight and ``grad * weight`` to the
    scores (the straight-through estimator: top-k treated as the identity)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, mask)
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, mask = ctx.saved_tensors
        return grad * mask, grad * weight, None


def straight_through(weight: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Movement pruning's masked weight ``weight * mask`` with the straight-through gradient: backward
    gives ``dL/dweight = dL/dout * mask`` and ``dL/dscores = dL/dout * weight`` (the top-k that made
    ``mask`` from ``scores`` is treated as the identity), and none to ``mask``. ``scores`` only
    receives the gradient; its values are not read."""
    for name, value in (("weight", weight), ("scores", scores), ("mask", mask)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if scores.shape != weight.shape or mask.shape != weight.shape:
        raise ValueError(f"weight, scores and mask must have one shape, got {tuple(weight.shape)}, "
                         f"{tuple(scores.shape)} and {tuple(mask.shape)}")
    return _StraightThrough.apply(weight, scores, mask)


class MovementMask(nn.Module):
    """Parametrisation ``W -> W * mask`` with a straight-through gradient to the scores ``S``.

    ``mask`` is a buffer that :class:`MovementPruner` recomputes from the scores after every optimiser
    step (one top-k per step, not per forward pass); it is in the state dict, so a checkpoint taken
    during training restores the masks with the scores.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.scores = nn.Parameter(torch.zeros_like(weight))
        self.register_buffer("mask", torch.ones_like(weight, dtype=torch.bool))  # bool: a quarter of float32's bytes

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(weight, self.scores, self.mask)


class MovementPruner:
    """Learn movement scores for ``params`` (default: a model's prunable weights) during fine-tuning.

    The sparsity follows :func:`~nlpprune_lessons.pruning.cubic_sparsity` from 0 at ``start_step`` to
    ``final_sparsity`` at ``end_step``. ``scope="layer"`` keeps the top-k of every matrix (the paper's
    hard movement pruning); ``"global"`` the top-k of all scores together. Use:

    >>> pruner = MovementPruner(model, 0.9, start_step=30, end_step=210)  # doctest: +SKIP
    >>> train_classifier(model, ..., param_groups=pruner.param_groups(lr=1e-2),
    ...                  on_step=pruner.step, restore_best=False)          # doctest: +SKIP
    >>> pruner.finalize()                                                   # doctest: +SKIP

    :meth:`step` must run after every optimiser step: it recomputes the masks from the updated
    scores. Scores need a much larger learning rate than the weights (the paper: 1e-2 vs 3e-5), hence
    :meth:`param_groups`. :meth:`finalize` replaces the learned masks by ordinary pruning masks.
    """

    def __init__(
        self,
        model: nn.Module,
        final_sparsity: float,
        start_step: int,
        end_step: int,
        params: Sequence[Param] | None = None,
        scope: str = "layer",
    ):
        cubic_sparsity(start_step, final_sparsity, start_step, end_step)  # validates steps and sparsity
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.model, self.scope = model, scope
        self.params = check_params(model, params)
        for module, name in self.params:
            if is_pruned(module, name):
                raise ValueError(f"{param_name(model, module, name)} already carries a mask; movement "
                                 "pruning starts from a dense model (call make_permanent first)")
        self.names = [param_name(model, m, n) for m, n in self.params]
        self.masks: list[MovementMask] = []
        for module, name in self.params:
            movement = MovementMask(getattr(module, name).detach())
            parametrize.register_parametrization(module, name, movement)
            self.masks.append(movement)
        self.final_sparsity, self.start_step, self.end_step = final_sparsity, start_step, end_step
        self.sparsity = 0.0
        self.history: list[tuple[int, float]] = []
        self.finalized = False

    @property
    def scores(self) -> list[nn.Parameter]:
        """The learned score tensors, one per pruned weight."""
        return [m.scores for m in self.masks]

    def param_groups(self, lr: float = 1e-2) -> list[dict]:
        """An optimiser group for the scores: their own ``lr``, no weight decay."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        return [{"params": self.scores, "lr": lr, "weight_decay": 0.0}]

    def _new_masks(self) -> list[torch.Tensor]:
        """The top ``1 - sparsity`` of the current scores (per matrix or overall)."""
        if self.scope == "layer":
            return [topk_mask(m.scores, self.sparsity) for m in self.masks]
        flat = topk_mask(torch.cat([m.scores.reshape(-1) for m in self.masks]), self.sparsity)
        return [chunk.view_as(m.scores) for chunk, m in zip(flat.split([m.scores.numel() for m in self.masks]),
                                                            self.masks)]

    @torch.no_grad()
    def _refresh(self) -> None:
        """Recompute every mask from the current scores."""
        for movement, mask in zip(self.masks, self._new_masks()):
            movement.mask.copy_(mask)

    def set_sparsity(self, sparsity: float) -> None:
        """Keep the top ``1 - sparsity`` of the current scores from now on."""
        if self.finalized:
            raise RuntimeError("the pruner was finalized; its masks are now ordinary pruning masks")
        self.sparsity = check_fraction(sparsity, "sparsity")
        self._refresh()

    def step(self, step: int) -> float:
        """After optimiser step ``step``: set the sparsity of the cubic schedule and recompute every mask
        from the updated scores; return the sparsity."""
        sparsity = cubic_sparsity(step, self.final_sparsity, self.start_step, self.end_step)
        self.set_sparsity(sparsity)
        self.history.append((step, sparsity))
        return sparsity

    def finalize(self) -> dict[str, float]:
        """Replace the learned masks by ``torch.nn.utils.prune`` masks (those of the final scores: their
        top-k, or for soft movement those above the final threshold) and drop the scores. Returns the
        sparsity of each weight by dotted name."""
        if self.finalized:
            raise RuntimeError("finalize() was already called")
        self._refresh()
        result = {}
        for (module, name), movement, dotted in zip(self.params, self.masks, self.names):
            mask = movement.mask.to(movement.scores.dtype)
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
            install_mask(module, name, mask)
            result[dotted] = 1.0 - mask.mean().item()
        self.finalized = True
        return result


class SoftMovementPruner(MovementPruner):
    """Soft movement pruning (Sanh et al., 2020): the mask keeps the weights whose ``sigmoid(score)``
    exceeds a threshold ``tau``, and :meth:`penalty` (add it to the loss) is ``lambda`` times the mean
    of ``sigmoid(S)`` over each matrix, averaged over the matrices. No sparsity is imposed: the
    penalty's final strength ``final_lambda`` decides how many weights survive, so reaching a target
    means searching it. ``tau`` rises on the cubic schedule from 0 at ``start_step`` (every weight
    kept) to ``final_threshold`` at ``end_step``, and ``lambda = final_lambda * tau / final_threshold``
    rises with it (the reference code's schedule). As in that code, every matrix keeps at least
    ``0.5%`` of its weights (its highest scores), and the straight-through gradient skips the sigmoid:
    ``dL/dS = dL/d(W*M) * W``, plus the penalty's own gradient. Use like :class:`MovementPruner`, with
    ``penalty=pruner.penalty`` in the training loop."""

    #: The reference code's per-matrix floor: at least ``int(MIN_KEPT * n) + 1`` weights survive.
    MIN_KEPT = 0.005
    #: The reference code's final threshold on ``sigmoid(score)`` (its README's soft-movement command).
    FINAL_THRESHOLD = 0.1

    def __init__(
        self,
        model: nn.Module,
        final_lambda: float,
        start_step: int,
        end_step: int,
        params: Sequence[Param] | None = None,
        final_threshold: float = FINAL_THRESHOLD,
    ):
        final_lambda = check_positive_number(final_lambda, "final_lambda", "the penalty's final strength")
        final_threshold = check_positive_number(final_threshold, "final_threshold", "compared with sigmoid(score)")
        if not final_threshold < 1:
            raise ValueError(f"final_threshold is compared with sigmoid(score), so it must be < 1, got {final_threshold}")
        super().__init__(model, 0.0, start_step, end_step, params=params, scope="layer")
        self.final_lambda, self.final_threshold = final_lambda, final_threshold
        self.threshold, self.strength = 0.0, 0.0

    def _new_masks(self) -> list[torch.Tensor]:
        masks = []
        for movement in self.masks:
            scores = movement.scores
            mask = (torch.sigmoid(scores) > self.threshold).to(scores.dtype)
            floor = int(self.MIN_KEPT * scores.numel()) + 1
            if mask.sum() < floor:
                mask = topk_mask(scores, 1.0 - floor / scores.numel())
            masks.append(mask)
        return masks

    def set_sparsity(self, sparsity: float) -> None:
        raise TypeError("soft movement pruning sets no sparsity: the penalty (final_lambda) decides it")

    def step(self, step: int) -> float:
        """After optimiser step ``step``: set ``tau`` and ``lambda`` of the schedule, recompute every mask
        and return the sparsity it gives."""
        if self.finalized:
            raise RuntimeError("the pruner was finalized; its masks are now ordinary pruning masks")
        self.threshold = cubic_sparsity(step, self.final_threshold, self.start_step, self.end_step)
        self.strength = self.final_lambda * self.threshold / self.final_threshold
        self._refresh()
        kept = sum(int(m.mask.count_nonzero()) for m in self.masks)
        self.sparsity = 1.0 - kept / sum(m.mask.numel() for m in self.masks)
        self.history.append((step, self.sparsity))
        return self.sparsity

    def finalize(self) -> dict[str, float]:
        self.threshold = self.final_threshold  # as the reference code evaluates, whatever step training ended at
        return super().finalize()

    def penalty(self, model: nn.Module | None = None) -> torch.Tensor:
        """``lambda`` (this step's) times the mean over matrices of the mean ``sigmoid(score)``;
        ``model`` is ignored (the training loop's ``penalty(model)`` signature)."""
        means = torch.stack([torch.sigmoid(m.scores).mean() for m in self.masks])
        return self.strength * means.mean()
