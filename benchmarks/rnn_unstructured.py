"""Unstructured pruning of lesson 02's RNNs: method x sparsity -> accuracy, perplexity, % of dense.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/rnn_unstructured.json and prints the table and the course's targets:
dense LSTM classifier >= 0.75; iterative magnitude + fine-tuning >= 98% of dense accuracy at 80%
and >= 96% at 90%; LM perplexity within +3% of dense at 80% and +8% at 90% (gradual pruning, the
recipe of Zhu & Gupta whose numbers the target quotes, against the better of the lesson 02 model and
the same model trained on for as long without pruning; iterative is in the table too).

Gradual pruning trains the dense model on for a few epochs, so a dense control gets the same
training without pruning; likewise the fine-tuned recipes get a dense model fine-tuned k rounds
(k = 1 for one-shot, k = step for iterative). The classifier's fine-tuned runs also report train
accuracy and accuracy on perturbed test reviews (typos, dropped words) for the
generalisation/robustness claim.

    python benchmarks/rnn_unstructured.py
"""

from __future__ import annotations

import copy
import itertools
import time

import pandas as pd

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.evaluate import evaluate_classifier, evaluate_language_model
from nlpprune_lessons.lessons import l02_rnn, l03_unstructured
from nlpprune_lessons.lessons.l03_unstructured import RobustnessProbe
from nlpprune_lessons.pruning import protocols
from nlpprune_lessons.text.streams import batchify, bptt_batches

SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
GRADUAL_SPARSITIES = [0.8, 0.9]
MEASURED = ("accuracy", "perplexity", "train_accuracy", "generalisation_gap", "typos_accuracy",
            "dropped_words_accuracy")
SEED = 0


def main() -> int:
    start = time.perf_counter()
    config.set_seed(SEED)
    classifier, sentiment, _ = l02_rnn.trained_classifier(seed=SEED)
    lm, austen, _ = l02_rnn.trained_language_model(seed=SEED)
    probe = RobustnessProbe(sentiment, typo_rate=0.2, drop_rate=0.2, seed=SEED)
    models = {
        "classifier": dict(
            dense=classifier, metric="accuracy",
            evaluate=lambda m: {"accuracy": evaluate_classifier(m, sentiment.loaders["test"])["accuracy"]},
            evaluate_fine_tuned=probe,
            fine_tune=lambda m: l03_unstructured.fine_tune_classifier(m, sentiment),
            trainer=l03_unstructured.classifier_trainer(sentiment),
            data=list(itertools.islice(sentiment.loaders["train"], 20))),
        "language model": dict(
            dense=lm, metric="perplexity",
            evaluate=lambda m: {"perplexity": evaluate_language_model(m, austen.ids["test"])["perplexity"]},
            fine_tune=lambda m: l03_unstructured.fine_tune_language_model(m, austen),
            trainer=l03_unstructured.language_model_trainer(austen),
            data=list(itertools.islice(bptt_batches(batchify(austen.ids["train"], 32), 35), 20))),
    }
    rows = []
    for name, spec in models.items():
        metric, evaluate = spec["metric"], spec["evaluate"]
        tuned_evaluate = spec.get("evaluate_fine_tuned", evaluate)
        dense_value = evaluate(spec["dense"])[metric]
        rows.append({"model": name, "recipe": "dense", "sparsity": 0.0, **tuned_evaluate(spec["dense"])})
        runs = [(f"one-shot {m}", protocols.one_shot(spec["dense"], evaluate, SPARSITIES, m,
                                                  data=spec["data"], seed=SEED, progress=False))
                for m in ("magnitude", "random", "taylor")]
        runs.append(("one-shot magnitude + fine-tune", protocols.one_shot(
            spec["dense"], tuned_evaluate, SPARSITIES, "magnitude", fine_tune=spec["fine_tune"], progress=False)))
        runs.append(("one-shot random + fine-tune", protocols.one_shot(
            spec["dense"], tuned_evaluate, SPARSITIES, "random", fine_tune=spec["fine_tune"], seed=SEED,
            progress=False)))
        runs.append(("iterative magnitude + fine-tune", protocols.iterative(
            spec["dense"], tuned_evaluate, SPARSITIES, spec["fine_tune"], progress=False)))
        runs.append(("dense + k fine-tuning rounds (control)", [
            {**r, "sparsity": 0.0} for r in protocols.dense_control(spec["dense"], tuned_evaluate, spec["fine_tune"],
                                                                 rounds=len(SPARSITIES))]))
        train, total_steps = spec["trainer"]
        control = copy.deepcopy(spec["dense"])
        train(control, lambda step: None)
        runs.append(("dense, trained on (control for gradual)", [{"sparsity": 0.0, **tuned_evaluate(control),
                                                                  "prunable_sparsity": 0.0, "overall_sparsity": 0.0}]))
        runs.append(("gradual magnitude (layer-wise)", protocols.gradual(
            spec["dense"], tuned_evaluate, GRADUAL_SPARSITIES, train, total_steps,
            prune_until=l03_unstructured.GRADUAL["prune_until"], pruning_events=l03_unstructured.GRADUAL["pruning_events"],
            progress=False)))
        for recipe, records in runs:
            for r in records:
                measured = {k: v for k, v in r.items() if k in MEASURED}
                rows.append({"model": name, "recipe": recipe, "sparsity": r["sparsity"],
                             "fine_tune_rounds": r.get("fine_tune_rounds"), **measured,
                             "pct_of_dense": 100 * (r[metric] / dense_value if metric == "accuracy"
                                                    else dense_value / r[metric]),
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
    control_ppl = value("language model", "dense, trained on (control for gradual)", 0.0, "perplexity")
    best_dense_ppl = min(dense_ppl, control_ppl)  # the stricter baseline: extra training is not pruning's merit
    it, gradual = "iterative magnitude + fine-tune", "gradual magnitude (layer-wise)"
    targets = [
        ("dense classifier accuracy >= 0.75", dense_acc, dense_acc >= 0.75),
        ("iterative 80%: accuracy >= 98% of dense", value("classifier", it, 0.8, "accuracy") / dense_acc,
         value("classifier", it, 0.8, "accuracy") >= 0.98 * dense_acc),
        ("iterative 90%: accuracy >= 96% of dense", value("classifier", it, 0.9, "accuracy") / dense_acc,
         value("classifier", it, 0.9, "accuracy") >= 0.96 * dense_acc),
    ]
    for sparsity, limit in ((0.8, 0.03), (0.9, 0.08)):
        ppl = value("language model", gradual, sparsity, "perplexity")
        targets.append((f"LM gradual {sparsity:.0%}: perplexity <= +{limit:.0%} of the better dense model "
                        f"(lesson 02 {dense_ppl:.2f}, trained on {control_ppl:.2f})",
                        ppl / best_dense_ppl - 1, ppl <= (1 + limit) * best_dense_ppl))
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
