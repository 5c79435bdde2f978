"""Unstructured pruning of lesson 02's RNNs: recipe x sparsity -> validation and test quality (with its
noise), at stated training budgets, against dense controls trained as long.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/rnn_unstructured.json and prints the tables, the verdicts and the course's targets:
dense LSTM classifier >= 0.75; iterative magnitude + fine-tuning >= 98% of dense accuracy at 80%
and >= 96% at 90%; LM perplexity within +3% of dense at 80% and +8% at 90% (gradual pruning in Zhu &
Gupta's regime, whose numbers the target quotes, against the better of the lesson 02 model and the
same model trained on for as long without pruning).

Budgets are counted in fine-tuning rounds (lesson 03's ``FINE_TUNE``: one classifier epoch, a third of
the language model's training stream spread over every book). Iterative pruning reaches the k-th
sparsity after k rounds; "one-shot, equal budget" and "gradual, equal budget" get the same k rounds,
and so does the dense control of row k. Choices (the L1 strength) are made on validation; test is read
once per reported configuration. The classifier's schedule comparison (one-shot vs iterative vs
gradual, equal budgets) is repeated over three seeds; everything else runs once (seed 0).

    python benchmarks/rnn_unstructured.py
"""

from __future__ import annotations

import copy
import itertools
import time

import pandas as pd

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.lessons import l02_rnn, l03_unstructured
from nlpprune_lessons.lessons.l03_unstructured import RobustnessProbe
from nlpprune_lessons.metrics import compare_scores
from nlpprune_lessons.pruning import l1_penalty, prune
from nlpprune_lessons.pruning import protocols
from nlpprune_lessons.text.streams import batchify, bptt_batches

SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
GRADUAL_SPARSITIES = [0.8, 0.9]
L1_STRENGTHS = [1e-6, 1e-5, 1e-4]
SEED = 0
SCHEDULE_SEEDS = (0, 1, 2)
MEASURED = ("val_accuracy", "val_accuracy_se", "accuracy", "accuracy_se", "val_perplexity", "val_perplexity_low",
            "val_perplexity_high", "val_loss_se", "perplexity", "perplexity_low", "perplexity_high", "loss_se", "train_accuracy", "generalisation_gap", "typos_accuracy",
            "dropped_words_accuracy", "rewind_step", "variant")


def rounds_to(sparsity: float) -> int:
    """Fine-tuning rounds iterative pruning has taken when it reaches ``sparsity``."""
    return sorted(SPARSITIES).index(sparsity) + 1


def main() -> int:
    start = time.perf_counter()
    config.set_seed(SEED)
    classifier, sentiment, _ = l02_rnn.trained_classifier(seed=SEED)
    lm, austen, _ = l02_rnn.trained_language_model(seed=SEED)
    probe = RobustnessProbe(sentiment, typo_rate=0.2, drop_rate=0.2, seed=SEED)
    cls_scores = l02_rnn.classifier_scores(sentiment)
    models = {
        "classifier": dict(
            dense=classifier, metric="accuracy", evaluate=cls_scores,
            evaluate_fine_tuned=lambda m: {**probe(m), **cls_scores(m)},
            fine_tune=lambda m: l03_unstructured.fine_tune_classifier(m, sentiment),
            trainer=lambda rounds: l03_unstructured.classifier_trainer(sentiment, rounds),
            published_rounds=l03_unstructured.published_rounds("classifier"),
            data=list(itertools.islice(sentiment.loaders["train"], 20))),
        "language model": dict(
            dense=lm, metric="perplexity", evaluate=l02_rnn.language_model_scores(austen),
            fine_tune=lambda m: l03_unstructured.fine_tune_language_model(m, austen),
            trainer=lambda rounds: l03_unstructured.language_model_trainer(austen, rounds),
            published_rounds=l03_unstructured.published_rounds("language_model"),
            data=list(itertools.islice(bptt_batches(batchify(austen.ids["train"], 32), 35), 20))),
    }
    gradual_settings = dict(prune_until=l03_unstructured.GRADUAL["prune_until"],
                            pruning_events=l03_unstructured.GRADUAL["pruning_events"], progress=False)
    rows = []

    def add(model_name, recipe, records, seed=SEED, **fields):
        for r in records:
            rows.append({"model": model_name, "recipe": recipe, "seed": seed, "sparsity": r["sparsity"],
                         "fine_tune_rounds": r.get("fine_tune_rounds", 0),
                         **{k: v for k, v in r.items() if k in MEASURED}, **fields,
                         "prunable_sparsity": r["prunable_sparsity"], "overall_sparsity": r["overall_sparsity"]})
        print(f"{model_name}: {recipe} (seed {seed}) done at {time.perf_counter() - start:.0f} s", flush=True)

    for name, spec in models.items():
        dense, evaluate, fine_tune = spec["dense"], spec["evaluate"], spec["fine_tune"]
        tuned = spec.get("evaluate_fine_tuned", evaluate)
        add(name, "dense", [{"sparsity": 0.0, **tuned(dense), "prunable_sparsity": 0.0, "overall_sparsity": 0.0}])
        for method, scope in (("magnitude", "global"), ("random", "global"), ("taylor", "global"),
                              ("magnitude", "layer")):
            add(name, f"one-shot {method} ({scope})", protocols.one_shot(
                dense, evaluate, SPARSITIES, method, scope=scope, data=spec["data"], seed=SEED, progress=False))
        for method in ("magnitude", "random"):
            add(name, f"one-shot {method} + 1 round", protocols.one_shot(
                dense, tuned, SPARSITIES, method, fine_tune=fine_tune, seed=SEED, progress=False))
        schedule_seeds = SCHEDULE_SEEDS if name == "classifier" else (SEED,)
        for seed in schedule_seeds:
            config.set_seed(seed)
            add(name, "dense control (k rounds)", protocols.dense_control(dense, tuned, fine_tune, len(SPARSITIES)),
                seed=seed)
            config.set_seed(seed)
            add(name, "iterative magnitude", protocols.iterative(dense, tuned, SPARSITIES, fine_tune, progress=False),
                seed=seed)
            config.set_seed(seed)
            add(name, "one-shot magnitude, equal budget", protocols.one_shot(
                dense, tuned, SPARSITIES, "magnitude", fine_tune=fine_tune, budget="as iterative", progress=False),
                seed=seed)
            for sparsity in GRADUAL_SPARSITIES:
                config.set_seed(seed)
                rounds = rounds_to(sparsity)
                train, total_steps = spec["trainer"](rounds)
                add(name, "gradual magnitude (layer-wise), equal budget", [
                    {**r, "fine_tune_rounds": rounds} for r in
                    protocols.gradual(dense, tuned, [sparsity], train, total_steps, **gradual_settings)], seed=seed)
        rounds = spec["published_rounds"]
        train, total_steps = spec["trainer"](rounds)
        config.set_seed(SEED)
        control = copy.deepcopy(dense)
        train(control, lambda step: None)
        add(name, "dense control (published gradual budget)", [
            {"sparsity": 0.0, "fine_tune_rounds": rounds, **tuned(control), "prunable_sparsity": 0.0,
             "overall_sparsity": 0.0}])
        config.set_seed(SEED)
        add(name, "gradual magnitude (layer-wise), published regime", [
            {**r, "fine_tune_rounds": rounds} for r in
            protocols.gradual(dense, tuned, GRADUAL_SPARSITIES, train, total_steps, **gradual_settings)])

    # L1: one round with the penalty (strength chosen on validation at 90%), then magnitude, against the
    # same round without the penalty, then magnitude.
    strengths = {}
    for strength in L1_STRENGTHS:
        config.set_seed(SEED)
        model = copy.deepcopy(classifier)
        l02_rnn.fit_classifier(model, sentiment, epochs=1, progress=False, patience=None, restore_best=False,
                               lr=l03_unstructured.FINE_TUNE["lr"], penalty=lambda m, s=strength: s * l1_penalty(m))
        probe_model = copy.deepcopy(model)
        prune(probe_model, 0.9, method="l1")
        strengths[strength] = (cls_scores(probe_model)["val_accuracy"], model)
    chosen = max(strengths, key=lambda s: strengths[s][0])
    print("L1 strength -> validation accuracy at 90%:", {s: round(v, 4) for s, (v, _) in strengths.items()},
          "chosen", chosen)
    add("classifier", f"L1 round (lambda {chosen:g}, chosen on validation), then threshold", [
        {**r, "fine_tune_rounds": 1} for r in
        protocols.one_shot(strengths[chosen][1], cls_scores, SPARSITIES, "l1", progress=False)])
    config.set_seed(SEED)
    plain = copy.deepcopy(classifier)
    l03_unstructured.fine_tune_classifier(plain, sentiment)
    add("classifier", "plain round, then magnitude (L1's control)", [
        {**r, "fine_tune_rounds": 1} for r in protocols.one_shot(plain, cls_scores, SPARSITIES, progress=False)])

    # The lottery ticket (one-shot, 80%): rewound to initialisation and late, half-way through epoch 1.
    late = len(sentiment.loaders["train"]) // 2

    def build(seed):
        config.set_seed(seed)
        return l02_rnn.build_classifier(len(sentiment.vocab), pad_id=sentiment.vocab.pad_id)

    def train_for_ticket(model, on_step):
        l02_rnn.fit_classifier(model, sentiment, progress=False, on_step=on_step)

    add("classifier", "lottery ticket (one-shot 80%)", protocols.lottery_ticket(
        build, train_for_ticket, cls_scores, 0.8, rewind_steps=(0, late), seed=SEED))

    save_results("rnn_unstructured", rows, seed=SEED)  # the runs, kept should the analysis below fail
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    shown = ["model", "recipe", "seed", "sparsity", "fine_tune_rounds", "variant", "val_accuracy", "accuracy",
             "accuracy_se", "val_perplexity", "perplexity", "perplexity_low", "perplexity_high", "train_accuracy",
             "typos_accuracy", "dropped_words_accuracy"]
    print(table[[c for c in shown if c in table]].round(4).to_string(index=False))

    def mean(model_name, recipe, sparsity, column, rounds=None):
        r = table[(table.model == model_name) & (table.recipe == recipe) & (table.sparsity == sparsity)]
        if rounds is not None:
            r = r[r.fine_tune_rounds == rounds]
        return float(r[column].mean()), int(len(r))

    # Verdicts: a difference counts only beyond two standard errors (test, independent samples).
    verdicts = []

    def compare(model_name, a, b, sparsity, rounds_b=None):
        metric = "accuracy" if model_name == "classifier" else "perplexity"
        ra = table[(table.model == model_name) & (table.recipe == a) & (table.sparsity == sparsity)].iloc[0]
        rb_rows = table[(table.model == model_name) & (table.recipe == b)
                        & (table.sparsity == (0.0 if b.startswith("dense control") else sparsity))]
        rb = rb_rows[rb_rows.fine_tune_rounds == rounds_b].iloc[0] if rounds_b else rb_rows.iloc[0]
        c = compare_scores(ra.to_dict(), rb.to_dict(), metric)  # test, seed 0, independent samples
        verdicts.append({"model": model_name, "a": a, "b": b, "sparsity": sparsity, f"a_{metric}": ra[metric],
                         f"b_{metric}": rb[metric], "difference_in_se": c["difference"] / c["se"] if c["se"] else None,
                         "verdict_for_a": c["verdict"]})

    for name in models:
        for s in (0.7, 0.9):
            compare(name, "one-shot magnitude (global)", "one-shot random (global)", s)
            compare(name, "one-shot magnitude + 1 round", "one-shot random + 1 round", s)
            compare(name, "one-shot magnitude (layer)", "one-shot magnitude (global)", s)
        for s in GRADUAL_SPARSITIES:
            compare(name, "iterative magnitude", "one-shot magnitude, equal budget", s)
            compare(name, "gradual magnitude (layer-wise), equal budget", "iterative magnitude", s)
            compare(name, "iterative magnitude", "dense control (k rounds)", s, rounds_b=rounds_to(s))
    compare("classifier", f"L1 round (lambda {chosen:g}, chosen on validation), then threshold",
            "plain round, then magnitude (L1's control)", 0.9)
    verdict_table = pd.DataFrame(verdicts)
    print("\n" + verdict_table.round(3).to_string(index=False))

    dense_acc = mean("classifier", "dense", 0.0, "accuracy")[0]
    dense_ppl = mean("language model", "dense", 0.0, "perplexity")[0]
    control_ppl = mean("language model", "dense control (published gradual budget)", 0.0, "perplexity")[0]
    best_dense_ppl = min(dense_ppl, control_ppl)  # the stricter baseline: extra training is not pruning's merit
    it_acc = {s: mean("classifier", "iterative magnitude", s, "accuracy")[0] for s in (0.8, 0.9)}
    targets = [
        ("dense classifier accuracy >= 0.75", dense_acc, dense_acc >= 0.75),
        ("iterative 80%: accuracy >= 98% of dense (mean of seeds)", it_acc[0.8] / dense_acc,
         it_acc[0.8] >= 0.98 * dense_acc),
        ("iterative 90%: accuracy >= 96% of dense (mean of seeds)", it_acc[0.9] / dense_acc,
         it_acc[0.9] >= 0.96 * dense_acc),
    ]
    for sparsity, limit in ((0.8, 0.03), (0.9, 0.08)):
        ppl = mean("language model", "gradual magnitude (layer-wise), published regime", sparsity, "perplexity")[0]
        targets.append((f"LM gradual {sparsity:.0%} (published regime): perplexity <= +{limit:.0%} of the better "
                        f"dense model (lesson 02 {dense_ppl:.2f}, trained on {control_ppl:.2f})",
                        ppl / best_dense_ppl - 1, ppl <= (1 + limit) * best_dense_ppl))
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("rnn_unstructured", rows + [{"verdict": True, **v} for v in verdicts]
                 + [{"target": label, "measured": measured, "met": ok} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "l1_strength": chosen,
                     "l1_validation": {str(s): v for s, (v, _) in strengths.items()},
                     "late_rewind_step": late}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
