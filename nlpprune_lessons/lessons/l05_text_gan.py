"""Lesson 05's text GAN: its sentence data, MLE-trained generator (cached), step budgets and training
settings, and the equal-size comparison of generator pruning methods with a dense control."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache

from torch import nn
from tqdm.auto import tqdm

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checkpoints import cached_model
from nlpprune_lessons.evaluate import evaluate_generator, sentence_perplexity
from nlpprune_lessons.lessons.l02_rnn import (
    PIPELINE_VERSION,
    build_language_model,
    language_model_data,
    trained_language_model,
)
from nlpprune_lessons.structured.adversarial import METHODS, PRUNE_DEFAULTS, PrunedGenerator, prune_generator
from nlpprune_lessons.structured.protocols import cost_report
from nlpprune_lessons.structured.rnn import hidden_sizes
from nlpprune_lessons.text.sentences import SentenceData, short_sentences
from nlpprune_lessons.training.gan import mle_fine_tune_steps, train_steps

#: Lesson 05's text GAN: sentences of 3-19 words (+ <eos>); the generator is lesson 02's language
#: model fine-tuned on them by MLE, sentence by sentence. In FULL mode one epoch: validation
#: perplexity is lowest after about one epoch and rises with more.
GAN_RECIPE = dict(max_len=20, min_words=3, batch_size=64, mle_lr=1e-3, mle_epochs_fast=3, mle_epochs_full=1)

#: Steps and sample counts of lesson 05 by mode: discriminator pre-training, adversarial fine-tuning
#: (generator lr ``adv_lr``), the pruning comparison (``prune_steps``: every method's training budget,
#: of which at most ``mask_steps`` learn masks; validation every ``eval_every`` steps for early
#: stopping) and the samples that BLEU / self-BLEU are computed on.
GAN_STEPS = dict(fast=dict(d_steps=30, adv_steps=24, mask_steps=24, prune_steps=36, eval_every=6, samples=100),
                 full=dict(d_steps=200, adv_steps=200, mask_steps=150, prune_steps=300, eval_every=20, samples=300))
GAN_TRAINING = dict(adv_lr=1e-4, d_lr=1e-3, adv_weight=1.0, mle_weight=1.0, tau=1.0, prune_lr=5e-4)


def gan_steps() -> dict:
    """:data:`GAN_STEPS` of the current mode."""
    return GAN_STEPS["fast" if config.is_fast() else "full"]


@lru_cache(maxsize=2)
def _gan_data(fast: bool, max_len: int, min_words: int) -> SentenceData:
    return short_sentences(language_model_data().vocab, max_len=max_len, min_words=min_words, fast=fast)


def gan_sentence_data() -> SentenceData:
    """Lesson 05's short sentences, encoded with lesson 02's language-model vocabulary."""
    r = GAN_RECIPE
    return _gan_data(config.is_fast(), r["max_len"], r["min_words"])


def mle_generator(seed: int = 0, progress: bool = True):
    """Lesson 05's MLE generator: ``(model, data, meta)``; lesson 02's language model (cached or
    trained) fine-tuned on short sentences; cached after the first training."""
    lm, _, lm_meta = trained_language_model(seed=seed, progress=progress)
    data = gan_sentence_data()
    r = GAN_RECIPE

    def build():
        return build_language_model(len(data.vocab))

    def train(model):
        model.load_state_dict(lm.state_dict())
        model.to(config.get_device())
        config.set_seed(seed)
        steps = mle_fine_tune_steps(data, config.pick(fast=r["mle_epochs_fast"], full=r["mle_epochs_full"]),
                                    r["batch_size"])
        before = sentence_perplexity(model, data)["perplexity"]
        history = train_steps(model, data, steps, lr=r["mle_lr"], batch_size=r["batch_size"], seed=seed,
                              eval_every=max(1, steps // 10), progress=progress, desc="MLE")
        return {"history": vars(history), "steps": steps, "test_perplexity_before": before,
                "test": sentence_perplexity(model, data)}

    recipe = {**r, "seed": seed, "vocab": len(data.vocab), "lm": lm_meta["recipe"], "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model("sentence-generator", recipe, build, train)
    return model.to(config.get_device()).eval(), data, meta


def compare_generator_pruning(dense: nn.Module, data: SentenceData, sparsities: Sequence[float],
                              methods: Sequence[str] = METHODS, *, steps: int, mask_steps: int, n_samples: int,
                              seed: int = 0, latency_repeats: int = 10, progress: bool = True,
                              **settings) -> tuple[list[dict], dict[tuple[str, float], PrunedGenerator]]:
    """Lesson 05's comparison at equal size and equal budget: every ``method`` of
    :func:`~nlpprune_lessons.structured.adversarial.prune_generator` at every sparsity (the share of
    hidden units removed), each trained ``steps`` steps in all (mask methods: at most ``mask_steps`` of
    them learning masks), plus two dense rows: ``dense`` as given and ``dense+mle``, the dense model
    trained by MLE with the same budget and the same early stopping on validation, so that extra
    training is not credited to pruning.

    Each row: method, fraction removed, hidden sizes, the budget split (mask / recovery steps, the
    recovery step validation kept), :func:`~nlpprune_lessons.evaluate.evaluate_generator` metrics
    (``n_samples`` samples, seed ``seed``) with the test perplexity's bootstrap interval,
    ``val_perplexity`` (choose methods on it, not on the test perplexity), the masks' share at
    exactly 0 and the chosen penalty (mask methods), and :func:`cost_report` of the whole forward pass
    on sentences of ``data.max_len`` tokens. Returns ``(rows, {(method, fraction): PrunedGenerator})``."""
    values = list(sparsities)
    if not values or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0 for f in values):
        raise ValueError(f"sparsities must be a non-empty list of numbers in (0, 1), got {sparsities!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty list from {', '.join(METHODS)}; unknown: {unknown}")
    s = PRUNE_DEFAULTS | settings
    config.set_seed(seed)
    control = copy.deepcopy(dense)
    history = train_steps(control, data, steps, lr=s["lr"], seed=seed, eval_every=s["eval_every"], restore_best=True,
                          progress=progress, desc="dense+mle")
    results = {("dense", 0.0): PrunedGenerator("dense", 0.0, dense),
               ("dense+mle", 0.0): PrunedGenerator("dense+mle", 0.0, control.eval(), {"recover": history},
                                                   recover_steps=steps, best_step=history.best_step)}
    runs = [(m, f) for f in sorted(values) for m in methods]
    for method, fraction in tqdm(runs, desc="methods", disable=not progress, leave=False):
        config.set_seed(seed)
        results[(method, fraction)] = prune_generator(dense, data, method, fraction, steps=steps, mask_steps=mask_steps,
                                                      seed=seed, progress=False, **settings)
    rows = []
    for (method, fraction), result in results.items():
        cost = cost_report(result.model, dense, seq_len=data.max_len, repeats=latency_repeats, part="model")
        rows.append({"method": method, "fraction_removed": fraction, "hidden_sizes": hidden_sizes(result.model),
                     "mask_steps": result.mask_steps, "recover_steps": result.recover_steps, "best_step": result.best_step,
                     **evaluate_generator(result.model, data, n_samples, seed=seed),
                     "val_perplexity": sentence_perplexity(result.model, data, "validation")["perplexity"],
                     "masks_at_zero": result.masks_at_zero, "l1": result.l1,
                     "l1_search": {str(k): v for k, v in result.l1_search.items()} or None, **cost})
    return rows, results
