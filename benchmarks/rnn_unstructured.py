"""Unstructured pruning of lesson 02's RNNs: method x sparsity -> accuracy, perplexity, % of dense.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/rnn_unstructured.json and prints the table and the issue's targets:
dense LSTM classifier >= 0.75; iterative magnitude + fine-tuning >= 98% of dense accuracy at 80%
and >= 96% at 90%; LM perplexity within +3% of dense at 80% and +8% at 90%.

    python benchmarks/rnn_unstructured.py
"""

from __future__ import annotations

import itertools
import time

import pandas as pd

from nlpprune_lessons import config, recipes, sweeps
from nlpprune_lessons.results import save_results
from nlpprune_lessons.text import batchify, bptt_batches
from nlpprune_lessons.train import evaluate_classifier, evaluate_language_model

SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
SEED = 0


def main() -> int:
    start = time.perf_counter()
    config.set_seed(SEED)
    classifier, sentiment, _ = recipes.trained_classifier(seed=SEED)
    lm, austen, _ = recipes.trained_language_model(seed=SEED)
    models = {
        "classifier": dict(
            dense=classifier, metric="accuracy",
            evaluate=lambda m: {"accuracy": evaluate_classifier(m, sentiment.loaders["test"])["accuracy"]},
            fine_tune=lambda m: recipes.fine_tune_classifier(m, sentiment),
            data=list(itertools.islice(sentiment.loaders["train"], 20))),
        "language model": dict(
            dense=lm, metric="perplexity",
            evaluate=lambda m: {"perplexity": evaluate_language_model(m, austen.ids["test"])["perplexity"]},
            fine_tune=lambda m: recipes.fine_tune_language_model(m, austen),
            data=list(itertools.islice(bptt_batches(batchify(austen.ids["train"], 32), 35), 20))),
    }
    rows = []
    for name, spec in models.items():
        dense_value = spec["evaluate"](spec["dense"])[spec["metric"]]
        rows.append({"model": name, "recipe": "dense", "sparsity": 0.0, spec["metric"]: dense_value})
        runs = [(f"one-shot {m}", sweeps.one_shot(spec["dense"], spec["evaluate"], SPARSITIES, m,
                                                  data=spec["data"], seed=SEED, progress=False))
                for m in ("magnitude", "random", "taylor")]
        runs.append(("one-shot magnitude + fine-tune", sweeps.one_shot(
            spec["dense"], spec["evaluate"], SPARSITIES, "magnitude", fine_tune=spec["fine_tune"], progress=False)))
        runs.append(("one-shot random + fine-tune", sweeps.one_shot(
            spec["dense"], spec["evaluate"], SPARSITIES, "random", fine_tune=spec["fine_tune"], seed=SEED,
            progress=False)))
        runs.append(("iterative magnitude + fine-tune", sweeps.iterative(
            spec["dense"], spec["evaluate"], SPARSITIES, spec["fine_tune"], progress=False)))
        for recipe, records in runs:
            for r in records:
                rows.append({"model": name, "recipe": recipe, "sparsity": r["sparsity"],
                             spec["metric"]: r[spec["metric"]],
                             "pct_of_dense": 100 * (r[spec["metric"]] / dense_value if spec["metric"] == "accuracy"
                                                    else dense_value / r[spec["metric"]]),
                             "prunable_sparsity": r["prunable_sparsity"],
                             "overall_sparsity": r["overall_sparsity"]})
            print(f"{name}: {recipe} done at {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    print(table.round(4).to_string(index=False))

    def value(model, recipe, sparsity, metric):
        row = table[(table.model == model) & (table.recipe == recipe) & (table.sparsity == sparsity)]
        return float(row[metric].iloc[0])

    dense_acc = value("classifier", "dense", 0.0, "accuracy")
    dense_ppl = value("language model", "dense", 0.0, "perplexity")
    it = "iterative magnitude + fine-tune"
    targets = [
        ("dense classifier accuracy >= 0.75", dense_acc, dense_acc >= 0.75),
        ("iterative 80%: accuracy >= 98% of dense", value("classifier", it, 0.8, "accuracy") / dense_acc,
         value("classifier", it, 0.8, "accuracy") >= 0.98 * dense_acc),
        ("iterative 90%: accuracy >= 96% of dense", value("classifier", it, 0.9, "accuracy") / dense_acc,
         value("classifier", it, 0.9, "accuracy") >= 0.96 * dense_acc),
        ("LM 80%: perplexity <= dense +3%", value("language model", it, 0.8, "perplexity") / dense_ppl - 1,
         value("language model", it, 0.8, "perplexity") <= 1.03 * dense_ppl),
        ("LM 90%: perplexity <= dense +8%", value("language model", it, 0.9, "perplexity") / dense_ppl - 1,
         value("language model", it, 0.9, "perplexity") <= 1.08 * dense_ppl),
    ]
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("rnn_unstructured", rows + [{"target": label, "measured": measured, "met": ok}
                                             for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
