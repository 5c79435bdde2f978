"""Structured-pruning experiments shared by lesson 04 and ``benchmarks/rnn_structured.py``: the
"cutting by zeroing" myth, iterative unit removal with fine-tuning, and what a model costs to run
and to store."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..bench import compare_latency
from ..checks import check_positive_int
from ..textgan import SentenceData, evaluate_generator, sentence_perplexity, train_steps
from .adversarial import METHODS, PRUNE_DEFAULTS, PrunedGenerator, prune_generator
from .rnn import (GATES, StackedRNN, _cell, _direction_cols, _directions, _gate_rows, _head_name, _sizes, _weights,
                  hidden_sizes, hidden_unit_importance, recurrent_flops, remove_hidden_units, save_slim,
                  units_to_delete)

Evaluate = Callable[[nn.Module], dict]
FineTune = Callable[[nn.Module], object]


@torch.no_grad()
def zero_hidden_units(model: nn.Module, units: Mapping[int, Sequence[int]]) -> nn.Module:
    """The "cutting" of many blog posts: a copy of ``model`` with every weight of the ``units``
    ({layer: indices}) set to zero — gate rows, biases, outgoing columns — and every shape unchanged.

    From a zero initial state the zeroed units output exactly 0 (LSTM: every gate pre-activation is 0,
    so the cell stays 0; GRU: the candidate is 0 and the state stays 0), so the model computes what
    :func:`remove_hidden_units` computes while still storing and multiplying every original weight.
    (A non-zero state carried in from outside decays in those units instead of vanishing.)
    """
    removed = units_to_delete(model, units)
    zeroed = copy.deepcopy(model)
    rnn = zeroed.rnn
    sizes, gates, d, weights = _sizes(rnn), GATES[_cell(rnn)], _directions(rnn), _weights(rnn)
    for layer, indices in enumerate(removed):
        if not indices:
            continue
        idx = torch.tensor(indices, dtype=torch.long)
        rows, outgoing = _gate_rows(idx, sizes[layer], gates), _direction_cols(idx, sizes[layer], d)
        for w in weights[layer]:
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                w[kind][rows] = 0.0
            w["weight_hh"][:, idx] = 0.0
        consumers = ([w["weight_ih"] for w in weights[layer + 1]] if layer + 1 < len(sizes)
                     else [getattr(zeroed, _head_name(zeroed)).weight])
        for consumer in consumers:
            consumer[:, outgoing] = 0.0
    return zeroed


@dataclass
class RemovalStep:
    """One point of :func:`iterative_unit_removal`: the model after removing ``fraction`` of the
    original units of every layer (by ``criterion``) and fine-tuning, with its metrics."""

    criterion: str
    fraction: float
    model: nn.Module
    metrics: dict = field(default_factory=dict)

    def record(self) -> dict:
        """Plain fields for a DataFrame / results file (the model left out)."""
        return {"criterion": self.criterion, "fraction_removed": self.fraction,
                "hidden_sizes": hidden_sizes(self.model), **self.metrics}


def iterative_unit_removal(dense: nn.Module, evaluate: Evaluate, fractions: Sequence[float], criterion: str,
                           fine_tune: FineTune | None, data: Iterable[dict] | None = None,
                           progress: bool = True) -> list[RemovalStep]:
    """Remove hidden units step by step: at each fraction (of every layer's *original* units), score the
    current model's units by ``criterion``, remove the lowest-scoring until ``round((1 - f) * H)`` stay,
    then ``fine_tune`` (if given) and ``evaluate``. ``dense`` is not changed."""
    values = list(fractions)
    if not values or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0 for f in values):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1), got {fractions!r}")
    original = hidden_sizes(dense)
    model, steps = dense, []
    for fraction in tqdm(sorted(values), desc=f"remove units ({criterion})", disable=not progress, leave=False):
        current = hidden_sizes(model)
        target = [max(1, round((1 - fraction) * h)) for h in original]
        scores = hidden_unit_importance(model, criterion, data)
        units = {layer: sorted(torch.argsort(s, stable=True)[:now - keep].tolist())
                 for layer, (s, now, keep) in enumerate(zip(scores, current, target)) if now > keep}
        model = remove_hidden_units(model, units)
        if fine_tune is not None:
            fine_tune(model)
        steps.append(RemovalStep(criterion, fraction, model, evaluate(model)))
    return steps


def file_size_bytes(model: nn.Module) -> int:
    """Bytes of the model saved with :func:`save_slim` (safetensors; architecture in the header)."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_slim(model, Path(tmp) / "model.safetensors").stat().st_size


def _recurrent_call(model: nn.Module, batch_size: int, seq_len: int, seed: int) -> Callable[[], object]:
    check_positive_int(batch_size, "batch_size")
    check_positive_int(seq_len, "seq_len")
    weight = model.embedding.weight
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, seq_len, weight.shape[1], generator=generator).to(weight.device)
    return lambda: model.rnn(x)


def _whole_call(model: nn.Module, batch_size: int, seq_len: int, seed: int) -> Callable[[], object]:
    check_positive_int(batch_size, "batch_size")
    check_positive_int(seq_len, "seq_len")
    weight = model.embedding.weight
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(weight.shape[0], (batch_size, seq_len), generator=generator).to(weight.device)
    return lambda: model(ids)


_PARTS = {"rnn": _recurrent_call, "model": _whole_call}


def cost_report(model: nn.Module, dense: nn.Module, seq_len: int = 64, batch_sizes: Sequence[int] = (1, 32),
                repeats: int = 20, rounds: int = 5, part: str = "rnn") -> dict:
    """Parameters, file size and latency of ``model``, and its ratios to ``dense``: measured speedup
    (dense latency / model latency) and theoretical FLOP ratio of the recurrent part (``recurrent_flops``
    of dense / of model). ``part="rnn"`` times the recurrent layers on random inputs, ``"model"`` the
    whole forward pass (embedding and head too: a language model's decoder is a large share) on
    random token ids. Both models are timed with :class:`StackedRNN` stacks in eval mode, so only the
    sizes differ, alternating (:func:`~nlpprune_lessons.bench.compare_latency`). The thread count is
    reported."""
    if part not in _PARTS:
        raise ValueError(f"part must be one of {sorted(_PARTS)}, got {part!r}")
    baseline = remove_hidden_units(dense, {}).eval()
    slim = (model if isinstance(model.rnn, StackedRNN) else remove_hidden_units(model, {}))
    was_training = slim.training
    slim.eval()
    out = {"params": sum(p.numel() for p in model.parameters()), "file_MB": file_size_bytes(model) / 1e6,
           "flop_ratio": recurrent_flops(baseline, seq_len) / recurrent_flops(slim, seq_len),
           "threads": torch.get_num_threads()}
    try:
        for batch in batch_sizes:
            ms = compare_latency({"dense": _PARTS[part](baseline, batch, seq_len, 0),
                                  "slim": _PARTS[part](slim, batch, seq_len, 0)}, rounds=rounds, repeats=repeats)
            out[f"{part}_ms_b{batch}"] = ms["slim"]
            out[f"speedup_b{batch}"] = ms["dense"] / ms["slim"]
    finally:
        slim.train(was_training)
    return out


def compare_generator_pruning(dense: nn.Module, data: SentenceData, fractions: Sequence[float],
                              methods: Sequence[str] = METHODS, *, steps: int, mask_steps: int, n_samples: int,
                              seed: int = 0, latency_repeats: int = 10, progress: bool = True,
                              **settings) -> tuple[list[dict], dict[tuple[str, float], PrunedGenerator]]:
    """Lesson 05's comparison at equal size: every ``method`` of
    :func:`~nlpprune_lessons.structured.adversarial.prune_generator` at every ``fraction`` of hidden
    units removed, plus two dense rows: ``dense`` as given and ``dense+mle``, the dense model trained
    as many MLE steps as every pruned one (``mask_steps + steps``), so extra training is not credited
    to pruning.

    Each row: method, fraction removed, hidden sizes, :func:`~nlpprune_lessons.textgan.evaluate_generator`
    metrics (``n_samples`` samples, seed ``seed``), ``val_perplexity`` (choose methods on it, not on
    the test perplexity), the share of masks at exactly 0 (mask methods), and
    :func:`cost_report` of the whole forward pass on sentences of ``data.max_len`` tokens. Returns
    ``(rows, {(method, fraction): PrunedGenerator})``."""
    values = list(fractions)
    if not values or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0 for f in values):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1), got {fractions!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty list from {', '.join(METHODS)}; unknown: {unknown}")
    config.set_seed(seed)
    control = copy.deepcopy(dense)
    train_steps(control, data, mask_steps + steps, lr=(PRUNE_DEFAULTS | settings)["lr"], seed=seed,
                progress=progress, desc="dense+mle")
    results = {("dense", 0.0): PrunedGenerator("dense", 0.0, dense),
               ("dense+mle", 0.0): PrunedGenerator("dense+mle", 0.0, control.eval())}
    runs = [(m, f) for f in sorted(values) for m in methods]
    for method, fraction in tqdm(runs, desc="methods", disable=not progress, leave=False):
        config.set_seed(seed)
        results[(method, fraction)] = prune_generator(dense, data, method, fraction, steps=steps, mask_steps=mask_steps,
                                                      seed=seed, progress=False, **settings)
    rows = []
    for (method, fraction), result in results.items():
        cost = cost_report(result.model, dense, seq_len=data.max_len, repeats=latency_repeats, part="model")
        rows.append({"method": method, "fraction_removed": fraction, "hidden_sizes": hidden_sizes(result.model),
                     **evaluate_generator(result.model, data, n_samples, seed=seed),
                     "val_perplexity": sentence_perplexity(result.model, data, "validation")["perplexity"],
                     "masks_at_zero": result.masks_at_zero, **cost})
    return rows, results
