"""Lesson 07's settings: the pruning runs' steps and sparsities by mode, the learning rates chosen on
validation by ``benchmarks/bert_sparse.py``, the loaders, the fine-pruning start and its reading, and
the reference numbers and budget of Sanh et al. (2020)."""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.data.splits import stratified_subsample
from nlpprune_lessons.lessons.l06_bert import ENCODER_RECIPE, EncoderData
from nlpprune_lessons.metrics import binomial_standard_error, compare_scores
from nlpprune_lessons.models.transformers import encoder_loader, load_encoder_classifier
from nlpprune_lessons.pruning.schedule import cubic_sparsity

#: Lesson 07's pruning runs by mode: encoder sparsities of the method comparison and of the one-shot
#: study without fine-tuning, the sparsities that also get a distilled run, fine-tuning epochs per run, the training reviews the runs read (FAST:
#: 320, i.e. 10 steps, so that the runs fit in the notebook's time budget on 2 CPU cores (each run
#: records its seconds); so few steps only show the method) and the learning rates of the "learning rate
#: after pruning" study.
SPARSE_SETTINGS = dict(
    fast=dict(sparsities=[0.9], oneshot_sparsities=[0.5, 0.9], kd_sparsities=[0.9], epochs=1, train_examples=320,
              lr_study=[5e-5, 1e-3]),
    full=dict(sparsities=[0.5, 0.8, 0.9, 0.95], oneshot_sparsities=[0.5, 0.8, 0.9, 0.95], kd_sparsities=[0.9, 0.95],
              epochs=1, train_examples=None, lr_study=[5e-5, 1e-4, 3e-4, 1e-3]),
)
#: Lesson 07's fine-pruning runs (Sanh et al.'s regime, ``finetune.FINE_PRUNING``: dense, ramp and hold,
#: one epoch each), by mode: the target sparsity of hard movement pruning, soft movement's final
#: penalty (the FULL benchmark's for 95%, which took it to about 99% at the FULL budget; FAST's few
#: steps cannot move a score far enough to prune with any penalty, as the lesson computes) and the
#: weight learning rate (the paper's 3e-5).
FINE_PRUNING_SETTINGS = dict(
    fast=dict(sparsity=0.9, final_lambda=20_000.0, lr=3e-5, epochs=3),
    full=dict(sparsity=0.97, final_lambda=20_000.0, lr=3e-5, epochs=3),
)

#: Learning rate of each method at each sparsity after pruning, as chosen on validation by
#: benchmarks/bert_sparse.py (candidates 3e-4 and 1e-3; results/reference/bert_sparse.json, embeddings
#: trained): a light cut prefers the small step, a heavy cut needs the large one. The 80% rates come
#: from the frozen-embedding run (results/reference/bert_sparse_frozen_embeddings.json; the default
#: set does not run 80%). Movement pruning ends at the majority class at every rate tried there, so it
#: keeps 1e-4 (``LR_CANDIDATES`` in the benchmark).
SPARSE_LRS = {
    ("one-shot", 0.5): 3e-4, ("one-shot", 0.8): 1e-3, ("one-shot", 0.9): 1e-3, ("one-shot", 0.95): 1e-3,
    ("gradual", 0.5): 3e-4, ("gradual", 0.8): 1e-3, ("gradual", 0.9): 1e-3, ("gradual", 0.95): 1e-3,
    "movement": 1e-4,
}


def sparse_settings() -> dict:
    """:data:`SPARSE_SETTINGS` of the current mode."""
    return SPARSE_SETTINGS["fast" if config.is_fast() else "full"]


def fine_pruning_settings() -> dict:
    """:data:`FINE_PRUNING_SETTINGS` of the current mode."""
    return FINE_PRUNING_SETTINGS["fast" if config.is_fast() else "full"]


def pretrained_classifier(seed: int = 0) -> torch.nn.Module:
    """The pre-trained MiniLM with a new classification head seeded by ``seed``: where fine-pruning
    starts (the task is learned while the model is pruned)."""
    config.set_seed(seed)
    return load_encoder_classifier(num_labels=2)[0]


def sparse_loaders(data: EncoderData, seed: int = 0) -> dict[str, DataLoader]:
    """Loaders for lessons 07-08's pruning runs: the training loader (a seeded, stratified subset of
    ``train_examples`` reviews in FAST mode) and the validation and test loaders of ``data``."""
    n = sparse_settings()["train_examples"]
    if n is None or n >= len(data.labels["train"]):
        return dict(data.loaders)
    keep = stratified_subsample(data.labels["train"], n / len(data.labels["train"]), seed)
    train = encoder_loader([data.ids["train"][i] for i in keep], [data.labels["train"][i] for i in keep],
                           pad_id=data.tokenizer.pad_token_id, batch_size=ENCODER_RECIPE["batch_size"], shuffle=True,
                           seed=seed)
    return {**data.loaders, "train": train}


#: Sanh et al. (2020), Table 2 (fine-pruning with distillation, teacher = BERT-base fine-tuned): MNLI
#: matched dev accuracy. A different model (BERT-base, 85M encoder weights), task (3-way entailment)
#: and budget (several epochs on 393k pairs): reference points, not targets for MiniLM on RT.
MOVEMENT_PAPER_MNLI = {"dense": 84.5, "magnitude": {0.90: 78.3, 0.97: 69.4}, "movement": {0.90: 80.1, 0.97: 76.5},
                       "soft movement": {0.90: 81.2, 0.97: 79.5}}


#: Sanh et al.'s fine-pruning budget for SQuAD v1.1 (the commands in the README of their code: batch 16,
#: 10 epochs, ``warmup_steps`` 5400 with ``initial_warmup`` 1 and ``final_warmup`` 2, i.e. 5,400 dense
#: steps, the cubic ramp, then 10,800 steps at the final sparsity; embeddings frozen) on SQuAD's 87,599
#: training questions (at least one step per 16 of them; long contexts add a few more).
PAPER_FINE_PRUNING_BUDGET = dict(task="SQuAD v1.1", model="BERT-base", steps=10 * math.ceil(87_599 / 16),
                                 dense_steps=5_400, hold_steps=10_800)


def ramp_budget(steps: int, start: int, end: int, sparsity: float) -> dict[str, float]:
    """A pruning run's budget in optimiser steps: before the cubic ramp (``start``), the ramp (to
    ``end``), at the final ``sparsity``; and the share of the weights removed in the ramp's first step."""
    check_positive_int(steps, "steps")
    if isinstance(start, bool) or isinstance(end, bool) or not (isinstance(start, int) and isinstance(end, int)
                                                                and 0 <= start < end <= steps):
        raise ValueError(f"need ints 0 <= start < end <= steps, got start={start!r}, end={end!r}, steps={steps}")
    return {"steps": steps, "before the ramp": start, "ramp": end - start, "at the final sparsity": steps - end,
            "final sparsity": sparsity, "pruned in the ramp's first step": cubic_sparsity(start + 1, sparsity, start, end)}


def fine_pruning_verdicts(runs: pd.DataFrame, n_test: int) -> pd.DataFrame:
    """Sanh et al.'s claim read at each target sparsity of ``runs`` (one row per run without
    distillation: ``method``, ``sparsity_target``, ``validation_accuracy``, ``test_accuracy``,
    ``prunable_sparsity``): gradual magnitude against the movement variant chosen on validation among
    the runs that reached the target (soft movement's sparsity is an outcome: a run more than half a
    point short is at another size and left out, named in ``left_out``). Test accuracies carry their
    binomial standard errors over ``n_test`` reviews; ``difference`` (movement - magnitude), its
    ``se``, ``z`` and ``verdict`` come from :func:`~nlpprune_lessons.metrics.compare_scores`."""
    check_positive_int(n_test, "n_test")
    needed = {"method", "sparsity_target", "validation_accuracy", "test_accuracy", "prunable_sparsity"}
    if not isinstance(runs, pd.DataFrame) or not needed <= set(runs.columns):
        raise ValueError(f"runs must be a DataFrame with columns {sorted(needed)}")

    def test_scores(row: pd.Series) -> dict[str, float]:
        return {"accuracy": float(row.test_accuracy),
                "accuracy_se": binomial_standard_error(float(row.test_accuracy), n_test)}

    rows = []
    for sparsity, at in runs[runs.sparsity_target > 0].groupby("sparsity_target"):
        at = at.set_index("method")
        short = at[at.prunable_sparsity < sparsity - 0.005]
        movers = at[at.index.isin(["movement", "soft movement"]) & ~at.index.isin(short.index)]
        row = {"sparsity": sparsity, "left_out": ", ".join(f"{m} (reached {r.prunable_sparsity:.1%})"
                                                            for m, r in short.iterrows())}
        if "gradual" in at.index and not movers.empty:
            mover, magnitude = movers.loc[movers.validation_accuracy.idxmax()], at.loc["gradual"]
            c = compare_scores(test_scores(mover), test_scores(magnitude), "accuracy")
            row |= {"movement_chosen": mover.name, "movement_reached": mover.prunable_sparsity,
                    "movement_validation": mover.validation_accuracy, "movement_test": mover.test_accuracy,
                    "movement_test_se": test_scores(mover)["accuracy_se"],
                    "magnitude_validation": magnitude.validation_accuracy, "magnitude_test": magnitude.test_accuracy,
                    "magnitude_test_se": test_scores(magnitude)["accuracy_se"],
                    "difference": c["difference"], "se": c["se"], "z": c["difference"] / c["se"],
                    "verdict": c["verdict"]}
        rows.append(row)
    return pd.DataFrame(rows)
