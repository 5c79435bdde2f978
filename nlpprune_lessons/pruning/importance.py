"""Importance scores: one tensor per selected weight, same shape; low score = pruned first."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.core.batch import to_device
from nlpprune_lessons.losses import default_loss
from nlpprune_lessons.pruning.params import Param, effective_weight, stored_param

Batch = dict[str, torch.Tensor]


def magnitude_scores(params: Sequence[Param]) -> list[torch.Tensor]:
    """``|w|`` of each effective (masked) weight."""
    with torch.no_grad():
        return [effective_weight(m, n).abs() for m, n in params]


def random_scores(params: Sequence[Param], generator: torch.Generator) -> list[torch.Tensor]:
    """Uniform random scores drawn from ``generator`` (a CPU generator; same seed, same scores)."""
    return [
        torch.rand(stored_param(m, n).shape, generator=generator).to(stored_param(m, n).device)
        for m, n in params
    ]


def wanda_scores(weight: torch.Tensor, input_sq_sum: torch.Tensor) -> torch.Tensor:
    """Wanda importance (Sun et al., 2023) of a Linear weight (outputs x inputs): ``|W_ij| * ||X_j||_2``,
    where ``input_sq_sum[j]`` is the sum over calibration tokens of the squared input feature ``j``.
    A small weight on a feature that is often large can matter more than a large weight on a quiet one."""
    if not isinstance(weight, torch.Tensor) or not isinstance(input_sq_sum, torch.Tensor):
        raise TypeError("weight and input_sq_sum must be torch tensors")
    if weight.ndim != 2 or input_sq_sum.shape != weight.shape[1:]:
        raise ValueError(f"need a 2-D weight and one squared-norm per input feature, got {tuple(weight.shape)} "
                         f"and {tuple(input_sq_sum.shape)}")
    if bool((input_sq_sum < 0).any()):
        raise ValueError("input_sq_sum holds sums of squares: it cannot be negative")
    return weight.detach().abs() * input_sq_sum.to(weight.dtype).sqrt().unsqueeze(0)


def taylor_scores(
    model: nn.Module,
    params: Sequence[Param],
    data: Iterable[Batch],
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] = default_loss,
    max_batches: int | None = None,
) -> list[torch.Tensor]:
    """First-order Taylor importance ``sum over batches of |w * dL/dw|`` (Molchanov et al., 2017/2019).

    ``w`` is the effective (masked) weight and the gradient is taken with respect to it. The model runs
    in eval mode (no dropout) with gradients enabled; its mode is restored afterwards. Gradients come
    from :func:`torch.autograd.grad`, so no ``.grad`` attribute is read or changed (training is not
    affected). cuDNN is disabled meanwhile because its RNN backward refuses eval mode.
    """
    return _weight_gradient_sums(model, params, data, loss_fn, max_batches, lambda wg: wg.abs())


def movement_scores(
    model: nn.Module,
    params: Sequence[Param],
    data: Iterable[Batch],
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] = default_loss,
    max_batches: int | None = None,
) -> list[torch.Tensor]:
    """``-sum over batches of w * dL/dw``: what movement pruning's scores (Sanh et al., 2020) accumulate
    under plain gradient descent, read at the current weights. High: the gradient pushes the weight away
    from zero; low: towards zero. It is also minus the first-order estimate of the loss change when
    the weight is removed, so the lowest scores are the weights whose removal the linear model predicts
    to *help*. Same mechanics as :func:`taylor_scores`, without the absolute value."""
    return _weight_gradient_sums(model, params, data, loss_fn, max_batches, lambda wg: -wg)


def _weight_gradient_sums(model, params, data, loss_fn, max_batches, term) -> list[torch.Tensor]:
    """Sum over batches of ``term(w * dL/dw)`` for each effective weight (see :func:`taylor_scores`)."""
    leaves = [stored_param(m, n) for m, n in params]
    flags = [leaf.requires_grad for leaf in leaves]
    device = leaves[0].device
    scores = [torch.zeros_like(leaf) for leaf in leaves]
    was_training, batches = model.training, 0
    model.eval()
    try:
        for leaf in leaves:
            leaf.requires_grad_(True)
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            for batch in data:
                if max_batches is not None and batches >= max_batches:
                    break
                loss = loss_fn(model, to_device(batch, device))
                weights = [getattr(m, n) for m, n in params]  # the tensors this forward used
                grads = torch.autograd.grad(loss, weights, allow_unused=True)
                for score, w, g in zip(scores, weights, grads):
                    if g is not None:
                        score += term(w.detach() * g)
                batches += 1
    finally:
        model.train(was_training)
        for leaf, flag in zip(leaves, flags):
            leaf.requires_grad_(flag)
    if batches == 0:
        raise ValueError("data yielded no batches: gradient-based scores need at least one batch")
    return scores
