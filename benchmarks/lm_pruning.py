"""Lesson 09 at full size: SmolLM2-135M pruned one-shot by magnitude and Wanda, unstructured and 2:4,
measured by perplexity on held-out Gutenberg text (Chesterton; calibration uses other authors).

Every choice reads the validation text (*The Ball and the Cross*): calibration size, tie-breaking,
which recovery, the fine-tune's learning rate. The test text (*The Man Who Was Thursday*) is read
once per reported configuration, with its standard error (bootstrapped over 512-token windows).

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/lm_pruning.json and prints the table, the verdicts (two standard errors) and the course's
targets, all on test:

- at 50%: Wanda's perplexity at least 3x lower than magnitude's and at most 2x the dense one;
- at 2:4: Wanda below magnitude;
- after recovery at 50% (Wanda's mask + the OBS weight update, SparseGPT, or a fine-tune with the
  zeros kept): at most 1.4x the perplexity of the dense model treated the same way (untouched for the
  recoveries without training; fine-tuned the same way for the fine-tunes, the control that separates
  recovery from pruning from adaptation to book prose).

    python benchmarks/lm_pruning.py                          # default set
    python benchmarks/lm_pruning.py --sparsities 0.5 2:4 --experiments sweep recovery
    python benchmarks/lm_pruning.py --experiments fine-tune         # the fine-tunes

The fine-tunes are not in the default set: training needs gradients and AdamW's moments for 106M
weights and the logits' gradients over the whole vocabulary, several GB at the peak, more than many
classroom laptops have, and each run tries every learning rate of ``LM_SETTINGS["fine_tune"]["lrs"]``
(the run times and peak memory are on docs/results/09_pruning_for_generation.md).

Each finished run is appended to a journal in the course cache (``lm_pruning-<mode>.jsonl``, keyed by
the run and the lesson's settings): an interrupted benchmark resumes where it stopped (``--fresh``
ignores the journal). A resumed run's ``prune_seconds`` are those of its first run. A fine-tune whose
grid of learning rates extends an earlier finished one fine-tunes only the new rates.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import pandas as pd

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import RunJournal, save_results
from nlpprune_lessons.lessons import l09_generation
from nlpprune_lessons.metrics import compare_scores
from nlpprune_lessons.models.transformers import load_causal_lm
from nlpprune_lessons.pruning import parse_sparsity

SEED = 0
TARGET_WANDA_VS_MAGNITUDE, TARGET_WANDA_VS_DENSE, TARGET_RECOVERED = 3.0, 2.0, 1.4
#: Fine-tunes (method, sparsity, weight update first, distilled from the dense model): 0% magnitude
#: is the dense model, the control.
EXPERIMENTS = ("sweep", "ties", "recovery", "fine-tune", "calibration size", "latency")
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
    parser.add_argument("--fresh", action="store_true", help="ignore (and replace) the journal of finished runs")
    return parser.parse_args()


def main() -> int:
    settings = l09_generation.lm_settings()
    args = parse_args(settings)
    start = time.perf_counter()
    model, tokenizer = load_causal_lm()
    texts = l09_generation.lesson_texts(tokenizer, settings)
    validation = {"validation": texts["validation"]}  # what every choice, and every study, reads
    sequences = max([settings["calibration_sequences"], *args.calibration_sizes])
    calibration = l09_generation.calibration_ids(tokenizer, sequences, settings["calibration_length"], seed=SEED)
    main_set = calibration[: settings["calibration_sequences"]]
    dense = {"experiment": "dense", "method": "dense", "sparsity": "0", "target_sparsity": 0.0,
             **l09_generation.measure(model, tokenizer, texts, settings)}
    del model
    print(f"dense SmolLM2: perplexity {dense['validation_perplexity']:.2f} on {settings['eval_tokens']} validation "
          f"tokens of {l09_generation.VALIDATION_BOOK}, {dense['test_perplexity']:.2f} on as many test tokens of "
          f"{l09_generation.EVAL_BOOK}", flush=True)
    records = [dense]

    journal = RunJournal(config.cache_dir() / f"lm_pruning-{config.mode().lower()}.jsonl", args.fresh)
    settings_key = json.dumps(settings, sort_keys=True, default=str)
    untuned_key = json.dumps({k: v for k, v in settings.items() if k != "fine_tune"}, sort_keys=True, default=str)

    def grid_free(key: str) -> str:  # a journal key without the fine-tune's learning rates
        entry = json.loads(key)
        run_settings = json.loads(entry["settings"])
        run_settings["fine_tune"].pop("lrs", None)
        return json.dumps(entry | {"settings": run_settings}, sort_keys=True)

    def run(experiment: str, method: str, sparsity, data, on: dict, tuned: bool = False, **kwargs) -> dict:
        key = json.dumps({"experiment": experiment, "method": method, "sparsity": str(sparsity), "tuned": tuned,
                          "calibration": None if data is None else len(data), "on": sorted(on),
                          "options": {k: v for k, v in kwargs.items() if k != "train_ids"},
                          "settings": settings_key if tuned else untuned_key},
                         sort_keys=True)
        if key in journal.runs:
            record = dict(journal.runs[key])
        elif tuned:  # a finished run on a smaller grid of learning rates: only the new rates are fine-tuned
            smaller = [journal.runs[k] for k in journal.runs if grid_free(k) == grid_free(key)
                       and set(journal.runs[k]["fine_tune_lrs"]) < set(settings["fine_tune"]["lrs"])]
            record = {"experiment": experiment,
                      **l09_generation.tuned_run(method, sparsity, data, on, settings, earlier=max(
                          smaller, key=lambda r: len(r["fine_tune_lrs"]), default=None), **kwargs)}
            journal.add(key, record)
        else:
            record = {"experiment": experiment, **l09_generation.pruned_run(method, sparsity, data, on, settings,
                                                                              **kwargs)}
            journal.add(key, record)
        for split in on:
            record[f"{split}_ratio_to_dense"] = record[f"{split}_perplexity"] / dense[f"{split}_perplexity"]
        records.append(record)
        shown = "; ".join(f"{split} {record[f'{split}_perplexity']:.2f} ({record[f'{split}_ratio_to_dense']:.2f}x dense)"
                          for split in on)
        print(f"{experiment:>16} {record['method']:>36} {record['sparsity']:>4}: perplexity {shown}; pruning "
              f"{record['prune_seconds']:.0f} s" + (f", fine-tune {record['fine_tune_seconds']:.0f} s at lr "
                                                     f"{record['fine_tune_lr']:g}{l09_generation.lr_edge_note(record)}"
                                                     if "fine_tune_seconds" in record
                                                     else ""), flush=True)
        return record

    for sparsity in args.sparsities if "sweep" in args.experiments else []:
        run("sweep", "magnitude", sparsity, None, texts)
        run("sweep", "wanda", sparsity, main_set, texts)
    def swept(method, sparsity):  # a sweep record holds the validation perplexity a study needs
        return any(r.get("experiment") == "sweep" and r["method"] == method and r["sparsity"] == str(sparsity)
                   for r in records)

    if "ties" in args.experiments:  # how much of magnitude's deficit is its ties (4-bit weights)? validation only
        tie_sparsity = settings["tie_sparsity"]
        for tie_break in ("position", "random", "activation"):
            if tie_break != "position" or not swept("magnitude", tie_sparsity):
                run("ties", "magnitude", tie_sparsity, main_set if tie_break == "activation" else None, validation,
                    tie_break=tie_break)
        if not swept("wanda", tie_sparsity):
            run("ties", "wanda", tie_sparsity, main_set, validation)
    for method, sparsity in settings["recovery"] if "recovery" in args.experiments else []:
        run("recovery", method, sparsity, main_set, texts, update=method != "sparsegpt")
    if "fine-tune" in args.experiments:
        train_ids = l09_generation.fine_tune_ids(tokenizer, settings)
        for method, sparsity, update, distill in FINE_TUNE_RUNS:
            needs_data = method == "wanda" or update
            run("fine-tune", method, sparsity, main_set if needs_data else None, texts, tuned=True, update=update,
                train_ids=train_ids, distill=distill)
    for size in args.calibration_sizes if "calibration size" in args.experiments else []:
        if size != settings["calibration_sequences"] or not swept("wanda", 0.5):
            run("calibration size", "wanda", 0.5, calibration[:size], validation)
    latency = None
    if "latency" in args.experiments:
        model, _ = load_causal_lm()
        latency = l09_generation.masked_latency(model)
        del model
        records.append({"experiment": "latency", **latency})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    records.append({"experiment": "benchmark", "benchmark_seconds": seconds, "peak_rss_MB": peak_mb,
                    "eval_tokens": settings["eval_tokens"], "calibration_length": settings["calibration_length"],
                    "validation_book": l09_generation.VALIDATION_BOOK, "test_book": l09_generation.EVAL_BOOK})

    table = pd.DataFrame([r for r in records if "validation_perplexity" in r])
    if "fine_tune_lr" in table:  # a rate such as 3e-4 would round to 0.0 below
        table["fine_tune_lr"] = table.fine_tune_lr.map(lambda lr: "" if pd.isna(lr) else f"{lr:g}")
    with pd.option_context("display.width", 220, "display.max_colwidth", 60):
        columns = ["experiment", "method", "sparsity", "calibration_sequences", "validation_perplexity",
                   "test_perplexity", "test_loss_se", "test_ratio_to_dense", "prunable_sparsity", "overall_sparsity",
                   "prune_seconds", "fine_tune_lr", "fine_tune_seconds", "distinct2"]
        print(table[[c for c in columns if c in table]].round(3).to_string(index=False))
        print("\ncontinuations of", repr(l09_generation.PROMPT), "(distinct2: share of distinct word pairs; low = loops)")
        print(table[["method", "sparsity", "distinct2", "continuation"]].round(2).to_string(index=False))
    if latency is not None:
        print(f"\nlatency of {latency['module']}, batch 1 x {latency['tokens']} tokens, {latency['threads']} threads: "
              f"dense {latency['dense_ms']:.2f} ms, 2:4 masked {latency['masked_ms']:.2f} ms; compressed 2:4 on "
              f"{latency['device']}: {latency['semi_structured']}")

    def find(experiment, method, sparsity):
        found = [r for r in records if r.get("experiment") == experiment and r.get("method") == method
                 and r.get("sparsity") == str(sparsity) and "test_perplexity" in r]
        return found[0] if found else None

    def versus(a, b, what):  # a against b on test: log perplexity ratio, its SE, the verdict for a
        result = compare_scores(a, b, "perplexity", prefix="test_")
        print(f"{what}: {result['verdict']} for {a['method']} ({a['test_perplexity']:.2f} vs "
              f"{b['test_perplexity']:.2f}; log ratio {result['difference']:+.3f} +- {result['se']:.3f})")

    print()
    checks = []
    mag50, wanda50 = find("sweep", "magnitude", 0.5), find("sweep", "wanda", 0.5)
    if mag50 and wanda50:
        versus(wanda50, mag50, "50%, Wanda vs magnitude")
        ratio, to_dense = mag50["test_perplexity"] / wanda50["test_perplexity"], wanda50["test_ratio_to_dense"]
        checks += [(f"50%: Wanda >= {TARGET_WANDA_VS_MAGNITUDE:g}x below magnitude", ratio,
                    ratio >= TARGET_WANDA_VS_MAGNITUDE),
                   (f"50%: Wanda <= {TARGET_WANDA_VS_DENSE:g}x dense", to_dense, to_dense <= TARGET_WANDA_VS_DENSE)]
    mag24, wanda24 = find("sweep", "magnitude", "2:4"), find("sweep", "wanda", "2:4")
    if mag24 and wanda24:
        versus(wanda24, mag24, "2:4, Wanda vs magnitude")
        checks.append(("2:4: magnitude / Wanda > 1", mag24["test_perplexity"] / wanda24["test_perplexity"],
                       wanda24["test_perplexity"] < mag24["test_perplexity"]))
    obs50, sparsegpt50 = find("recovery", "wanda mask + OBS update", 0.5), find("recovery", "sparsegpt", 0.5)
    if obs50 and sparsegpt50:
        versus(sparsegpt50, obs50, "50%, SparseGPT vs Wanda's mask + OBS update")
    no_training = [r for r in records if r.get("experiment") == "recovery" and r["sparsity"] == "0.5"]
    if no_training:  # the recovery without training that validation chose, on test once
        chosen = min(no_training, key=lambda r: r["validation_perplexity"])
        tried = ", ".join(f"{r['method']} {r['validation_perplexity']:.2f}" for r in no_training)
        print(f"validation chose {chosen['method']} among the 50% recoveries without training ({tried})")
        if wanda50:
            versus(chosen, wanda50, f"50%, {chosen['method']} vs Wanda without recovery")
    for record in no_training:
        checks.append((f"50% after {record['method']} <= {TARGET_RECOVERED:g}x dense", record["test_ratio_to_dense"],
                       record["test_ratio_to_dense"] <= TARGET_RECOVERED))
    control = find("fine-tune", "dense + fine-tune", 0.0)
    if control:
        print(f"control: the dense model fine-tuned the same way (lr {control['fine_tune_lr']:g}, chosen on "
              f"validation): test perplexity {control['test_perplexity']:.2f} ({control['test_ratio_to_dense']:.2f}x "
              f"the untuned dense model)")
        for method in ("wanda + fine-tune", "wanda mask + OBS update + fine-tune"):
            tuned = find("fine-tune", method, 0.5)
            if tuned:
                versus(tuned, control, f"50%, {method} vs the fine-tuned dense control")
                ratio = tuned["test_perplexity"] / control["test_perplexity"]
                checks.append((f"50% after {method} <= {TARGET_RECOVERED:g}x the fine-tuned dense control", ratio,
                               ratio <= TARGET_RECOVERED))
    print()
    for label, measured, ok in checks:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.2f}")
    print(f"\npeak memory {peak_mb:.0f} MB; benchmark time: {seconds / 60:.1f} min")
    print("wrote", save_results("lm_pruning", records, seed=SEED))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
