"""One-shot pruning of a causal LM's decoder with calibration activations (lesson 09).

Magnitude and Wanda (Sun et al., 2023) masks, per output row or N:M, and SparseGPT (Frantar &
Alistarh, 2023), which chooses its mask during its weight update, applied block by block as the
Wanda and SparseGPT code do: calibration sequences run through the decoder one block at a time; a
block's Linear layers are scored on that block's inputs, pruned, and the block is run again so the
next block sees what the *pruned* block produces. SparseGPT's Optimal Brain Surgeon update, which
moves the kept weights of each row to make up for the pruned ones, can also follow a fixed
magnitude or Wanda mask. Magnitude's ties (many on weights dequantised from a 4-bit file) can be
broken by position (the default), at random or by the input features' activation norms.

Zeros are written into the weights instead of attaching ``torch.nn.utils.prune`` masks: a mask keeps
an ``_orig`` copy, the mask and their product of every matrix, three times SmolLM2's 0.4 GB of
decoder weights, beyond Binder's 2 GB. One-shot pruning never trains, so nothing needs the mask
afterwards; the zeros are found again with ``weight == 0`` (:func:`~.report.sparsity_report`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.pruning.importance import wanda_scores
from nlpprune_lessons.pruning.masks import check_fraction, check_tensor, nm_mask, row_mask
from nlpprune_lessons.pruning.params import default_params, is_pruned, transformer_blocks
from nlpprune_lessons.pruning.report import SparsityReport, sparsity_report

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
#: How magnitude pruning orders equal ``|W|`` within a row: by position (whatever ``topk`` does),
#: in a seeded random order, or by the input feature's activation norm ``||X_j||`` (louder kept first).
TIE_BREAKS = ("position", "random", "activation")


def parse_sparsity(sparsity: float | str) -> tuple[float, tuple[int, int] | None]:
    """``0.5`` -> ``(0.5, None)`` (unstructured, per row); ``"2:4"`` -> ``(0.5, (2, 4))`` (keep 2 of every 4)."""
    if isinstance(sparsity, str):
        found = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", sparsity)
        if not found or not 0 < int(found[1]) <= int(found[2]):
            raise ValueError(f"an N:M pattern is written 'n:m' with 0 < n <= m (keep n of every m), got {sparsity!r}")
        n, m = int(found[1]), int(found[2])
        return 1 - n / m, (n, m)
    return check_fraction(sparsity, "sparsity", "a fraction of zeros, or an N:M pattern like '2:4'"), None


def layer_mask(scores: torch.Tensor, sparsity: float | str) -> torch.Tensor:
    """Mask of one weight from its scores: per-row top scores, or the N:M pattern of ``"n:m"``."""
    fraction, pattern = parse_sparsity(sparsity)
    return row_mask(scores, fraction) if pattern is None else nm_mask(scores, *pattern)


def tie_broken_scores(scores: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """Per-row ranks of a 2-D ``scores`` (0 = lowest, float32) in which equal scores are ordered by
    ``secondary`` (same shape, or broadcastable to it, e.g. one value per input feature); ties of both
    keep their position. :func:`layer_mask` on the ranks keeps what it keeps on ``scores`` except
    among equal scores, where the larger ``secondary`` is kept."""
    check_tensor(scores, "scores")
    check_tensor(secondary, "secondary")
    if scores.ndim != 2:
        raise ValueError(f"need a 2-D score matrix (outputs x inputs), got shape {tuple(scores.shape)}")
    try:
        secondary = secondary.to(scores.device).expand_as(scores)
    except RuntimeError as err:
        raise ValueError(f"secondary of shape {tuple(secondary.shape)} does not broadcast to the scores' "
                         f"{tuple(scores.shape)}") from err
    by_secondary = secondary.argsort(dim=1, stable=True)
    order = by_secondary.gather(1, scores.detach().gather(1, by_secondary).argsort(dim=1, stable=True))
    rows, columns = scores.shape
    positions = torch.arange(columns, dtype=torch.float32, device=scores.device).expand(rows, columns)
    return torch.empty(rows, columns, dtype=torch.float32, device=scores.device).scatter_(1, order, positions)


class InputStats:
    """Forward hook on a Linear: per input feature, the sum over tokens of its square (Wanda's
    ``||X_j||^2``), and with ``hessian=True`` also ``X^T X`` (SparseGPT's Hessian, up to a factor)."""

    def __init__(self, linear: nn.Linear, hessian: bool = False):
        self.tokens = 0
        self.sq_sum = torch.zeros(linear.in_features, dtype=torch.float64, device=linear.weight.device)
        self.hessian = (torch.zeros(linear.in_features, linear.in_features, dtype=torch.float32,
                                    device=linear.weight.device) if hessian else None)
        self._handle = linear.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).float()
        self.tokens += x.shape[0]
        self.sq_sum += x.double().square().sum(0)
        if self.hessian is not None:  # float32, as SparseGPT accumulates it
            self.hessian += x.T @ x

    def remove(self) -> None:
        """Detach the hook (the statistics stay)."""
        self._handle.remove()


def check_damp(damp: float) -> float:
    """``damp`` as a float, or ValueError unless it is a positive finite number."""
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not (damp > 0 and math.isfinite(damp)):
        raise ValueError(f"damp must be a positive number (share of the mean diagonal added to H), got {damp!r}")
    return float(damp)


def _inverse_hessian_factor(hessian: torch.Tensor, columns: int, damp: float) -> torch.Tensor:
    """SparseGPT's ``U``: upper-triangular with ``U^T U = H^-1``, ``H`` dampened by ``damp`` times its
    mean diagonal; input features never seen in calibration (zero diagonal) get an identity row."""
    if hessian.shape != (columns, columns):
        raise ValueError(f"need an (in x in) Hessian for {columns} input features, got {tuple(hessian.shape)}")
    damp = check_damp(damp)
    # float32 as in SparseGPT (its damping keeps the factorisation stable); a float64 Hessian is kept in float64
    dtype = torch.float64 if hessian.dtype == torch.float64 else torch.float32
    h = hessian.detach().to(dtype).clone()
    dead = h.diagonal() == 0  # features never seen in calibration: no information, no update through them
    h[dead, dead] = 1.0
    h.diagonal().add_(damp * h.diagonal().mean())
    try:
        # With H = R R^T, R upper (the Cholesky factor of H with its rows and columns reversed), U = R^-1:
        # one factorisation and one triangular inverse instead of SparseGPT's cholesky -> cholesky_inverse -> cholesky.
        r = torch.linalg.cholesky(h.flip(0, 1)).flip(0, 1)
        return torch.linalg.solve_triangular(r, torch.eye(len(h), dtype=h.dtype, device=h.device), upper=True)
    except torch.linalg.LinAlgError as err:
        raise ValueError("the Hessian is not positive definite even after dampening: pass X^T X of real inputs "
                         "or a larger damp") from err


def inverse_hessian_factor(hessian: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """The matrix ``U`` that SparseGPT's sweep (and :func:`sparsegpt_update`) reads: upper-triangular
    with ``U^T U = H^-1``, for ``H`` (``in x in``, e.g. ``X^T X`` from :class:`InputStats`) dampened by
    ``damp`` times its mean diagonal. Row ``j`` of ``U``, from the diagonal on, is what the OBS update
    of column ``j`` needs (:func:`obs_column_update`)."""
    if not isinstance(hessian, torch.Tensor) or not hessian.is_floating_point():
        raise TypeError(f"hessian must be a floating-point torch.Tensor, got {type(hessian).__name__}")
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"need a square (in x in) Hessian, got shape {tuple(hessian.shape)}")
    return _inverse_hessian_factor(hessian, hessian.shape[0], damp)


def obs_column_update(weight: torch.Tensor, u: torch.Tensor, column: int, pruned: torch.Tensor) -> torch.Tensor:
    """One step of the Optimal Brain Surgeon sweep: zero the entries of column ``column`` of ``weight``
    that ``pruned`` (bool, one per row) marks, and spread each one's error over the columns after it.

    With ``U`` from :func:`inverse_hessian_factor`, the error of row ``r`` is
    ``e_r = weight[r, column] / U[column, column]`` (0 for a kept entry), and every later column ``k``
    becomes ``weight[r, k] - e_r * U[column, k]``; columns before ``column`` and the kept entries of
    ``column`` do not change. Applied to columns 0, 1, ... in turn with the columns of a mask, this is
    :func:`sparsegpt_update` (which solves the same recursion in blocks). Returns a new tensor."""
    check_tensor(weight, "weight")
    check_tensor(u, "u")
    if weight.ndim != 2 or u.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"need weight (out x in) and u (in x in), got {tuple(weight.shape)} and {tuple(u.shape)}")
    if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < weight.shape[1]:
        raise ValueError(f"column must be an int in [0, {weight.shape[1]}), got {column!r}")
    if not isinstance(pruned, torch.Tensor) or pruned.dtype != torch.bool or pruned.shape != weight.shape[:1]:
        raise ValueError(f"pruned must be a bool tensor with one entry per row ({weight.shape[0]}), got "
                         f"{getattr(pruned, 'dtype', type(pruned).__name__)} of shape {tuple(getattr(pruned, 'shape', ()))}")
    w = weight.detach().clone()
    errors = torch.where(pruned, w[:, column], torch.zeros_like(w[:, column])) / u[column, column]
    w[:, column:] -= errors[:, None] * u[column, column:][None, :]
    w[pruned, column] = 0.0  # exactly zero (the subtraction leaves rounding error)
    return w


#: Columns solved at once in the OBS sweep: the batched triangular solve costs rows x width^2 per
#: chunk, so SparseGPT's 128-column mask blocks are solved in chunks of 32 (the result is the same).
SOLVE_COLUMNS = 32


def _obs_sweep(weight: torch.Tensor, h_inv: torch.Tensor, block_size: int,
               choose: Callable[[int, int, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """SparseGPT's sweep over the columns in blocks: ``choose(start, stop, w_block, u_diagonal)`` gives
    the pruned entries (bool) of columns ``start:stop`` from their weights *as updated so far*; they
    are zeroed and their error is spread over the kept entries and all later columns (the Optimal
    Brain Surgeon update)."""
    w = weight.detach().to(h_inv.dtype).clone()
    pruned = torch.zeros_like(w, dtype=torch.bool)
    rows, columns = w.shape
    for start in range(0, columns, block_size):
        stop = min(start + block_size, columns)
        pruned[:, start:stop] = choose(start, stop, w[:, start:stop], h_inv.diagonal()[start:stop])
        for first in range(start, stop, SOLVE_COLUMNS):  # the mask is fixed now: solve in narrower chunks
            last = min(first + SOLVE_COLUMNS, stop)
            u = h_inv[first:last, first:last]
            strict, diagonal = u.triu(1), torch.diag(u.diagonal())
            p = pruned[:, first:last].to(w.dtype)
            # SparseGPT's column loop, solved at once: zeroing pruned column i after the updates from the
            # columns before it gives errors E with E_i * u_ii + p_i * sum_{j<i} E_j * u_ji = p_i * w_i, a
            # triangular system per row (each row prunes its own columns), solved in chunks of rows.
            errors = torch.empty_like(p)
            for r in range(0, rows, 256):
                system = strict * p[r:r + 256].unsqueeze(1) + diagonal
                rhs = (w[r:r + 256, first:last] * p[r:r + 256]).unsqueeze(1)
                errors[r:r + 256] = torch.linalg.solve_triangular(system, rhs, upper=True, left=False).squeeze(1)
            w[:, first:last] -= errors @ strict  # kept weights absorb the errors of the pruned ones before them
            w[:, last:] -= errors @ h_inv[first:last, last:]  # ... and so do all later columns
    return w.masked_fill(pruned, 0.0).to(weight.dtype)


def sparsegpt_update(weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01,
                     block_size: int = 32) -> torch.Tensor:
    """Pruned ``weight`` whose kept entries absorb the pruned ones' contribution: the OBS update of
    SparseGPT's sweep under a *given* mask (e.g. Wanda's).

    Minimises ``||X W^T - X W'^T||`` column by column: when the pruned entries of column ``j`` are
    zeroed, their error is spread over the not yet processed columns through the inverse Hessian
    ``H^-1`` (``H = X^T X``, dampened by ``damp`` times its mean diagonal), the Optimal Brain Surgeon
    update. Columns are handled in blocks of ``block_size`` with lazy updates, as in the SparseGPT
    code (the result does not depend on it); within a block the column loop is one triangular solve
    per row. :func:`sparsegpt_prune` is SparseGPT itself, which also chooses the mask during the sweep.
    Input features never seen in calibration (zero Hessian diagonal) keep their weights. Returns a new
    tensor with exact zeros where ``mask`` is 0; ``weight`` is not changed.
    """
    if weight.ndim != 2 or mask.shape != weight.shape:
        raise ValueError(f"need weight (out x in) and a mask of its shape, got {tuple(weight.shape)}, {tuple(mask.shape)}")
    check_positive_int(block_size, "block_size")
    h_inv = _inverse_hessian_factor(hessian, weight.shape[1], damp)
    pruned = mask.to(weight.device) == 0
    return _obs_sweep(weight, h_inv, block_size, lambda start, stop, w, u: pruned[:, start:stop])


def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float | str, damp: float = 0.01,
                    block_size: int = 128) -> torch.Tensor:
    """SparseGPT (Frantar & Alistarh, 2023): the mask is chosen *during* the OBS sweep.

    At the start of each block of ``block_size`` columns (128 in the paper's code), the entries with
    the smallest ``w^2 / [U]_jj^2`` (``U`` the upper Cholesky factor of ``H^-1``; ``[U]_jj^2`` is the
    diagonal of the inverse Hessian of the columns not yet processed, so this is the OBS saliency),
    computed from the weights *as updated by the blocks before*, are pruned: exactly ``sparsity`` of
    the block over all rows, so rows differ in sparsity. For an N:M pattern (``"2:4"``) the choice is
    made per row for every group of M columns just before it is processed (the block is M wide).
    Then :func:`sparsegpt_update`'s update. Returns a new tensor; ``weight`` is not changed.
    """
    if weight.ndim != 2:
        raise ValueError(f"need a weight matrix (out x in), got shape {tuple(weight.shape)}")
    fraction, pattern = parse_sparsity(sparsity)
    check_positive_int(block_size, "block_size")
    h_inv = _inverse_hessian_factor(hessian, weight.shape[1], damp)

    def choose(start: int, stop: int, w: torch.Tensor, u_diagonal: torch.Tensor) -> torch.Tensor:
        saliency = w.square() / u_diagonal.square()
        if pattern is not None:
            return nm_mask(saliency, *pattern) == 0
        k = round(fraction * saliency.numel())
        pruned = torch.zeros(saliency.numel(), dtype=torch.bool, device=w.device)
        pruned[torch.argsort(saliency.flatten(), stable=True)[:k]] = True
        return pruned.view_as(saliency)

    return _obs_sweep(weight, h_inv, pattern[1] if pattern is not None else block_size, choose)


class _Captured(Exception):
    """Raised by the hook that records the first block's inputs, to skip the rest of the forward."""


def _first_block_inputs(model: nn.Module, first: nn.Module, calibration: torch.Tensor,
                        batch_size: int) -> list[tuple[list, dict]]:
    """The positional and keyword arguments the first block receives, one entry per calibration batch
    (hidden states plus rotary embeddings, masks, positions: everything the blocks share)."""
    captured = []

    def hook(module, args, kwargs):
        captured.append((list(args), dict(kwargs)))
        raise _Captured

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    batches = calibration.split(batch_size)
    try:
        for batch in batches:
            try:
                model(input_ids=batch.to(device), use_cache=False)
            except _Captured:
                pass
    finally:
        handle.remove()
    if len(captured) != len(batches):
        raise RuntimeError(f"the first block was called {len(captured)} times for {len(batches)} calibration batches")
    if any(kwargs.get("past_key_values") is not None for _, kwargs in captured):
        raise RuntimeError("the first block received a key/value cache: replaying its inputs would extend it")
    return captured


def _run_block(block: nn.Module, inputs: list[tuple[list, dict]], keep: bool = True) -> list[torch.Tensor]:
    outputs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        if keep:
            outputs.append(out[0] if isinstance(out, tuple) else out)  # transformers v4 blocks return tuples
    return outputs


def _with_hidden(inputs: list[tuple[list, dict]], hidden: list[torch.Tensor]) -> list[tuple[list, dict]]:
    if inputs and inputs[0][0]:
        return [([h, *args[1:]], kwargs) for (args, kwargs), h in zip(inputs, hidden)]
    return [(args, {**kwargs, "hidden_states": h}) for (args, kwargs), h in zip(inputs, hidden)]


def check_calibration(calibration: torch.Tensor, vocab_size: int | None = None, name: str = "calibration") -> torch.Tensor:
    """Raise unless ``calibration`` is a non-empty 2-D integer tensor of token ids (sequences x tokens),
    each in ``[0, vocab_size)`` when that is given; ``name`` is the argument named in the error."""
    integer = isinstance(calibration, torch.Tensor) and not calibration.is_floating_point() \
        and not calibration.is_complex() and calibration.dtype != torch.bool
    if not integer or calibration.ndim != 2 or calibration.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D integer tensor of token ids (sequences x tokens)")
    if vocab_size is not None and not (0 <= int(calibration.min()) and int(calibration.max()) < vocab_size):
        raise ValueError(f"{name} ids must lie in [0, {vocab_size}) (the model's vocabulary), got "
                         f"{int(calibration.min())}..{int(calibration.max())}")
    return calibration


def check_causal_lm(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a transformers causal LM that calibrated pruning can replay block by
    block; ``ValueError`` for other models, for models with prune masks attached and for mixed attention types."""
    blocks = transformer_blocks(model)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} is not a transformers model with a stack of decoder blocks")
    if any(is_pruned(m, "weight") for m in model.modules()):
        raise ValueError("the model carries torch.nn.utils.prune masks, which recompute each weight at every "
                         "forward (zeros written now would be lost): call pruning.make_permanent(model) first")
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and len(set(layer_types)) > 1:
        raise ValueError(f"the blocks use different attention types {sorted(set(layer_types))} (e.g. sliding "
                         "windows): the first block's attention inputs cannot be replayed for every block")
    return blocks


@torch.no_grad()
def prune_causal_lm(
    model: nn.Module,
    sparsity: float | str,
    method: str = "wanda",
    calibration: torch.Tensor | None = None,
    *,
    update: bool = False,
    damp: float = 0.01,
    batch_size: int = 8,
    tie_break: str = "position",
    seed: int = 0,
    progress: Callable | None = None,
) -> SparsityReport:
    """Prune every Linear inside the decoder blocks of ``model`` in place; return its sparsity report.

    - ``sparsity``: fraction of zeros in *every output row* (e.g. ``0.5``), or an N:M pattern
      (``"2:4"``: keep the 2 highest-scoring of every 4 consecutive input weights).
    - ``method``: ``"magnitude"`` (score ``|W|``), ``"wanda"`` (``|W| * ||X||``, from ``calibration``)
      or ``"sparsegpt"`` (the mask chosen during the OBS sweep, :func:`sparsegpt_prune`; unstructured
      sparsity is then exact per block of 128 columns, not per row).
    - ``calibration``: token ids, sequences x tokens; needed by Wanda, SparseGPT and ``update``.
    - ``update``: after a magnitude or Wanda mask, the OBS update of the kept weights under that fixed
      mask (:func:`sparsegpt_update`); SparseGPT always updates.
    - ``tie_break`` (magnitude only, see :data:`TIE_BREAKS`): equal ``|W|`` of a row ordered by position,
      at random (seeded by ``seed``) or by activation norm (needs ``calibration``); :func:`tie_broken_scores`.
    - ``progress``: e.g. ``tqdm``, wrapped around the loop over blocks.

    The embeddings and the LM head stay dense (see :func:`~.params.default_params`). With calibration
    data the blocks are handled one after the other, each scored on the outputs of the pruned blocks
    before it, as in the Wanda code.
    """
    parse_sparsity(sparsity)
    if method not in PRUNE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(PRUNE_METHODS)}")
    if not isinstance(update, bool):
        raise TypeError(f"update must be True or False, got {type(update).__name__}")
    check_damp(damp)
    check_positive_int(batch_size, "batch_size")
    blocks = check_causal_lm(model)
    prunable = {id(module) for module, _ in default_params(model)}
    wrap = progress or (lambda items, **_: items)
    if method == "sparsegpt" and update:
        raise ValueError("sparsegpt always updates the kept weights: leave update=False")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {', '.join(TIE_BREAKS)}")
    if tie_break != "position" and method != "magnitude":
        raise ValueError(f"tie_break={tie_break!r} orders magnitude's equal |W|: use it with method='magnitude'")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    generator = torch.Generator().manual_seed(seed)
    needs_data = method != "magnitude" or update or tie_break == "activation"
    needs_hessian = method == "sparsegpt" or update
    if needs_data:
        if calibration is None:
            raise ValueError(f"method {method!r}{' with update' if update else ''} needs calibration token ids")
        check_calibration(calibration, getattr(model.config, "vocab_size", None))
    elif calibration is not None:
        raise ValueError("magnitude pruning without update or tie_break='activation' uses no calibration data: "
                         "pass calibration=None")
    was_training = model.training
    model.eval()
    try:
        inputs = _first_block_inputs(model, blocks[0], calibration, batch_size) if needs_data else []
        for index, block in enumerate(wrap(blocks, desc=f"{method} {sparsity}", unit="block")):
            linears = [m for m in block.modules() if isinstance(m, nn.Linear) and id(m) in prunable]
            stats = [InputStats(m, hessian=needs_hessian) for m in linears] if needs_data else []
            try:
                _run_block(block, inputs, keep=False)  # the hooks gather the statistics
            finally:
                for s in stats:
                    s.remove()
            for linear, stat in zip(linears, stats or [None] * len(linears)):
                weight = linear.weight
                if method == "sparsegpt":
                    weight.copy_(sparsegpt_prune(weight, stat.hessian, sparsity, damp=damp))
                    continue
                scores = wanda_scores(weight, stat.sq_sum) if method == "wanda" else weight.abs()
                if tie_break == "random":
                    scores = tie_broken_scores(scores, torch.rand(weight.shape, generator=generator))
                elif tie_break == "activation":
                    scores = tie_broken_scores(scores, stat.sq_sum.float())
                mask = layer_mask(scores, sparsity)
                weight.copy_(sparsegpt_update(weight, mask, stat.hessian, damp=damp) if update else weight * mask)
            if needs_data and index < len(blocks) - 1:  # the next block's inputs: this pruned block's outputs
                inputs = _with_hidden(inputs, _run_block(block, inputs))
    finally:
        model.train(was_training)
    return sparsity_report(model)
