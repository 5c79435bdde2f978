"""Structured pruning of lesson 02's RNNs: fraction of hidden units removed x criterion -> validation and
test quality (with noise), params, file size, latency (median and IQR over alternating rounds),
measured speedup and theoretical FLOP ratio of the recurrent part; with a dense control fine-tuned
as many rounds, and a small dense model of the cut size trained from scratch with the same steps.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/rnn_structured.json and prints the tables and the course's targets: with 50% of hidden units
removed, measured speedup of the recurrent part (batch 32, sequence 64) >= 0.8 x its FLOP ratio;
file size in proportion to parameters; the fine-tuned 50%-units classifier within 1.5 accuracy
points of dense (the criterion chosen on validation accuracy, mean of the seeds).

The classifier's criteria are close (a few reviews apart), so each is run with three fine-tuning
seeds (mean and standard deviation); the language model with one. Models of one shape are timed
once: the criterion decides which units go, not how many.

    python benchmarks/rnn_structured.py
"""

from __future__ import annotations

import itertools
import time

import pandas as pd
import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.lessons import l02_rnn, l03_unstructured, l04_structured_rnn
from nlpprune_lessons.pruning.protocols import dense_control
from nlpprune_lessons.structured import CRITERIA
from nlpprune_lessons.structured.protocols import cost_report, iterative_unit_removal
from nlpprune_lessons.structured.rnn import hidden_sizes
from nlpprune_lessons.text.streams import batchify, bptt_batches

FRACTIONS = [0.25, 0.5, 0.75]
SMALL_DENSE_FRACTIONS = [0.5, 0.75]
SEQ_LEN = 64
REPEATS = 30
SEED = 0
SEEDS = {"classifier": (0, 1, 2), "language model": (0,)}


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
    classifier, sentiment, cls_meta = l02_rnn.trained_classifier(seed=SEED)
    lm, austen, lm_meta = l02_rnn.trained_language_model(seed=SEED)
    models = {
        "classifier": dict(dense=classifier, data=sentiment, meta=cls_meta, metric="accuracy",
                           evaluate=l02_rnn.classifier_scores(sentiment),
                           fine_tune=lambda m: l03_unstructured.fine_tune_classifier(m, sentiment),
                           batches=list(itertools.islice(sentiment.loaders["train"], 20))),
        "language model": dict(dense=lm, data=austen, meta=lm_meta, metric="perplexity",
                               evaluate=l02_rnn.language_model_scores(austen),
                               fine_tune=lambda m: l03_unstructured.fine_tune_language_model(m, austen),
                               batches=list(itertools.islice(bptt_batches(batchify(austen.ids["train"], 32), 35), 20))),
    }
    rows, costs = [], {}

    def cost(name, model, dense):
        """Cost of a shape, measured once (the weights' values do not change the time)."""
        key = (name, tuple(hidden_sizes(model)))
        if key not in costs:
            costs[key] = {**cost_report(model, dense, SEQ_LEN, repeats=REPEATS), **one_thread_speedup(model, dense)}
        return costs[key]

    for name, spec in models.items():
        dense, evaluate = spec["dense"], spec["evaluate"]
        scores = evaluate(dense)
        rows.append({"model": name, "criterion": "dense", "fraction_removed": 0.0, "fine_tune_rounds": 0,
                     "hidden_sizes": hidden_sizes(dense), **scores, **cost(name, dense, dense)})
        for record in dense_control(dense, evaluate, spec["fine_tune"], rounds=len(FRACTIONS)):
            rows.append({"model": name, "criterion": "dense control", "fraction_removed": 0.0,
                         "hidden_sizes": hidden_sizes(dense), "fine_tune_rounds": record["fine_tune_rounds"],
                         **{k: v for k, v in record.items() if k in scores}})
        for criterion, seed in itertools.product(CRITERIA, SEEDS[name]):
            config.set_seed(seed)  # dropout and the fine-tuning order
            removal = iterative_unit_removal(dense, evaluate, FRACTIONS, criterion, spec["fine_tune"], spec["batches"],
                                             progress=False)
            for rounds, step in enumerate(removal, start=1):
                rows.append({"model": name, **step.record(), "seed": seed, "fine_tune_rounds": rounds,
                             **cost(name, step.model, dense)})
            print(f"{name}: {criterion} seed {seed} done at {time.perf_counter() - start:.0f} s", flush=True)
        dense_epochs = len(spec["meta"]["history"]["train_loss"])
        for fraction in SMALL_DENSE_FRACTIONS:
            hidden = round((1 - fraction) * hidden_sizes(dense)[0])
            rounds = sorted(FRACTIONS).index(fraction) + 1
            small, _ = l04_structured_rnn.small_dense(name, spec["data"], hidden, dense_epochs, rounds, seed=SEED)
            rows.append({"model": name, "criterion": "small dense from scratch", "fraction_removed": fraction,
                         "hidden_sizes": hidden_sizes(small), "fine_tune_rounds": rounds, "seed": SEED,
                         "training_epochs": dense_epochs, **evaluate(small), **cost(name, small, dense)})
        print(f"{name}: controls done at {time.perf_counter() - start:.0f} s", flush=True)

    table = pd.DataFrame(rows)
    dense_rows = table[table.criterion == "dense"].set_index("model")
    table["params_ratio"] = table.params / table.model.map(dense_rows.params)
    table["file_ratio"] = table.file_MB / table.model.map(dense_rows.file_MB)
    table["speedup_over_flop_ratio"] = table.speedup_b32 / table.flop_ratio
    pd.set_option("display.width", 250)
    columns = ["model", "criterion", "fraction_removed", "seed", "hidden_sizes", "val_accuracy", "accuracy",
               "val_perplexity", "perplexity", "params", "file_MB", "rnn_ms_b32", "rnn_ms_b32_iqr", "speedup_b1",
               "speedup_b32", "speedup_b32_q1", "speedup_b32_q3", "speedup_b32_1thread", "flop_ratio"]
    print(table[[c for c in columns if c in table]].round(4).to_string(index=False))
    print(f"threads: {torch.get_num_threads()}; sequence length {SEQ_LEN}; {REPEATS} runs x 5 alternating rounds")

    cut = table[~table.criterion.isin(["dense", "dense control", "small dense from scratch"])]
    summary = (cut.groupby(["model", "criterion", "fraction_removed"])
               [["val_accuracy", "accuracy", "val_perplexity", "perplexity"]].agg(["mean", "std"]))
    print("\nmean and standard deviation over seeds\n" + summary.round(4).to_string())

    cls_half = cut[(cut.model == "classifier") & (cut.fraction_removed == 0.5)]
    by_criterion = cls_half.groupby("criterion")[["val_accuracy", "accuracy"]].mean()
    chosen = by_criterion.val_accuracy.idxmax()  # chosen on validation
    dense_acc = float(dense_rows.loc["classifier", "accuracy"])
    chosen_acc = float(by_criterion.loc[chosen, "accuracy"])
    half = table[(table.fraction_removed == 0.5) & ~table.criterion.isin(["small dense from scratch"])]
    targets = []
    for name in models:
        h = half[half.model == name]
        targets.append((f"{name}, 50% units: speedup (batch 32) >= 0.8 x FLOP ratio",
                        float(h.speedup_over_flop_ratio.min()), bool((h.speedup_over_flop_ratio >= 0.8).all())))
        gap = (h.file_ratio - h.params_ratio).abs().max()
        targets.append((f"{name}, 50% units: file size ratio within 0.02 of the parameter ratio", float(gap),
                        bool(gap <= 0.02)))
    targets.append((f"classifier, 50% units, fine-tuned: within 1.5 points of dense (criterion '{chosen}', "
                    "chosen on validation; points below)", (dense_acc - chosen_acc) * 100,
                    chosen_acc >= dense_acc - 0.015))
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("rnn_structured", table.to_dict("records")
                 + [{"target": label, "measured": measured, "met": ok} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "threads": torch.get_num_threads(), "chosen_criterion": chosen}],
                 seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
