"""Lesson 07 at full size: MiniLM-L6 fine-tuned on Rotten Tomatoes, pruned to several encoder
sparsities by one-shot magnitude, gradual magnitude and movement pruning, each with and without
distillation from the dense teacher, each method at its own learning rate chosen on validation.

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/bert_sparse.json and prints the table and the issue's targets:

- dense fine-tuned test accuracy >= 0.82;
- 50% encoder sparsity: best method >= 99% of dense accuracy; 90%: >= 97%; 95%: >= 92%;
- 90%-sparse model stored by save_sparse: pruned encoder weights <= 15% of their dense bytes.

    python benchmarks/bert_sparse.py                       # default set: 22 runs, about 2 hours on 2 cores
    python benchmarks/bert_sparse.py --methods movement --sparsities 0.9 --lrs 3e-4 --kd-at
    python benchmarks/bert_sparse.py --methods one-shot --sparsities 0.9 0.95 --lrs 1e-3 --epochs 2

Every method runs without distillation at every sparsity, and with distillation at the ``--kd-at``
sparsities (default 90% and 95%, where the targets are hardest); a run takes about 3-7 minutes per epoch.

Each finished run is appended to a journal in the course cache (``bert_sparse-<mode>.jsonl``; the
90% model measured for storage and latency is saved beside it), and a new start skips the runs the
journal holds: an interrupted benchmark resumes where it stopped (``--fresh`` ignores the journal), and
methods run as separate processes (``--methods one-shot``, ``--methods gradual``, ...) fill one journal
that a final run with the default set then reads. On 2 cores, two such processes with
``OMP_NUM_THREADS=1`` each finish the set sooner than one process with two threads.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from nlpprune_lessons import config, encoder_recipes
from nlpprune_lessons.bench import compare_latency
from nlpprune_lessons.pruning import default_params, install_mask, load_sparse, save_sparse
from nlpprune_lessons.pruning.finetune import SPARSE_METHODS, compare_sparse_methods
from nlpprune_lessons.results import save_results
from nlpprune_lessons.train import evaluate_classifier

SEED = 0
TARGETS = {0.5: 0.99, 0.9: 0.97, 0.95: 0.92}  # best method's share of dense test accuracy
#: Learning-rate candidates per method. Movement pruning also tries 1e-4 (the paper trains BERT's
#: weights at 3e-5); in the recorded run all three of its rates ended at the majority class.
LR_CANDIDATES = {"one-shot": (3e-4, 1e-3), "gradual": (3e-4, 1e-3), "movement": (1e-4, 3e-4, 1e-3)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=SPARSE_METHODS, default=list(SPARSE_METHODS))
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.8, 0.9, 0.95])
    parser.add_argument("--lrs", nargs="+", type=float, default=None,
                        help="learning-rate candidates for every method (default: LR_CANDIDATES); each "
                             "method's is chosen on validation at --select-at, a single one is used as is")
    parser.add_argument("--select-at", type=float, default=0.9, help="sparsity of the learning-rate search")
    parser.add_argument("--kd-at", nargs="*", type=float, default=[0.9, 0.95],
                        help="sparsities that also get a run distilled from the dense teacher (none: no KD runs)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per pruning run")
    parser.add_argument("--fresh", action="store_true", help="ignore (and replace) the journal of finished runs")
    return parser.parse_args()


class Journal:
    """Finished runs, one JSON line each, keyed by everything that decides their result."""

    def __init__(self, path: Path, fresh: bool):
        self.path = path
        if fresh:
            path.unlink(missing_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        self.runs = {entry["key"]: entry["record"] for entry in map(json.loads, lines)}

    def add(self, key: str, record: dict) -> None:
        self.runs[key] = record
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "record": record}, default=float) + "\n")


def masked_again(model: torch.nn.Module) -> torch.nn.Module:
    """A sparse model reloaded by ``load_sparse`` holds plain zeros: mask them again, as after pruning."""
    for module, name in default_params(model):
        install_mask(module, name, (getattr(module, name) != 0).float())
    return model


def main() -> int:
    args = parse_args()
    start = time.perf_counter()
    config.set_seed(SEED)
    dense, data, meta = encoder_recipes.fine_tuned_encoder(SEED, progress=False)
    loaders = encoder_recipes.sparse_loaders(data, SEED)
    dense_test = evaluate_classifier(dense, loaders["test"])["accuracy"]
    print(f"dense MiniLM: test accuracy {dense_test:.4f} ({len(data.labels['train'])} training reviews, "
          f"{len(meta['history']['step_loss'])} steps); {len(loaders['train'])} steps per pruning epoch", flush=True)

    journal = Journal(config.cache_dir() / f"bert_sparse-{config.mode().lower()}.jsonl", args.fresh)
    # the model whose storage and latency are measured: a 90% one (saved, so a resumed run still has it)
    at_90 = [s for s in args.sparsities if s == 0.9] or args.sparsities[-1:]
    keep = (args.methods[0], at_90[0], at_90[0] in args.kd_at)
    # named by the kept run, so benchmarks of different methods can share one journal
    keep_path = journal.path.with_suffix(f".{keep[0]}-{keep[1]:g}{'-kd' if keep[2] else ''}.safetensors")
    kept = {}

    def run(method: str, sparsity: float, lr: float, use_kd: bool) -> dict:
        """One pruning run, from the journal when it holds it (same settings, same dense model)."""
        key = json.dumps([method, sparsity, lr, use_kd, args.epochs, round(dense_test, 6)])
        is_kept = (method, sparsity, use_kd) == keep and lr == lrs.get(method)
        if key in journal.runs and (not is_kept or keep_path.exists()):
            if is_kept:
                kept[keep] = masked_again(load_sparse(keep_path))
            return journal.runs[key]
        rows, models = compare_sparse_methods(dense, loaders, [method], [sparsity], {method: lr}, distill=(use_kd,),
                                              keep=[keep] if is_kept else [], epochs=args.epochs, progress=False)
        if is_kept:
            kept.update(models)
            save_sparse(models[keep], keep_path)
        journal.add(key, rows[0])
        print(f"  {method} {sparsity:.0%}{' + KD' if use_kd else ''} lr {lr:g}: validation "
              f"{rows[0]['validation_accuracy']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        return rows[0]

    lrs, searched = {}, []
    for method in args.methods:
        candidates = args.lrs or LR_CANDIDATES[method]
        if len(candidates) == 1:
            lrs[method] = candidates[0]
            continue
        rows = [run(method, args.select_at, lr, False) for lr in candidates]
        lrs[method] = max(rows, key=lambda r: r["validation_accuracy"])["lr"]  # ties: the first candidate
        searched += [{**r, "search": True} for r in rows]
        print(f"{method}: learning rate {lrs[method]:g} chosen on validation at {args.select_at:.0%} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    records = []
    for method in args.methods:
        for sparsity in args.sparsities:
            for use_kd in (False, True) if sparsity in args.kd_at else (False,):
                records.append({**run(method, sparsity, lrs[method], use_kd), "search": False})
        print(f"{method} done ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(records).sort_values(["sparsity_target", "method", "distill"])
    table["share_of_dense"] = table.test_accuracy / dense_test
    print("\nlearning-rate search (validation chooses):")
    if searched:
        print(pd.DataFrame(searched)[["method", "lr", "validation_accuracy", "test_accuracy"]].round(4)
              .to_string(index=False))
    print(table[["method", "distill", "sparsity_target", "lr", "validation_accuracy", "test_accuracy", "share_of_dense",
                 "prunable_sparsity", "overall_sparsity", "seconds"]].round(4).to_string(index=False))

    storage, latency = {}, {}
    if keep in kept:
        model = kept[keep]
        with tempfile.TemporaryDirectory() as tmp:
            summary = save_sparse(model, Path(tmp) / "sparse.safetensors")
            reloaded = load_sparse(Path(tmp) / "sparse.safetensors")
        storage = {"model": f"{keep[0]} {keep[1]:.0%}", "file_MB": summary["file_bytes"] / 1e6,
                   "dense_MB": summary["dense_bytes"] / 1e6,
                   "pruned_bytes_ratio": summary["sparse_stored_bytes"] / summary["sparse_dense_bytes"]}
        inputs = dict(data.tokenizer(data.texts["test"][:32], padding="max_length", truncation=True, max_length=64,
                                     return_tensors="pt"))
        latency = compare_latency({name: (lambda m=m: m(**inputs)) for name, m in
                                   {"dense": dense, "masked": model, "zeros, no masks": reloaded}.items()})
        print(f"\nstorage: {storage}\nlatency, batch 32 x 64 tokens, {torch.get_num_threads()} threads: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in latency.items()))

    targets = [("dense fine-tuned test accuracy >= 0.82", dense_test, bool(dense_test >= 0.82))]
    for sparsity, share in TARGETS.items():
        at = table[table.sparsity_target == sparsity]
        if len(at):
            best = at.loc[at.validation_accuracy.idxmax()]
            name = f"{best.method}{' + KD' if best.distill else ''}"
            targets.append((f"{sparsity:.0%}: best on validation ({name}) >= {share:.0%} of dense test accuracy",
                            float(best.share_of_dense), bool(best.share_of_dense >= share)))
            ranking = at.sort_values("test_accuracy", ascending=False)
            print(f"ranking at {sparsity:.0%} (test accuracy): " + ", ".join(
                f"{r.method}{' + KD' if r.distill else ''} {r.test_accuracy:.3f}" for r in ranking.itertuples()))
    if storage and keep[1] == 0.9:  # the target is stated for a 90% model; other runs only report their file
        targets.append(("90%-sparse pruned weights <= 15% of their dense bytes", storage["pruned_bytes_ratio"],
                        bool(storage["pruned_bytes_ratio"] <= 0.15)))
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("bert_sparse", table.to_dict("records") + searched
                 + [{"experiment": "storage", **storage}, {"experiment": "latency_b32_s64_ms", **latency}]
                 + [{"target": label, "measured": measured, "met": ok} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "dense_test_accuracy": dense_test, "learning_rates": lrs,
                     "args": vars(args)}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
