"""Lesson 05's text GAN and generator pruning at full size: MLE generator, adversarial fine-tuning,
and four ways to remove 25% / 50% of the generator's hidden units (weight norm + MLE, weight norm +
teacher matching, GAL's masks + teacher matching, and masks + teacher matching + adversary), each with
the same training budget and early stopping on validation perplexity, against a dense control
trained by MLE with the same budget; the GAN and the pruned generators placed on the temperature
curve (BLEU against self-BLEU).

Run in FULL mode (the default; NLPPRUNE_FAST=1 gives a quick smoke run). Writes
results/text_gan.json and prints the tables and the course's targets: adversarial fine-tuning raises
the test perplexity of real held-out sentences by at most 10%; at 50% of hidden units removed, the
best pruned generator (chosen on *validation* perplexity) is within 15% of the dense generator's
test perplexity, with BLEU and self-BLEU beside it.

    python benchmarks/text_gan.py
"""

from __future__ import annotations

import copy
import time

import pandas as pd
import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import save_results
from nlpprune_lessons.evaluate import evaluate_generator, generate_sentences
from nlpprune_lessons.lessons import l05_text_gan
from nlpprune_lessons.lessons.l05_text_gan import compare_generator_pruning
from nlpprune_lessons.metrics import compare_scores
from nlpprune_lessons.structured.adversarial import METHODS
from nlpprune_lessons.training.gan import adversarial_fine_tune, train_steps

FRACTIONS = [0.25, 0.5]
TEMPERATURES = [0.5, 0.7, 1.0, 1.3]
SEED = 0
COLUMNS = ["bleu2", "bleu3", "bleu4", "self_bleu2", "self_bleu3", "self_bleu4", "distinct1", "distinct2",
           "mean_words", "perplexity", "perplexity_low", "perplexity_high"]


def main() -> int:
    start = time.perf_counter()
    steps, training = l05_text_gan.gan_steps(), l05_text_gan.GAN_TRAINING
    config.set_seed(SEED)
    generator, data, meta = l05_text_gan.mle_generator(seed=SEED, progress=False)
    n = steps["samples"]
    print(f"MLE generator: test perplexity {meta['test_perplexity_before']:.2f} (lesson 02's model) -> "
          f"{meta['test']['perplexity']:.2f} after {meta['steps']} MLE steps", flush=True)

    rows = [{"experiment": "sentences", "model": "MLE generator", **evaluate_generator(generator, data, n, seed=SEED)}]
    rows += [{"experiment": "temperature", "model": "MLE generator", "temperature": t,
              **evaluate_generator(generator, data, n, temperature=t, seed=SEED)} for t in TEMPERATURES]
    config.set_seed(SEED)
    adv, _, curves = adversarial_fine_tune(
        generator, data, d_steps=steps["d_steps"], steps=steps["adv_steps"], lr=training["adv_lr"],
        d_lr=training["d_lr"], adv_weight=training["adv_weight"], mle_weight=training["mle_weight"],
        tau=training["tau"], seed=SEED, eval_every=max(1, steps["adv_steps"] // 5), progress=False)
    history = curves["adversarial"]
    rows.append({"experiment": "sentences", "model": "adversarial", **evaluate_generator(adv, data, n, seed=SEED),
                 "discriminator_val_accuracy": curves["discriminator"]["val_accuracy"],
                 "d_real_last10": sum(history.extra["d_real"][-10:]) / 10,
                 "d_fake_last10": sum(history.extra["d_fake"][-10:]) / 10,
                 "val_perplexity_curve": history.val_perplexity})
    config.set_seed(SEED)  # control: the same steps of MLE alone (the adversarial loss includes an MLE term)
    mle_only = copy.deepcopy(generator)
    train_steps(mle_only, data, steps["adv_steps"], lr=training["adv_lr"], seed=SEED, progress=False)
    rows.append({"experiment": "sentences", "model": "MLE only, same steps",
                 **evaluate_generator(mle_only, data, n, seed=SEED)})
    print(f"adversarial stage done at {time.perf_counter() - start:.0f} s", flush=True)
    gan = pd.DataFrame(rows)
    print(gan[["experiment", "model", "temperature"] + COLUMNS].round(4).to_string(index=False))
    print(f"discriminator held-out accuracy after pre-training: {curves['discriminator']['val_accuracy']:.3f}")
    for name, model in (("MLE", generator), ("adversarial", adv)):
        print(f"{name} samples:")
        for words in generate_sentences(model, data, 5, seed=SEED + 1):
            print("   ", " ".join(words))

    config.set_seed(SEED)
    pruning, pruned = compare_generator_pruning(generator, data, FRACTIONS, METHODS, steps=steps["prune_steps"],
                                                mask_steps=steps["mask_steps"], n_samples=n, seed=SEED,
                                                latency_repeats=20, progress=False, lr=training["prune_lr"],
                                                eval_every=steps["eval_every"])
    table = pd.DataFrame(pruning)
    print(f"\npruning done at {time.perf_counter() - start:.0f} s")
    pd.set_option("display.width", 250)
    print(table[["method", "fraction_removed", "hidden_sizes", "mask_steps", "recover_steps", "best_step", "l1",
                 "masks_at_zero", "val_perplexity", "perplexity", "perplexity_low", "perplexity_high", "bleu3",
                 "self_bleu3", "distinct2", "params", "speedup_b32"]].round(4).to_string(index=False))
    print(f"threads: {torch.get_num_threads()}; latency of the whole forward pass, {data.max_len} tokens, "
          "alternating rounds")

    mle_ppl, adv_ppl = gan.perplexity.iloc[0], gan[gan.model == "adversarial"].perplexity.item()
    dense_ppl = table[table.method == "dense"].perplexity.item()
    control_ppl = table[table.method == "dense+mle"].perplexity.item()
    half = table[table.fraction_removed == 0.5]
    best = half.loc[half.val_perplexity.idxmin()]  # chosen on validation
    rows_of = {r["method"]: r for r in table.to_dict("records") if r["fraction_removed"] in (0.0, 0.5)}
    verdicts = [{"a": a, "b": b, **compare_scores(rows_of[a], rows_of[b], "perplexity")}
                for a, b in [(best.method, "dense+mle"), (best.method, "l2+mle"), ("masks+kd", "l2+kd"),
                             ("masks+kd+adversary", "masks+kd"), ("dense+mle", "dense")]]
    print("\ntest perplexity verdicts at 50% of units removed (log ratio, two standard errors):")
    print(pd.DataFrame(verdicts).round(4).to_string(index=False))
    curve_models = {"adversarial": adv, "MLE only, same steps": mle_only,
                    "dense+mle (pruning control)": pruned[("dense+mle", 0.0)].model,
                    f"{best.method}, 50% removed": pruned[(best.method, 0.5)].model}
    curves_rows = [{"experiment": "temperature", "model": name, "temperature": t,
                    **evaluate_generator(model, data, n, temperature=t, seed=SEED)}
                   for name, model in curve_models.items() for t in TEMPERATURES]
    print(pd.DataFrame(curves_rows)[["model", "temperature", "bleu3", "self_bleu3", "distinct2"]].round(4)
          .to_string(index=False))
    targets = [
        ("adversarial fine-tuning raises test perplexity by <= 10%", float(adv_ppl / mle_ppl - 1),
         bool(adv_ppl <= 1.10 * mle_ppl)),
        (f"50% units removed: best method on validation ({best.method}) within 15% of dense test perplexity "
         f"(BLEU-3 {best.bleu3:.3f}, self-BLEU-3 {best.self_bleu3:.3f})", float(best.perplexity / dense_ppl - 1),
         bool(best.perplexity <= 1.15 * dense_ppl)),
        (f"the same, against the dense control trained as long ({control_ppl:.2f})",
         float(best.perplexity / control_ppl - 1), bool(best.perplexity <= 1.15 * control_ppl)),
    ]
    print()
    for label, measured, ok in targets:
        print(f"{'MET ' if ok else 'MISS'} {label}: measured {measured:+.4f}")
    seconds = time.perf_counter() - start
    print(f"\nbenchmark time: {seconds / 60:.1f} min")
    save_results("text_gan", gan.to_dict("records") + curves_rows
                 + [{"experiment": "pruning", **r} for r in table.to_dict("records")]
                 + [{"experiment": "verdict", **v} for v in verdicts]
                 + [{"target": label, "measured": measured, "met": ok} for label, measured, ok in targets]
                 + [{"benchmark_seconds": seconds, "threads": torch.get_num_threads(), "steps": steps,
                     "training": training}], seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
