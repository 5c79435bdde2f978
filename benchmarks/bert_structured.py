"""Lesson 08 at full size: MiniLM-L6 fine-tuned on Rotten Tomatoes, slimmed step by step (heads, FFN
neurons, layers), each step recovered by fine-tuning distilled from the dense teacher; latency of
every stage on the CPU.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/bert_structured.json and prints the tables and the course's targets:

- >= 2.5x measured speedup at batch 32, sequence 64, with <= 1.5 accuracy points lost after recovery;
- slim model file <= 50% of the dense file.

    python benchmarks/bert_structured.py                       # default set (run time: docs/results/08_slim_bert.md)
    python benchmarks/bert_structured.py --plan heads=0.75 ffn=0.5 layers=3 --lrs 3e-4 --variants
    python benchmarks/bert_structured.py --remeasure       # re-time the last run's stages alone

Runs: the plan without any recovery; the plan with logit distillation at each ``--lrs`` candidate
(the learning rate is chosen on validation accuracy after the last step); then, at that rate, the
other ``--variants``: ``hidden`` (logits + hidden states) and ``none`` (no teacher, plain fine-tuning);
then the dense control trained as long: the dense model, nothing cut, given the recovery of the
variant chosen on validation once per plan step (same steps, learning rate, schedule, frozen
embeddings and teacher), against which every variant's final model gets a verdict on test (a
difference inside two standard errors is a tie). ``--no-control`` skips it: it takes somewhat longer
than one variant's recoveries (the uncut model is the largest; its ``seconds`` are recorded).
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import load_results, save_results
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.lessons import l06_bert, l07_sparse_bert, l08_slim_bert
from nlpprune_lessons.lessons.l08_slim_bert import (
    RECOVERY,
    SLIM_PLAN,
    against_control,
    budget_label,
    latency_view,
    same_shape_speedup,
    vocabulary_pruned,
)
from nlpprune_lessons.measure.size import file_size_bytes
from nlpprune_lessons.structured.io import load_slim, save_slim
from nlpprune_lessons.structured.slimming import (
    SLIM_KINDS,
    dense_control,
    latency_table,
    remove_structures,
    slim_with_recovery,
    speed_accuracy,
)

SEED = 0
VARIANTS = ("kd", "hidden", "none")
TARGET_SPEEDUP, TARGET_POINTS, TARGET_FILE = 2.5, 1.5, 0.5


def plan_step(text: str) -> tuple[str, float]:
    """``heads=0.5`` -> ("heads", 0.5); ``layers=2`` -> ("layers", 2)."""
    kind, _, amount = text.partition("=")
    if kind not in SLIM_KINDS or not amount:
        raise argparse.ArgumentTypeError(f"a plan step is kind=amount with kind in {SLIM_KINDS}, got {text!r}")
    return kind, int(amount) if kind == "layers" else float(amount)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", nargs="+", type=plan_step, default=list(SLIM_PLAN),
                        help="steps in order, e.g. heads=0.5 ffn=0.5 layers=2")
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 3e-4],
                        help="recovery learning rates; the best on validation (with logit distillation) is kept")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS[1:], default=list(VARIANTS[1:]),
                        help="recovery variants run at the chosen learning rate besides logit distillation")
    parser.add_argument("--epochs", type=int, default=RECOVERY["epochs"], help="recovery epochs per step")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the dense control trained as long as the slim model (and its verdicts)")
    parser.add_argument("--remeasure", action="store_true",
                        help="only re-measure the latency and file sizes of the stages saved by the last run (e.g. "
                             "on a quiet machine) and update its results file")
    return parser.parse_args()


def stage_dir():
    """Where the chosen run's stage models are kept (save_slim), for --remeasure."""
    return config.cache_dir() / f"bert_structured-{config.mode().lower()}"


CONTROL = "dense control"


def measure_latency(models: dict, final: str) -> tuple[pd.DataFrame, float, dict | None]:
    """Latency table of every model (median and IQR over rounds; speedups over the first, with their
    quartiles), ``final``'s speedup at batch 32 x 64 tokens, and, when the dense control is timed too,
    whether its speedup over dense (same shapes, other weights) is inside the IQR noise of 1."""
    latency = latency_table(models, **l08_slim_bert.slim_settings()["latency"], seed=SEED)
    print(f"\nlatency (ms, median [IQR] over {l08_slim_bert.slim_settings()['latency']['rounds']} rounds), "
          f"{latency.threads.iloc[0]} threads:")
    for view in latency_view(latency):
        print(view.to_string())
    at = latency[(latency.batch == 32) & (latency.seq_len == 64)].set_index("model")
    check = None
    if CONTROL in at.index:
        same = same_shape_speedup(latency, CONTROL)
        print(same["text"])
        check = {"same_shape_check": same["text"], "speedup": same["speedup"], "speedup_q1": same["q1"],
                 "speedup_q3": same["q3"], "inside_noise": same["inside_noise"]}
    return latency, float(at.loc[final, "speedup"]), check


def speedup_target(speedup: float) -> dict:
    return {"target": f">= {TARGET_SPEEDUP}x speedup at batch 32 x 64 tokens", "measured": speedup,
            "met": speedup >= TARGET_SPEEDUP}


def file_targets(final, dense, dense_test: float) -> list[dict]:
    """The slim file against the dense one, with the encoder cut alone and with the vocabulary cut to
    the training reviews' WordPiece ids too (the embedding table is half of MiniLM's file)."""
    data = l06_bert.encoder_data(SEED)
    dense_mb = file_size_bytes(dense)
    small, loaders = vocabulary_pruned(final, data, SEED)
    ratios = {"encoder cut": file_size_bytes(final) / dense_mb, "encoder + vocabulary cut": file_size_bytes(small) / dense_mb}
    test = evaluate_classifier(small, loaders["test"])["accuracy"]
    print(f"vocabulary cut to {small.config.vocab_size:,} ids: test accuracy {test:.4f}; file ratios {ratios}")
    return ([{"target": f"slim file <= {TARGET_FILE:.0%} of dense ({name})", "measured": ratio, "met": ratio <= TARGET_FILE}
             for name, ratio in ratios.items()]
            + [{"target": f"<= {TARGET_POINTS} test accuracy points lost with the vocabulary cut too",
                "measured": 100 * (dense_test - test), "met": 100 * (dense_test - test) <= TARGET_POINTS}])


def remeasure() -> int:
    """Re-time the saved stages and re-measure the files; replace those rows in the results file."""
    names = json.loads((stage_dir() / "stages.json").read_text())
    models = {name: load_slim(stage_dir() / f"{i}.safetensors") for i, name in enumerate(names)}
    timed = models | ({CONTROL: load_slim(stage_dir() / "control.safetensors")}
                      if (stage_dir() / "control.safetensors").exists() else {})
    latency, speedup, check = measure_latency(timed, names[-1])
    path = config.results_dir() / "bert_structured.json"
    payload = load_results(path)
    dense_test = next(r["dense_test_accuracy"] for r in payload["records"] if "dense_test_accuracy" in r)
    targets = [speedup_target(speedup)] + file_targets(models[names[-1]], models[names[0]], dense_test)
    replaced = {t["target"] for t in targets}
    records = [r for r in payload["records"] if r.get("experiment") != "latency" and r.get("target") not in replaced
               and "same_shape_check" not in r]
    for t in targets:
        print(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: measured {t['measured']:.4f}")
    save_results("bert_structured", records + latency.assign(experiment="latency").to_dict("records") + targets
                 + ([check] if check else []), seed=SEED)
    return 0


def main() -> int:
    args = parse_args()
    if args.remeasure:
        return remeasure()
    start = time.perf_counter()
    config.set_seed(SEED)
    dense, data, _ = l06_bert.fine_tuned_encoder(SEED, progress=False)
    dense = dense.to("cpu").eval()
    loaders = l07_sparse_bert.sparse_loaders(data, SEED)
    score_batches = l08_slim_bert.slim_settings()["score_batches"]
    dense_test = evaluate_classifier(dense, loaders["test"])["accuracy"]
    print(f"{config.mode()} | dense test accuracy {dense_test:.4f} | plan {args.plan}")

    # the plan without recovery: what the cuts cost on their own
    model, scores = dense, [b for _, b in zip(range(score_batches), loaders["train"])]
    no_recovery = []
    for kind, amount in args.plan:
        model, _ = remove_structures(model, kind, amount, scores)
        no_recovery.append({"variant": "no recovery", "kind": kind, "amount": amount,
                            **{f"{s}_accuracy": evaluate_classifier(model, loaders[s])["accuracy"]
                               for s in ("validation", "test")}})
    print(pd.DataFrame(no_recovery).round(4).to_string(index=False))

    runs, stage_models = [], {}
    for lr in args.lrs:
        records, models = slim_with_recovery(dense, loaders, args.plan, RECOVERY | dict(lr=lr, epochs=args.epochs),
                                             score_batches=score_batches, seed=SEED, progress=False)
        runs.append(("kd", lr, records))
        stage_models[("kd", lr)] = models
        print(f"kd, lr {lr:g}: final validation {records[-1]['validation_accuracy']:.4f}, "
              f"test {records[-1]['test_accuracy']:.4f} ({(time.perf_counter() - start) / 60:.1f} min)")
    best_lr = max((r for r in runs), key=lambda r: r[2][-1]["validation_accuracy"])[1]
    for variant in args.variants:
        records, stage_models[(variant, best_lr)] = slim_with_recovery(
            dense, loaders, args.plan, RECOVERY | dict(lr=best_lr, epochs=args.epochs), distill=variant == "hidden",
            hidden_distill=variant == "hidden", score_batches=score_batches, seed=SEED, progress=False)
        runs.append((variant, best_lr, records))
        print(f"{variant}, lr {best_lr:g}: final validation {records[-1]['validation_accuracy']:.4f}, "
              f"test {records[-1]['test_accuracy']:.4f} ({(time.perf_counter() - start) / 60:.1f} min)")

    table = pd.DataFrame([{"variant": v, "lr": lr, **r} for v, lr, records in runs for r in records])
    print(table[["variant", "lr", "stage", "before_validation_accuracy", "validation_accuracy", "test_accuracy",
                 "parameters", "heads", "ffn_neurons", "layers", "file_MB", "seconds"]].round(4).to_string(index=False))

    # the variant that recovers best on validation, at the chosen learning rate: its stages are timed
    # (the variants differ in shape only by which layers the last step drops) and kept for --remeasure
    finals = [(v, lr, records[-1]) for v, lr, records in runs if lr == best_lr]
    best_variant, _, best = max(finals, key=lambda f: f[2]["validation_accuracy"])
    models = stage_models[(best_variant, best_lr)]
    stage_dir().mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(models.values()):
        save_slim(model, stage_dir() / f"{i}.safetensors")
    (stage_dir() / "stages.json").write_text(json.dumps(list(models)))

    # the dense control trained as long, with the chosen variant's recipe, and every final's verdict
    teachers = {"kd": "logits", "hidden": "logits + hidden states", "none": "none"}
    slim_steps = [int(r["steps"]) for r in runs[0][2][1:]]
    budgets = {v: budget_label(slim_steps, args.epochs, True, teachers[v]) for v, _, _ in runs}
    dense_record = runs[0][2][0]
    named_finals = {f"{v} (lr {lr:g})": records[-1] for v, lr, records in runs}

    def verdict_table(against: dict, name: str) -> pd.DataFrame:
        return against_control(named_finals, against, name).assign(
            variant=[v for v, _, _ in runs], lr=[lr for _, lr, _ in runs], budget=[budgets[v] for v, _, _ in runs])

    verdicts = verdict_table(dense_record, "dense (not trained further)")
    control, timed = None, dict(models)
    if not args.no_control:
        control, control_model = dense_control(dense, loaders, RECOVERY | dict(lr=best_lr, epochs=args.epochs),
                                               len(args.plan), distill=best_variant != "none",
                                               hidden_distill=best_variant == "hidden", seed=SEED)
        control |= {"variant": CONTROL, "recipe_of": best_variant, "lr": best_lr,
                    "budget": budget_label([control["steps"] // len(args.plan)] * len(args.plan), args.epochs, True,
                                           teachers[best_variant])}
        save_slim(control_model, stage_dir() / "control.safetensors")
        timed[CONTROL] = control_model
        print(f"\n{CONTROL} ({control['budget']}, lr {best_lr:g}): validation {control['validation_accuracy']:.4f}, "
              f"test {control['test_accuracy']:.4f} ({control['seconds'] / 60:.1f} min)")
        verdicts = pd.concat([verdict_table(control, CONTROL), verdicts], ignore_index=True)
    else:
        (stage_dir() / "control.safetensors").unlink(missing_ok=True)
    print("\nverdicts on test (a difference inside 2 standard errors is a tie):")
    for row in verdicts.itertuples():
        print(f"- {row.text} [{row.budget}]")
    latency, speedup, same_shape = measure_latency(timed, list(models)[-1])
    curve = speed_accuracy(next(r for v, lr, r in runs if v == best_variant and lr == best_lr), latency)
    print(f"{best_variant}, lr {best_lr:g}:")
    print(curve[["stage", "test_accuracy", "flop_ratio", "speedup"]].round(3).to_string(index=False))

    points_lost = 100 * (dense_test - best["test_accuracy"])
    targets = [
        tuple(speedup_target(speedup).values()),
        (f"<= {TARGET_POINTS} test accuracy points lost after recovery ({best_variant}, the best on validation)",
         points_lost, points_lost <= TARGET_POINTS),
        *(tuple(t.values()) for t in file_targets(models[list(models)[-1]], dense, dense_test)),
    ]
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("bert_structured", no_recovery + table.to_dict("records") + ([control] if control else [])
                 + verdicts.assign(experiment="verdicts").to_dict("records")
                 + latency.assign(experiment="latency").to_dict("records") + ([same_shape] if same_shape else [])
                 + [{"target": label, "measured": measured, "met": bool(ok)} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "dense_test_accuracy": dense_test, "chosen_lr": best_lr,
                     "timed_variant": best_variant, "args": {**vars(args), "plan": [list(s) for s in args.plan]}}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
