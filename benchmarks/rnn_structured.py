"""Structured pruning of lesson 02's RNNs: kept fraction x criterion -> accuracy, perplexity, params,
file size, latency, measured speedup and theoretical FLOP ratio of the recurrent part.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/rnn_structured.json and prints the table and the course's targets: with 50% of hidden units
removed, measured speedup of the recurrent part (batch 32, sequence 64) >= 0.8 x its FLOP ratio;
file size in proportion to parameters; the fine-tuned 50%-units classifier within 1.5 accuracy
points of dense (judged on the worst criterion: picking the best one would select on the test set).

    python benchmarks/rnn_structured.py
"""

from __future__ import annotations

import itertools
import time

import pandas as pd
import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.evaluate import evaluate_classifier, evaluate_language_model
from nlpprune_lessons.lessons import l02_rnn, l03_unstructured
from nlpprune_lessons.structured import CRITERIA
from nlpprune_lessons.structured.protocols import cost_report, iterative_unit_removal
from nlpprune_lessons.text.streams import batchify, bptt_batches

FRACTIONS = [0.25, 0.5, 0.75]
SEQ_LEN = 64
REPEATS = 50
SEED = 0


def one_thread_speedup(model, dense) -> dict:
    """The batch-32 speedup measured again on one thread (small matrix products use two cores poorly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = cost_report(model, dense, SEQ_LEN, batch_sizes=(32,), repeats=REPEATS)
        return {"speedup_b32_1thread": report["speedup_b32"]}
    finally:
        torch.set_num_threads(threads)


def main() -> int:
    start = time.perf_counter()
    config.set_seed(SEED)
    classifier, sentiment, _ = l02_rnn.trained_classifier(seed=SEED)
    lm, austen, _ = l02_rnn.trained_language_model(seed=SEED)
    models = {
        "classifier": dict(
            dense=classifier, metric="accuracy",
            evaluate=lambda m: {"accuracy": evaluate_classifier(m, sentiment.loaders["test"])["accuracy"]},
            fine_tune=lambda m: l03_unstructured.fine_tune_classifier(m, sentiment),
            data=list(itertools.islice(sentiment.loaders["train"], 20))),
        "language model": dict(
            dense=lm, metric="perplexity",
            evaluate=lambda m: {"perplexity": evaluate_language_model(m, austen.ids["test"])["perplexity"]},
            fine_tune=lambda m: l03_unstructured.fine_tune_language_model(m, austen),
            data=list(itertools.islice(bptt_batches(batchify(austen.ids["train"], 32), 35), 20))),
    }
    rows = []
    for name, spec in models.items():
        dense = spec["dense"]
        rows.append({"model": name, "criterion": "dense", "fraction_removed": 0.0, **spec["evaluate"](dense),
                     **cost_report(dense, dense, SEQ_LEN, repeats=REPEATS)})
        for criterion in CRITERIA:
            for step in iterative_unit_removal(dense, spec["evaluate"], FRACTIONS, criterion, spec["fine_tune"],
                                               spec["data"], progress=False):
                rows.append({"model": name, **step.record(), **cost_report(step.model, dense, SEQ_LEN, repeats=REPEATS),
                             **one_thread_speedup(step.model, dense)})
            print(f"{name}: {criterion} done at {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    dense_rows = table[table.criterion == "dense"].set_index("model")
    table["params_ratio"] = table.params / table.model.map(dense_rows.params)
    table["file_ratio"] = table.file_MB / table.model.map(dense_rows.file_MB)
    table["speedup_over_flop_ratio"] = table.speedup_b32 / table.flop_ratio
    columns = ["model", "criterion", "fraction_removed", "hidden_sizes", "accuracy", "perplexity", "params",
               "file_MB", "rnn_ms_b1", "rnn_ms_b32", "speedup_b1", "speedup_b32", "speedup_b32_1thread", "flop_ratio",
               "speedup_over_flop_ratio", "params_ratio", "file_ratio"]
    print(table[columns].round(4).to_string(index=False))
    print(f"threads: {torch.get_num_threads()}; sequence length {SEQ_LEN}; medians of {REPEATS} runs")

    half = table[table.fraction_removed == 0.5]
    dense_acc = float(dense_rows.loc["classifier", "accuracy"])
    worst_cls = half[half.model == "classifier"].accuracy.min()  # no criterion picked on the test set
    targets = []
    for name in models:
        h = half[half.model == name]
        targets.append((f"{name}, 50% units: speedup (batch 32) >= 0.8 x FLOP ratio (worst criterion)",
                        float(h.speedup_over_flop_ratio.min()), bool((h.speedup_over_flop_ratio >= 0.8).all())))
        gap = (h.file_ratio - h.params_ratio).abs().max()
        targets.append((f"{name}, 50% units: file size ratio within 0.02 of the parameter ratio", float(gap),
                        bool(gap <= 0.02)))
    targets.append(("classifier, 50% units, fine-tuned: within 1.5 points of dense (every criterion; points below)",
                    float((dense_acc - worst_cls) * 100), bool(worst_cls >= dense_acc - 0.015)))
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("rnn_structured", table.to_dict("records")
                 + [{"target": label, "measured": measured, "met": ok} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "threads": torch.get_num_threads()}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
