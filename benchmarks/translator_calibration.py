"""Lesson 10's calibration: which translator design learns most in the same wall-clock budget on a CPU?

Every design trains for the same ``--minutes`` (validation included) from the same seed on Japanese
WordNet's training pairs (split by synset; sentences of at most 24 subword pieces), then translates the
first validation sentences greedily; validation chooses (chrF, with its 95% bootstrap interval; BLEU
beside it). The test split is not read. Designs:

- ``scratch ja-en``: the from-scratch encoder-decoder (d 128, 3 + 2 layers, FFN 512, 4k BPE per
  language), Japanese to English: BLEU on English words is the standard reading;
- ``scratch en-ja``: the same model the other way, scored on Japanese characters;
- ``minilm en-ja``: MiniLM's pretrained encoder (frozen; WordPiece on the English side) under a decoder of
  the same size trained from scratch (Rothe et al. 2020 warm-start the decoder too; MiniLM's uncased
  WordPiece would turn Japanese kana with voicing marks into other kana, so the Japanese side keeps the
  course's BPE).

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/translator_calibration.json and prints the table with tokens per second and the validation
loss curve of each design.

    python benchmarks/translator_calibration.py                  # every design, 12 minutes each
    python benchmarks/translator_calibration.py --minutes 5 --designs "scratch ja-en"
"""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.lessons import l10_translator
from nlpprune_lessons.training.seq2seq import train_translator

SEED = 0
#: design -> (direction, source encoder)
DESIGNS = {"scratch ja-en": ("ja-en", "bpe"), "scratch en-ja": ("en-ja", "bpe"), "minilm en-ja": ("en-ja", "minilm")}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=list(DESIGNS))
    parser.add_argument("--minutes", type=float, default=config.pick(0.5, 12.0),
                        help="training budget of every design, validation included")
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    return args


def run_design(name: str, minutes: float) -> dict:
    settings = l10_translator.translator_settings()
    direction, source_encoder = DESIGNS[name]
    data = l10_translator.translation_data(direction, seed=SEED, settings=settings, source_encoder=source_encoder)
    model = l10_translator.new_translator(data, settings, seed=SEED)
    validation = l10_translator.split_batches(data, "validation", settings,
                                              limit=settings["validation_loss_sentences"])
    history = train_translator(
        model, lambda epoch: l10_translator.split_batches(data, "train", settings, shuffle=True, seed=SEED + epoch),
        validation, lr=settings["lr"], warmup_steps=settings["warmup_steps"], smoothing=settings["smoothing"],
        seconds=minutes * 60, validate_every=settings["validate_every"], progress=False)
    scores, hypotheses = l10_translator.score_translations(model, data, "validation",
                                                           limit=settings["scored_sentences"], seed=SEED)
    sources, references = (texts[:3] for texts in data.texts["validation"])
    print(f"\n{name}: {history.steps} steps, {history.tokens_per_second:.0f} target tokens/s, validation loss "
          f"{history.validation_loss[-1]:.3f}; chrF {scores['chrf']:.1f} [{scores['chrf_low']:.1f}, "
          f"{scores['chrf_high']:.1f}], BLEU {scores['bleu']:.2f} [{scores['bleu_low']:.2f}, "
          f"{scores['bleu_high']:.2f}] on {scores['sentences']} validation sentences", flush=True)
    for source, reference, hypothesis in zip(sources, references, hypotheses):
        print(f"  {source} | reference: {reference} | model: {hypothesis}")
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"design": name, "direction": direction, "source_encoder": source_encoder, "minutes": minutes,
            "parameters": parameters, "trainable_parameters": trainable,
            "steps": history.steps, "target_tokens_per_second": history.tokens_per_second,
            "train_pairs": len(data.ids["train"][0]), "validation_steps": history.validation_steps,
            "validation_loss_curve": history.validation_loss, "validation_loss": history.validation_loss[-1],
            **{f"validation_{k}": v for k, v in scores.items()},
            "examples": [{"source": s, "reference": r, "model": h} for s, r, h in zip(sources, references, hypotheses)],
            "counts": data.counts}


def main() -> int:
    args = parse_args()
    start = time.perf_counter()
    config.set_seed(SEED)
    records = [run_design(name, args.minutes) for name in args.designs]
    table = pd.DataFrame(records)
    print("\n" + table[["design", "parameters", "steps", "target_tokens_per_second", "validation_loss",
                        "validation_chrf", "validation_chrf_low", "validation_chrf_high", "validation_bleu",
                        "validation_bleu_low", "validation_bleu_high"]].round(2).to_string(index=False))
    best = max(records, key=lambda r: r["validation_chrf"])
    print(f"\nchosen on validation chrF: {best['design']}")
    records.append({"experiment": "benchmark", "benchmark_seconds": time.perf_counter() - start,
                    "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "chosen": best["design"], "args": vars(args)})
    print(f"wrote {save_results('translator_calibration', records, seed=SEED)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
