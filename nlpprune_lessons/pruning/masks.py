"""Compute and install pruning masks on top of :mod:`torch.nn.utils.prune`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from nlpprune_lessons.losses import default_loss
from nlpprune_lessons.pruning.importance import Batch, magnitude_scores, movement_scores, random_scores, taylor_scores
from nlpprune_lessons.pruning.params import Param, check_params, effective_weight, is_pruned, param_name, pruned_params

METHODS = ("magnitude", "random", "taylor", "movement", "l1")
#: The methods that read gradients on ``data``.
GRADIENT_METHODS = ("taylor", "movement")
SCOPES = ("global", "layer")


def check_fraction(value: float, name: str, meaning: str = "") -> float:
    """``value`` as a float, or ValueError unless it is a number (not a bool) in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]{f' ({meaning})' if meaning else ''}, got {value!r}")
    return float(value)


def _check_sparsity(sparsity: float) -> float:
    return check_fraction(sparsity, "sparsity", "the fraction of weights that are zero")


#: Below this many values :func:`kth_smallest` calls :meth:`torch.Tensor.kthvalue` directly.
_BAND_MIN_NUMEL = 1 << 20


def kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th smallest entry (1-based) of the 1-D tensor ``values``: exactly
    ``values.kthvalue(k).values``, found faster on large tensors. A strided sample brackets the
    answer, and ``kthvalue`` runs on the values inside the bracket only; if the bracket misses (never
    seen, possible on adversarial data) it falls back to the whole tensor. Movement pruning needs this
    once per step over MiniLM's 10.6M encoder scores, where a full ``kthvalue`` on a CPU is slow."""
    n = values.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if n < _BAND_MIN_NUMEL:
        return values.kthvalue(k).values
    sample = values[::n // 65536 | 1]  # an odd stride, so it does not follow a power-of-two row length
    m, q, margin = sample.numel(), k / n, 0.004
    lo = sample.kthvalue(max(1, int((q - margin) * m))).values
    hi = sample.kthvalue(min(m, int((q + margin) * m) + 1)).values
    below = int((values < lo).count_nonzero())
    band = values[(values >= lo) & (values <= hi)]
    if below < k <= below + band.numel():
        return band.kthvalue(k - below).values
    return values.kthvalue(k).values


def topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Float mask of ``scores``' shape keeping exactly the ``numel - round(sparsity * numel)`` highest
    scores. The threshold comes from :meth:`torch.Tensor.kthvalue`: on CPU faster than
    :func:`torch.topk`, with no index tensor (topk's int64 indices alone take 8 bytes per score it
    returns, over MiniLM's 10.6M encoder weights). Scores tied at the threshold are kept from the highest index down
    until the count is exact."""
    check_fraction(sparsity, "sparsity")
    flat = scores.detach().reshape(-1)
    k = round(sparsity * flat.numel())
    if k == 0:
        return torch.ones_like(scores)
    threshold = kth_smallest(flat, k)
    keep = flat > threshold
    missing = flat.numel() - k - int(keep.count_nonzero())  # count_nonzero: faster than a bool sum
    if missing > 0:  # ties at the threshold: keep the last ones, so exactly numel - k survive
        keep[(flat == threshold).nonzero().squeeze(1)[-missing:]] = True
    return keep.view_as(scores).to(scores.dtype)


def check_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` itself, or TypeError unless it is a floating-point tensor."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(value).__name__}"
                        f"{f' of {value.dtype}' if isinstance(value, torch.Tensor) else ''}")
    return value


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Float mask of a 2-D ``scores`` keeping the ``cols - round(sparsity * cols)`` highest scores of
    every row: each output unit loses the same share of its inputs (Wanda's comparison group)."""
    check_fraction(sparsity, "sparsity")
    check_tensor(scores, "scores")
    if scores.ndim != 2:
        raise ValueError(f"row_mask needs a 2-D score matrix (outputs x inputs), got shape {tuple(scores.shape)}")
    keep = scores.shape[1] - round(sparsity * scores.shape[1])
    mask = torch.zeros_like(scores)
    return mask.scatter_(1, scores.detach().topk(keep, dim=1).indices, 1.0)


def nm_mask(scores: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Float mask keeping the ``n`` highest of every ``m`` consecutive scores along the last dimension
    (N:M semi-structured sparsity; 2:4 is the pattern NVIDIA's sparse tensor cores run). For a
    Linear weight (outputs x inputs) the groups are consecutive *input* weights of one output row."""
    for value, name in ((n, "n"), (m, "m")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 < n <= m:
        raise ValueError(f"need 0 < n <= m (keep n of every m weights), got n={n}, m={m}")
    check_tensor(scores, "scores")
    if scores.ndim == 0 or scores.shape[-1] % m:
        raise ValueError(f"the last dimension ({tuple(scores.shape)[-1:] or 'none'}) must be a multiple of m={m}")
    groups = scores.detach().reshape(-1, m)
    mask = torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1).indices, 1.0)
    return mask.view_as(scores)


def _bottom_k_mask(scores: torch.Tensor, sparsity: float, what: str) -> torch.Tensor:
    """Mask (1 keep, 0 prune) zeroing the ``round(sparsity * n)`` lowest of the flat ``scores``."""
    k = round(sparsity * scores.numel())
    already = int(torch.isneginf(scores).sum())
    if k < already:
        raise ValueError(
            f"sparsity {sparsity} asks for {k} zeros in {what}, which already has {already} "
            f"(sparsity {already / scores.numel():.4f}); masks only grow, so sparsity must be at least that"
        )
    return topk_mask(scores, sparsity)


def install_mask(module: nn.Module, name: str, mask: torch.Tensor) -> None:
    """Attach ``mask`` to ``module.<name>``; on a pruned weight, fold it into the existing mask buffer."""
    if not is_pruned(module, name):
        torch_prune.custom_from_mask(module, name, mask)
        return
    with torch.no_grad():
        module._buffers[f"{name}_mask"].mul_(mask)
    setattr(module, name, effective_weight(module, name))  # what torch's forward pre-hook would set


def _scores(
    model: nn.Module,
    params: list[Param],
    method: str,
    data: Iterable[Batch] | None,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None,
    seed: int,
) -> list[torch.Tensor]:
    if method == "random":
        return random_scores(params, torch.Generator().manual_seed(seed))
    if method in GRADIENT_METHODS:
        scores = taylor_scores if method == "taylor" else movement_scores
        return scores(model, params, data, loss_fn or default_loss)
    return magnitude_scores(params)


def prune(
    model: nn.Module,
    sparsity: float,
    method: str = "magnitude",
    scope: str = "global",
    params: Sequence[Param] | None = None,
    data: Iterable[Batch] | None = None,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Mask the lowest-scoring weights so that a fraction ``sparsity`` of the selected weights is zero.

    ``sparsity`` is absolute: pruning to 0.5 and then to 0.8 leaves 80 % zeros, not 90 % as repeated
    ``torch.nn.utils.prune`` calls (relative to what is left) would. Weights that are already zero
    (masked or not) count towards it and stay masked; an ``sparsity`` below the current sparsity raises
    ValueError, since masks only grow.

    - ``method``: ``"magnitude"`` (|w|), ``"random"`` (seeded by ``seed``), ``"taylor"`` (|w * dL/dw|
      summed over the batches of ``data``, loss ``loss_fn`` or :func:`~nlpprune_lessons.losses.default_loss`),
      ``"movement"`` (``-w * dL/dw`` summed the same way: movement pruning's score read in one pass,
      :func:`~nlpprune_lessons.pruning.importance.movement_scores`; lesson 07 shows why it fails on a
      converged model), ``"l1"`` (magnitude thresholding, meant for a model trained with :func:`l1_penalty` added to its
      loss, which drives unimportant weights towards zero first).
    - ``scope``: ``"global"`` (one threshold over all selected weights: exactly ``round(sparsity * total)``
      zeros; for magnitude the same mask as ``prune.global_unstructured(..., L1Unstructured)``) or
      ``"layer"`` (each weight gets exactly ``round(sparsity * numel)`` zeros).
    - ``params``: (module, attribute) pairs, default :func:`default_params`.

    Returns the sparsity of each selected weight, by dotted name.
    """
    sparsity = _check_sparsity(sparsity)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    params = check_params(model, params)
    if method in GRADIENT_METHODS and data is None:
        raise ValueError(f"method {method!r} needs data: an iterable of batches to take gradients on")
    scores = [
        torch.where(effective_weight(m, n).detach() == 0, float("-inf"), s)
        for (m, n), s in zip(params, _scores(model, params, method, data, loss_fn, seed))
    ]
    if scope == "global":
        flat = _bottom_k_mask(torch.cat([s.flatten() for s in scores]), sparsity, "the selected weights")
        masks = [chunk.view_as(s) for chunk, s in zip(flat.split([s.numel() for s in scores]), scores)]
    else:
        masks = [
            _bottom_k_mask(s.flatten(), sparsity, param_name(model, m, n)).view_as(s)
            for (m, n), s in zip(params, scores)
        ]
    result = {}
    for (module, name), mask in zip(params, masks):
        install_mask(module, name, mask)
        result[param_name(model, module, name)] = (effective_weight(module, name) == 0).float().mean().item()
    return result


def l1_penalty(model: nn.Module, params: Sequence[Param] | None = None) -> torch.Tensor:
    """Sum of ``|w|`` over the effective selected weights (default :func:`default_params`); add
    ``lambda * l1_penalty(model)`` to the training loss to push unimportant weights to zero."""
    return sum(effective_weight(m, n).abs().sum() for m, n in check_params(model, params))


def make_permanent(model: nn.Module) -> int:
    """Fold every mask into its weight (``prune.remove``): plain parameters again, zeros no longer
    frozen. Returns how many weights were made permanent."""
    pruned = pruned_params(model)
    for module, name in pruned:
        torch_prune.remove(module, name)
    return len(pruned)
