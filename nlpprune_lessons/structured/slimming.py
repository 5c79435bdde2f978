"""Iterative structured pruning of a BERT classifier with recovery (lesson 08): remove heads, then FFN
neurons, then layers, each step chosen by an importance score and followed by fine-tuning distilled
from the dense teacher (logits and, optionally, hidden states), reusing lessons 06-07's training code."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice

import pandas as pd
import torch
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.measure.latency import latency_rounds
from nlpprune_lessons.measure.memory import release_memory
from nlpprune_lessons.measure.size import file_size_bytes
from nlpprune_lessons.structured.indices import lowest
from nlpprune_lessons.structured.transformer import (
    encoder_flops,
    ffn_neuron_importance,
    head_importance,
    layer_importance,
    layer_shapes,
    remove_ffn_neurons,
    remove_heads,
    remove_layers,
)
from nlpprune_lessons.training.freezing import frozen_embeddings
from nlpprune_lessons.training.loop import train_classifier

SLIM_KINDS = ("heads", "ffn", "layers")


def _check_plan(plan) -> list[tuple[str, float]]:
    if isinstance(plan, (str, bytes)) or not isinstance(plan, Iterable):
        raise TypeError("plan must be a sequence of (kind, amount) steps, e.g. [('heads', 0.5), ('layers', 2)]")
    steps = []
    for step in plan:
        if not (isinstance(step, (tuple, list)) and len(step) == 2) or step[0] not in SLIM_KINDS:
            raise ValueError(f"each plan step must be (kind, amount) with kind in {SLIM_KINDS}, got {step!r}")
        kind, amount = step
        if kind == "layers":
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
                raise ValueError(f"('layers', n) needs an int n >= 1 (layers to drop), got {amount!r}")
        elif isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0.0 < amount < 1.0:
            raise ValueError(f"({kind!r}, fraction) needs a fraction in (0, 1), got {amount!r}")
        steps.append((kind, amount))
    return steps


def remove_structures(model: nn.Module, kind: str, amount: float, data: Sequence[dict], *,
                      ffn_criterion: str = "taylor") -> tuple[nn.Module, dict[int, list[int]] | list[int]]:
    """One step of :data:`SLIM_KINDS` on a copy of ``model``, scored on the batches ``data``.
    Returns the slim model and what went: ``{layer: indices}`` (heads, FFN) or the dropped layers."""
    (kind, amount), = _check_plan([(kind, amount)])
    if kind == "heads":
        scores = head_importance(model, data, normalize=True)
        removed = lowest(scores, round(amount * int((~scores.isnan()).sum())))
        return remove_heads(model, removed), removed
    if kind == "ffn":
        scores = ffn_neuron_importance(model, ffn_criterion, data)
        removed = {layer: lowest([s], round(amount * s.numel()))[0] for layer, s in enumerate(scores)
                   if round(amount * s.numel())}
        return remove_ffn_neurons(model, removed), removed
    scores = layer_importance(model, data)
    if amount >= scores.numel():
        raise ValueError(f"cannot drop {amount} of {scores.numel()} layers; keep at least one")
    removed = sorted(scores.argsort()[:amount].tolist())
    return remove_layers(model, removed), removed


#: The settings a recovery recipe must name (lesson 08 holds the course's recipe).
RECIPE_KEYS = ("lr", "epochs", "warmup_ratio", "kd_temperature", "kd_weight", "hidden_weight")


def check_recipe(recipe: Mapping) -> Mapping:
    """A recovery recipe is a mapping with every key of :data:`RECIPE_KEYS` (extra keys are refused)."""
    if not isinstance(recipe, Mapping):
        raise TypeError(f"recipe must be a dict with keys {RECIPE_KEYS}, got {type(recipe).__name__}")
    missing, extra = set(RECIPE_KEYS) - set(recipe), set(recipe) - set(RECIPE_KEYS)
    if missing or extra:
        raise ValueError(f"recipe must have exactly the keys {RECIPE_KEYS}; missing {sorted(missing)}, "
                         f"unknown {sorted(extra)}")
    return recipe


def recover(student: nn.Module, teacher: nn.Module | None, loaders: Mapping[str, Iterable[dict]],
            recipe: Mapping, *, hidden_map: Mapping[int, int] | None = None, seed: int = 0, progress: bool = False):
    """Fine-tune ``student`` in place on ``loaders["train"]`` (validation each epoch) with ``recipe``
    (:data:`RECIPE_KEYS`: AdamW with linear warm-up and decay, the embeddings frozen), distilled from
    ``teacher`` when given (``hidden_map`` adds hidden-state distillation, see
    :func:`~nlpprune_lessons.losses.hidden_state_loss`). Returns the training history."""
    check_recipe(recipe)
    with config.seeded(seed):
        with frozen_embeddings(student):
            history = train_classifier(
                student.train(), loaders["train"], loaders["validation"], epochs=recipe["epochs"], lr=recipe["lr"],
                schedule="linear", warmup_ratio=recipe["warmup_ratio"], weight_decay=0.01, teacher=teacher,
                kd_temperature=recipe["kd_temperature"], kd_weight=recipe["kd_weight"], kd_hidden_map=hidden_map,
                kd_hidden_weight=recipe["hidden_weight"], restore_best=False, progress=progress)
        student.zero_grad(set_to_none=True)  # the last step's gradients would stay with the model
        return history


def _accuracies(model: nn.Module, loaders: Mapping[str, Iterable[dict]], prefix: str = "") -> dict:
    """Validation and test accuracy of ``model`` with their binomial standard errors."""
    out = {}
    for split in ("validation", "test"):
        scores = evaluate_classifier(model, loaders[split])
        out |= {f"{prefix}{split}_accuracy": scores["accuracy"], f"{prefix}{split}_accuracy_se": scores["accuracy_se"]}
    return out


def _score_batches(loader, count: int) -> list[dict]:
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):  # the same batches whatever trained before
        sampler.set_epoch(0)
    return list(islice(loader, count))


def slim_with_recovery(
    dense: nn.Module,
    loaders: Mapping[str, Iterable[dict]],
    plan: Sequence[tuple[str, float]],
    recipe: Mapping,
    *,
    distill: bool = True,
    hidden_distill: bool = False,
    score_batches: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[dict], dict[str, nn.Module]]:
    """Apply ``plan`` step by step to a copy of ``dense``: score on ``score_batches`` training batches,
    remove, evaluate (validation and test: "before"), recover with ``recipe`` (:func:`recover`; distilled from ``dense``
    when ``distill``; ``hidden_distill`` also matches every kept layer's hidden state to the teacher
    layer it came from), evaluate again ("after").

    Returns one record per stage (``dense`` first: accuracies with their standard errors ``*_se``,
    parameters, heads, FFN neurons, layers, encoder FLOPs at 64 tokens, file MB, seconds; ``steps`` of
    recovery) and the model after each stage, by stage name
    (``"dense"`` is ``dense`` itself, which ends in eval mode on the training device).
    """
    from tqdm.auto import tqdm

    steps = _check_plan(plan)
    check_recipe(recipe)
    if hidden_distill and not distill:
        raise ValueError("hidden_distill needs distill=True (the dense model is the teacher)")
    dense = dense.eval()
    origin = list(range(len(layer_shapes(dense))))  # teacher layer of each current layer
    data = _score_batches(loaders["train"], score_batches)

    def describe(model: nn.Module) -> dict:
        shapes = layer_shapes(model)
        return {"parameters": sum(p.numel() for p in model.parameters()), "layers": len(shapes),
                "heads": sum(s["heads"] for s in shapes), "ffn_neurons": sum(s["intermediate"] for s in shapes),
                "encoder_gflops_s64": encoder_flops(model, 64) / 1e9, "file_MB": file_size_bytes(model) / 1e6}

    def accuracy(model: nn.Module, prefix: str) -> dict:
        return _accuracies(model, loaders, prefix)

    scores = accuracy(dense, "")
    records = [{"stage": "dense", "kind": None, "amount": None, **scores,
                **{f"before_{k}": v for k, v in scores.items()}, **describe(dense), "seconds": 0.0}]
    models, current, name = {"dense": dense}, dense, ""
    for kind, amount in tqdm(steps, desc="slimming steps", disable=not progress):
        start = time.perf_counter()
        slim, removed = remove_structures(current, kind, amount, data)
        if kind == "layers":
            origin = [o for i, o in enumerate(origin) if i not in removed]
        before = accuracy(slim, "before_")
        hidden_map = {i + 1: o + 1 for i, o in enumerate(origin)} if hidden_distill else None
        history = recover(slim, dense if distill else None, loaders, recipe, hidden_map=hidden_map,
                          seed=seed, progress=progress)
        name = f"{name} + {kind}" if name else kind
        slim.eval()
        records.append({"stage": name, "kind": kind, "amount": amount, "removed": {str(k): v for k, v in removed.items()}
                        if isinstance(removed, dict) else removed, **before, **accuracy(slim, ""), **describe(slim),
                        "steps": len(history.step_loss), "seconds": time.perf_counter() - start})
        models[name], current = slim, slim
        release_memory()
    return records, models


def dense_control(
    dense: nn.Module,
    loaders: Mapping[str, Iterable[dict]],
    recipe: Mapping,
    rounds: int,
    *,
    distill: bool = True,
    hidden_distill: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict, nn.Module]:
    """The dense control of :func:`slim_with_recovery`: a copy of ``dense`` that nothing is cut from,
    trained ``rounds`` times by :func:`recover` with ``recipe`` (the optimiser, schedule, frozen
    embeddings and seed of every recovery step; distilled from ``dense`` when ``distill``, each layer's
    hidden state also matched to the teacher's same layer when ``hidden_distill``). With ``rounds`` =
    the plan's number of steps it gets the slim model's training budget exactly.

    Returns a record like the stage records (``stage`` "dense control", accuracies with ``*_se``,
    ``rounds``, total ``steps``, ``seconds``) and the trained model, in eval mode."""
    check_recipe(recipe)
    check_positive_int(rounds, "rounds", "the plan's number of steps")
    if hidden_distill and not distill:
        raise ValueError("hidden_distill needs distill=True (the dense model is the teacher)")
    dense = dense.eval()
    start = time.perf_counter()
    control = copy.deepcopy(dense)
    layers = len(layer_shapes(dense))
    hidden_map = {i: i for i in range(1, layers + 1)} if hidden_distill else None
    steps = 0
    for _ in range(rounds):
        history = recover(control, dense if distill else None, loaders, recipe, hidden_map=hidden_map, seed=seed,
                          progress=progress)
        steps += len(history.step_loss)
    control.eval()
    record = {"stage": "dense control", "kind": None, "amount": None, **_accuracies(control, loaders),
              "parameters": sum(p.numel() for p in control.parameters()), "layers": layers,
              "rounds": rounds, "steps": steps, "seconds": time.perf_counter() - start}
    release_memory()
    return record, control


def latency_table(models: Mapping[str, nn.Module], *, batch_sizes: Sequence[int] = (1, 32),
                  seq_lens: Sequence[int] = (64, 128), vocab_size: int | None = None, rounds: int = 3,
                  repeats: int = 10, warmup: int = 2, seed: int = 0) -> pd.DataFrame:
    """CPU/GPU latency (ms, :func:`~nlpprune_lessons.measure.latency.latency_rounds`: alternating rounds,
    median and interquartile range of the round medians) of every model at every batch size x sequence
    length, on seeded random token ids with no padding, and each model's speedup over the first one
    (median per-round ratio, with its quartiles ``speedup_q1`` / ``speedup_q3``). The thread count is a
    column."""
    if not models:
        raise ValueError("models must name at least one model")
    vocab_size = vocab_size or min(m.config.vocab_size for m in models.values())
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for batch in batch_sizes:
        for seq in seq_lens:
            ids = torch.randint(vocab_size, (batch, seq), generator=generator)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            device_inputs = {name: {k: v.to(next(m.parameters()).device) for k, v in inputs.items()}
                             for name, m in models.items()}
            times = latency_rounds({name: (lambda m=m, x=device_inputs[name]: m(**x)) for name, m in models.items()},
                                   rounds=rounds, repeats=repeats, warmup=warmup)
            rows += [{"model": name, "batch": batch, "seq_len": seq, "ms": t.median_ms, "ms_iqr": t.iqr_ms,
                      "speedup": t.speedup, "speedup_q1": t.speedup_q1, "speedup_q3": t.speedup_q3,
                      "threads": torch.get_num_threads()} for name, t in times.items()]
    return pd.DataFrame(rows)


def speed_accuracy(records: Sequence[dict], latency: pd.DataFrame, batch: int = 32, seq_len: int = 64) -> pd.DataFrame:
    """Stage records joined with their speedup at ``batch`` x ``seq_len`` and the theoretical FLOP ratio."""
    table = pd.DataFrame(records).set_index("stage")
    at = latency[(latency.batch == batch) & (latency.seq_len == seq_len)].set_index("model")
    table["speedup"] = at["speedup"]
    table["flop_ratio"] = table["encoder_gflops_s64"].iloc[0] / table["encoder_gflops_s64"]
    return table.reset_index()
