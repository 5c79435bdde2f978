"""Structured-pruning experiments shared by lesson 04 and ``benchmarks/rnn_structured.py``: the
"cutting by zeroing" myth, iterative unit removal with fine-tuning, and what a model costs to run
and to store."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.measure.latency import latency_rounds
from nlpprune_lessons.measure.size import file_size_bytes
from nlpprune_lessons.pruning.protocols import Evaluate, FineTune
from nlpprune_lessons.structured.indices import lowest
from nlpprune_lessons.structured.rnn import (
    GATES,
    StackedRNN,
    cell_type,
    direction_columns,
    gate_rows,
    head_name,
    hidden_sizes,
    hidden_unit_importance,
    layer_sizes,
    num_directions,
    recurrent_flops,
    recurrent_weights,
    remove_hidden_units,
    units_to_delete,
)


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
    sizes, gates, d, weights = layer_sizes(rnn), GATES[cell_type(rnn)], num_directions(rnn), recurrent_weights(rnn)
    for layer, indices in enumerate(removed):
        if not indices:
            continue
        idx = torch.tensor(indices, dtype=torch.long)
        rows, outgoing = gate_rows(idx, sizes[layer], gates), direction_columns(idx, sizes[layer], d)
        for w in weights[layer]:
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                w[kind][rows] = 0.0
            w["weight_hh"][:, idx] = 0.0
        consumers = ([w["weight_ih"] for w in weights[layer + 1]] if layer + 1 < len(sizes)
                     else [getattr(zeroed, head_name(zeroed)).weight])
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


def iterative_unit_removal(dense: nn.Module, evaluate: Evaluate, sparsities: Sequence[float], criterion: str,
                           fine_tune: FineTune | None, data: Iterable[dict] | None = None,
                           progress: bool = True) -> list[RemovalStep]:
    """Remove hidden units step by step: at each sparsity (a fraction of every layer's *original* units), score the
    current model's units by ``criterion``, remove the lowest-scoring until ``round((1 - f) * H)`` stay,
    then ``fine_tune`` (if given) and ``evaluate``. ``dense`` is not changed."""
    values = list(sparsities)
    if not values or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0 for f in values):
        raise ValueError(f"sparsities must be a non-empty list of numbers in (0, 1), got {sparsities!r}")
    original = hidden_sizes(dense)
    model, steps = dense, []
    for fraction in tqdm(sorted(values), desc=f"remove units ({criterion})", disable=not progress, leave=False):
        current = hidden_sizes(model)
        target = [max(1, round((1 - fraction) * h)) for h in original]
        scores = hidden_unit_importance(model, criterion, data)
        units = {layer: lowest([s], now - keep)[0]
                 for layer, (s, now, keep) in enumerate(zip(scores, current, target)) if now > keep}
        model = remove_hidden_units(model, units)
        if fine_tune is not None:
            fine_tune(model)
        steps.append(RemovalStep(criterion, fraction, model, evaluate(model)))
    return steps


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
    sizes differ, in alternating rounds (:func:`~nlpprune_lessons.measure.latency.latency_rounds`):
    ``{part}_ms_b{batch}`` is the median of the round medians, ``_iqr`` its interquartile range, and
    ``speedup_b{batch}`` the median per-round ratio with its quartiles ``_q1`` / ``_q3``. The thread
    count is reported."""
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
            times = latency_rounds({"dense": _PARTS[part](baseline, batch, seq_len, 0),
                                    "slim": _PARTS[part](slim, batch, seq_len, 0)}, rounds=rounds, repeats=repeats)
            slim_times = times["slim"]
            out |= {f"{part}_ms_b{batch}": slim_times.median_ms, f"{part}_ms_b{batch}_iqr": slim_times.iqr_ms,
                    f"speedup_b{batch}": slim_times.speedup, f"speedup_b{batch}_q1": slim_times.speedup_q1,
                    f"speedup_b{batch}_q3": slim_times.speedup_q3}
    finally:
        slim.train(was_training)
    return out
