"""Lesson 09 at full size: SmolLM2-135M pruned one-shot by magnitude and Wanda, unstructured and 2:4,
measured by perplexity on held-out Gutenberg text (Chesterton; calibration uses other authors).

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/lm_pruning.json and prints the table and the course's targets:

- at 50%: Wanda's perplexity at least 3x lower than magnitude's and at most 2x the dense one;
- at 2:4: Wanda below magnitude;
- after recovery (Wanda 50% + SparseGPT-style weight update, or + a fine-tune with the zeros kept):
  at most 1.4x the dense perplexity. The dense model gets the same fine-tune as a control: how much
  of the gain is recovery from pruning, and how much is adaptation to book prose?

    python benchmarks/lm_pruning.py                          # default set
    python benchmarks/lm_pruning.py --sparsities 0.5 2:4 --experiments sweep recovery
    python benchmarks/lm_pruning.py --experiments fine-tune         # the fine-tunes

The fine-tunes are not in the default set: training needs gradients and AdamW's moments for 106M
weights and the logits' gradients over the whole vocabulary, several GB at the peak, more than many
classroom laptops have, and they would more than double the default set's run time (the run times
and peak memory of both are on docs/results/09_pruning_for_generation.md).
"""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd

from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.lessons import l09_generation
from nlpprune_lessons.models.transformers import load_causal_lm
from nlpprune_lessons.pruning import parse_sparsity

SEED = 0
TARGET_WANDA_VS_MAGNITUDE, TARGET_WANDA_VS_DENSE, TARGET_RECOVERED = 3.0, 2.0, 1.4
#: Fine-tunes (method, sparsity, weight update first, distilled from the dense model): 0% magnitude
#: is the dense model, the control.
EXPERIMENTS = ("sweep", "recovery", "fine-tune", "calibration size", "latency")
DEFAULT_EXPERIMENTS = tuple(e for e in EXPERIMENTS if e != "fine-tune")  # see the module docstring
FINE_TUNE_RUNS = (("wanda", 0.5, False, False), ("wanda", 0.5, True, False), ("magnitude", 0.0, False, False))


def sparsity_arg(text: str) -> float | str:
    """``0.5`` -> 0.5, ``2:4`` -> "2:4" (checked)."""
    value = text if ":" in text else float(text)
    try:
        parse_sparsity(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a calibration size is a positive number of sequences, got {text}")
    return value


def parse_args(settings: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sparsities", nargs="+", type=sparsity_arg, default=list(settings["sparsities"]),
                        help="fractions per row (0.5) or N:M patterns (2:4)")
    parser.add_argument("--calibration-sizes", nargs="*", type=positive_int, default=list(settings["calibration_sizes"]),
                        help="calibration sequences for the Wanda 50%% study (none: skip it)")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(DEFAULT_EXPERIMENTS),
                        help="which parts to run (default: all but fine-tune; the dense model is always measured)")
    return parser.parse_args()


def main() -> int:
    settings = l09_generation.lm_settings()
    args = parse_args(settings)
    start = time.perf_counter()
    model, tokenizer = load_causal_lm()
    text = l09_generation.heldout_text(tokenizer, settings["eval_tokens"])
    sequences = max([settings["calibration_sequences"], *args.calibration_sizes])
    calibration = l09_generation.calibration_ids(tokenizer, sequences, settings["calibration_length"], seed=SEED)
    main_set = calibration[: settings["calibration_sequences"]]
    dense = {"experiment": "dense", "method": "dense", "sparsity": "0", "target_sparsity": 0.0,
             **l09_generation.measure(model, tokenizer, text, settings)}
    del model
    print(f"dense SmolLM2: perplexity {dense['perplexity']:.2f} on {settings['eval_tokens']} tokens of "
          f"{l09_generation.EVAL_BOOK}", flush=True)
    records = [dense]

    def run(experiment: str, method: str, sparsity, data, update: bool = False, **fine_tune) -> dict:
        record = {"experiment": experiment, **l09_generation.pruned_run(method, sparsity, data, text, settings,
                                                                    update=update, **fine_tune)}
        record["ratio_to_dense"] = record["perplexity"] / dense["perplexity"]
        records.append(record)
        print(f"{experiment:>16} {record['method']:>18} {record['sparsity']:>4}: perplexity "
              f"{record['perplexity']:9.2f} ({record['ratio_to_dense']:.2f}x dense; pruning "
              f"{record['prune_seconds']:.0f} s" + (f", fine-tune {record['fine_tune_seconds']:.0f} s"
                                                     if "fine_tune_seconds" in record else "") + ")", flush=True)
        return record

    for sparsity in args.sparsities if "sweep" in args.experiments else []:
        run("sweep", "magnitude", sparsity, None)
        run("sweep", "wanda", sparsity, main_set)
    for method, sparsity in settings["recovery"] if "recovery" in args.experiments else []:
        run("recovery", method, sparsity, main_set, update=True)
    if "fine-tune" in args.experiments:
        train_ids = l09_generation.fine_tune_ids(tokenizer, settings)
        for method, sparsity, update, distill in FINE_TUNE_RUNS:
            needs_data = method == "wanda" or update
            run("fine-tune", method, sparsity, main_set if needs_data else None, update, train_ids=train_ids,
                distill=distill)
    for size in args.calibration_sizes if "calibration size" in args.experiments else []:
        if size != settings["calibration_sequences"]:
            run("calibration size", "wanda", 0.5, calibration[:size])
    latency = None
    if "latency" in args.experiments:
        model, _ = load_causal_lm()
        latency = l09_generation.masked_latency(model)
        del model
        records.append({"experiment": "latency", **latency})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    records.append({"experiment": "benchmark", "benchmark_seconds": seconds, "peak_rss_MB": peak_mb,
                    "eval_tokens": settings["eval_tokens"], "calibration_length": settings["calibration_length"]})

    table = pd.DataFrame([r for r in records if "perplexity" in r])
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        columns = ["experiment", "method", "sparsity", "calibration_sequences", "perplexity", "ratio_to_dense",
                   "prunable_sparsity", "overall_sparsity", "prune_seconds", "fine_tune_seconds"]
        print(table[[c for c in columns if c in table]].round(3).to_string(index=False))
        print("\ncontinuations of", repr(l09_generation.PROMPT))
        print(table[["method", "sparsity", "continuation"]].to_string(index=False))
    if latency is not None:
        print(f"\nlatency of {latency['module']}, batch 1 x {latency['tokens']} tokens, {latency['threads']} threads: "
              f"dense {latency['dense_ms']:.2f} ms, 2:4 masked {latency['masked_ms']:.2f} ms; compressed 2:4 on "
              f"{latency['device']}: {latency['semi_structured']}")

    def ppl(experiment, method, sparsity):
        found = [r["perplexity"] for r in records if r.get("experiment") == experiment
                 and r.get("method") == method and r.get("sparsity") == str(sparsity)]
        return found[0] if found else None

    checks = []
    mag50, wanda50 = ppl("sweep", "magnitude", 0.5), ppl("sweep", "wanda", 0.5)
    if mag50 and wanda50:
        checks += [(f"50%: Wanda >= {TARGET_WANDA_VS_MAGNITUDE:g}x below magnitude", mag50 / wanda50,
                    mag50 / wanda50 >= TARGET_WANDA_VS_MAGNITUDE),
                   (f"50%: Wanda <= {TARGET_WANDA_VS_DENSE:g}x dense", wanda50 / dense["perplexity"],
                    wanda50 / dense["perplexity"] <= TARGET_WANDA_VS_DENSE)]
    mag24, wanda24 = ppl("sweep", "magnitude", "2:4"), ppl("sweep", "wanda", "2:4")
    if mag24 and wanda24:
        checks.append(("2:4: magnitude / Wanda > 1", mag24 / wanda24, wanda24 < mag24))
    for experiment, method in (("recovery", "wanda + update"), ("fine-tune", "wanda + fine-tune"),
                               ("fine-tune", "wanda + update + fine-tune")):
        recovered = ppl(experiment, method, 0.5)
        if recovered:
            checks.append((f"50% after recovery ({method}) <= {TARGET_RECOVERED:g}x dense",
                           recovered / dense["perplexity"], recovered / dense["perplexity"] <= TARGET_RECOVERED))
    control = ppl("fine-tune", "dense + fine-tune", 0.0)
    print()
    if control:
        print(f"control: the dense model fine-tuned the same way: perplexity {control:.2f} "
              f"({control / dense['perplexity']:.2f}x dense)")
    for label, measured, ok in checks:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.2f}")
    print(f"\npeak memory {peak_mb:.0f} MB; benchmark time: {seconds / 60:.1f} min")
    print("wrote", save_results("lm_pruning", records, seed=SEED))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
