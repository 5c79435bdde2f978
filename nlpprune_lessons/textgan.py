"""Lesson 05's text GAN: short Gutenberg sentences, sentence-level training of a generator (MLE,
distillation, adversarial), the discriminator's training, and the quality/diversity measures.

A *training objective* here is a callable ``loss_fn(model, batch) -> loss`` that
:func:`train_steps` minimises; objectives with a discriminator (:class:`AdversarialObjective`)
update it themselves before each generator step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checks import check_positive_int
from .data import gutenberg_sentences
from .data.splits import check_split
from .metrics import bleu, distinct_n, self_bleu
from .models.gan import Discriminator, gumbel_sentences, sample_sentences
from .text import Vocab
from .train import distillation_loss, lm_loss

Batch = dict[str, torch.Tensor]
Objective = Callable[[nn.Module, Batch], torch.Tensor]
IGNORE = -100  # target of padded positions (cross-entropy's default ignore_index)


# --------------------------------------------------------------------------- data
@dataclass
class SentenceData:
    """Short sentences as padded id rows ``[N, max_len]`` per split: words, ``<eos>``, then ``<pad>``.

    A sentence is generated (and scored) after feeding ``start_id``: ``<eos>``, because lesson 02's
    language model read sentences separated by ``<eos>``, so "after ``<eos>``" already means "a
    sentence starts here" to it."""

    vocab: Vocab
    ids: dict[str, torch.Tensor]
    max_len: int

    @property
    def start_id(self) -> int:
        return self.vocab.eos_id

    def batch(self, rows: torch.Tensor) -> Batch:
        """Teacher-forcing batch of id rows: ``input_ids`` = start + tokens[:-1], ``targets`` = tokens
        (padding → :data:`IGNORE`)."""
        start = torch.full((rows.size(0), 1), self.start_id, dtype=torch.long, device=rows.device)
        return {"input_ids": torch.cat([start, rows[:, :-1]], 1),
                "targets": rows.masked_fill(rows == self.vocab.pad_id, IGNORE)}

    def sentences(self, split: str) -> list[list[str]]:
        """The split's sentences as token lists, as the model sees them (out-of-vocabulary → ``<unk>``)."""
        return decode(self.ids[split], self.vocab)


def short_sentences(vocab: Vocab, max_len: int = 20, min_words: int = 3, fast: bool | None = None) -> SentenceData:
    """Gutenberg (Austen, lower-cased) sentences of ``min_words`` to ``max_len - 1`` words (+ ``<eos>``)
    from each split of :func:`~nlpprune_lessons.data.gutenberg_sentences`, encoded with ``vocab``."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or isinstance(min_words, bool) \
            or not isinstance(min_words, int) or not 1 <= min_words < max_len:
        raise ValueError(f"need ints 1 <= min_words < max_len, got min_words={min_words!r}, max_len={max_len!r}")
    ids = {}
    for split in ("train", "validation", "test"):
        rows = [vocab.encode(s, add_eos=True) for s in gutenberg_sentences(split, fast=fast, lowercase=True)
                if min_words <= len(s) <= max_len - 1]
        if not rows:
            raise ValueError(f"no {split} sentence has {min_words}..{max_len - 1} words")
        ids[split] = torch.tensor([r + [vocab.pad_id] * (max_len - len(r)) for r in rows])
    return SentenceData(vocab, ids, max_len)


def decode(rows: torch.Tensor, vocab: Vocab) -> list[list[str]]:
    """Token lists of id rows, cut before the first ``<eos>`` (padding dropped)."""
    out = []
    for row in rows.tolist():
        words = []
        for i in row:
            if i in (vocab.eos_id, vocab.pad_id):
                break
            words.append(vocab.itos[i])
        out.append(words)
    return out


def _check_split(split: str) -> None:
    if split is None:
        raise ValueError("split must be one of train, validation, test")
    check_split(split)


def _batches(rows: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batches of rows, a new permutation each epoch (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(rows.size(0), generator=generator).split(batch_size):
            yield rows[idx]


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def sentence_perplexity(model: nn.Module, data: SentenceData, split: str = "test", batch_size: int = 256) -> dict:
    """Token-weighted next-token loss and perplexity of ``split``'s real sentences (``<eos>`` included),
    each scored from a fresh state after ``start_id``; eval mode."""
    _check_split(split)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for rows in data.ids[split].split(batch_size):
            batch = {k: v.to(device) for k, v in data.batch(rows).items()}
            logits, _ = model(batch["input_ids"])
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1),
                                     ignore_index=IGNORE, reduction="sum").item()
            count += int((batch["targets"] != IGNORE).sum())
    finally:
        model.train(was_training)
    return {"loss": total / count, "perplexity": math.exp(total / count)}


def generate(model: nn.Module, data: SentenceData, n: int, temperature: float = 1.0, seed: int = 0) -> list[list[str]]:
    """``n`` sampled sentences as token lists (seeded)."""
    rows = sample_sentences(model, n, data.max_len, start_id=data.start_id, eos_id=data.vocab.eos_id,
                            pad_id=data.vocab.pad_id, temperature=temperature,
                            generator=torch.Generator().manual_seed(seed))
    return decode(rows, data.vocab)


def evaluate_generator(model: nn.Module, data: SentenceData, n_samples: int, temperature: float = 1.0,
                       seed: int = 0, split: str = "test") -> dict[str, float]:
    """Quality, diversity and likelihood of a generator on ``split``:

    ``bleu2..4`` of ``n_samples`` samples against all real ``split`` sentences; ``self_bleu2..4`` of
    the samples; ``distinct1``, ``distinct2``; ``mean_words`` of the samples; ``perplexity`` of the
    real sentences under the model. Empty samples (an immediate ``<eos>``) count in every measure."""
    _check_split(split)
    samples = generate(model, data, n_samples, temperature, seed)
    scored = [s or ["<empty>"] for s in samples]  # BLEU needs a token; "<empty>" matches nothing real
    return {**bleu(scored, data.sentences(split)), **self_bleu(scored),
            "distinct1": distinct_n(scored, 1), "distinct2": distinct_n(scored, 2),
            "mean_words": sum(map(len, samples)) / len(samples),
            "perplexity": sentence_perplexity(model, data, split)["perplexity"]}


# --------------------------------------------------------------------------- training
@dataclass
class StepHistory:
    """Curves of :func:`train_steps`: the training loss every step, the validation perplexity every
    ``eval_every`` steps (and at step 0), and whatever the objective logs (``extra``)."""

    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_perplexity: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)


def train_steps(model: nn.Module, data: SentenceData, steps: int, loss_fn: Objective = lm_loss, *, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0, eval_every: int | None = None,
                params: Sequence[torch.Tensor] | None = None, after_step: Callable[[], object] | None = None,
                max_grad_norm: float | None = 1.0, progress: bool = True, desc: str = "steps") -> StepHistory:
    """``steps`` Adam steps on ``loss_fn`` over shuffled training sentences (default: MLE).

    ``params`` restricts the optimiser (default: every trainable parameter of ``model``);
    ``after_step()`` runs after each step (e.g. a proximal update). The objective's ``log`` dict,
    if it has one, is copied into ``history.extra`` each step."""
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        check_positive_int(value, name)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every must be None or a positive int, got {eval_every!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be None (no clipping) or > 0, got {max_grad_norm}")
    device = next(model.parameters()).device
    trainable = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    history = StepHistory()

    def validate(step: int) -> None:
        history.eval_steps.append(step)
        history.val_perplexity.append(sentence_perplexity(model, data, "validation")["perplexity"])

    if eval_every:
        validate(0)
    model.train()
    batches = _batches(data.ids["train"], batch_size, seed)
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False):
        batch = {k: v.to(device) for k, v in data.batch(next(batches)).items()}
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        if after_step is not None:
            after_step()
        history.train_loss.append(loss.item())
        for key, value in getattr(loss_fn, "log", {}).items():
            history.extra.setdefault(key, []).append(value)
        if eval_every and (step % eval_every == 0 or step == steps):
            validate(step)
            model.train()
    model.eval()
    return history


def distillation_objective(teacher: nn.Module, weight: float = 1.0, temperature: float = 1.0) -> Objective:
    """Knowledge distillation from ``teacher`` (frozen, eval mode) on real sentences:
    :func:`~nlpprune_lessons.train.distillation_loss` with ``weight`` on the KL term."""
    teacher.eval()

    def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits, _ = teacher(batch["input_ids"])
        logits, _ = model(batch["input_ids"])
        return distillation_loss(logits, teacher_logits, batch["targets"], temperature=temperature,
                                 weight=weight, ignore_index=IGNORE)

    return loss_fn


def _real_rows(batch: Batch, pad_id: int) -> torch.Tensor:
    return batch["targets"].masked_fill(batch["targets"] == IGNORE, pad_id)


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


class AdversarialObjective:
    """Generator objective of adversarial fine-tuning with straight-through Gumbel-softmax:

    ``mle_weight * MLE(real batch) + adv_weight * -log D(G's samples)`` (the non-saturating GAN loss),
    after ``d_steps`` updates of the discriminator ``D`` on the real batch vs fresh samples.
    ``log`` holds the last step's discriminator loss and its mean probability "real" on each side.
    Samples are drawn in the generator's current mode (training: dropout on), as SeqGAN and RelGAN
    train; evaluation samples with dropout off."""

    def __init__(self, discriminator: Discriminator, data: SentenceData, *, adv_weight: float = 1.0,
                 mle_weight: float = 1.0, tau: float = 1.0, d_lr: float = 1e-4, d_steps: int = 1):
        if adv_weight < 0 or mle_weight < 0 or adv_weight + mle_weight == 0:
            raise ValueError(f"weights must be >= 0 and not both 0, got adv_weight={adv_weight}, mle_weight={mle_weight}")
        check_positive_int(d_steps, "d_steps")
        if not tau > 0 or not d_lr > 0:
            raise ValueError(f"tau and d_lr must be > 0, got tau={tau}, d_lr={d_lr}")
        self.discriminator, self.data = discriminator, data
        self.adv_weight, self.mle_weight, self.tau, self.d_steps = adv_weight, mle_weight, tau, d_steps
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=d_lr)
        self.log: dict[str, float] = {}

    def _samples(self, model: nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.data.vocab
        return gumbel_sentences(model, n, self.data.max_len, start_id=self.data.start_id, eos_id=v.eos_id,
                                pad_id=v.pad_id, tau=self.tau)

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        real = _real_rows(batch, self.data.vocab.pad_id)
        d = self.discriminator.train()
        for _ in range(self.d_steps):
            with torch.no_grad():
                fake, _ = self._samples(model, real.size(0))
            d_real, d_fake = d(real), d(fake)
            d_loss = _bce(d_real, True) + _bce(d_fake, False)
            self.optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizer.step()
        _, one_hot = self._samples(model, real.size(0))
        adv = _bce(d(one_hot), True)
        self.log = {"d_loss": d_loss.item(), "d_real": torch.sigmoid(d_real).mean().item(),
                    "d_fake": torch.sigmoid(d_fake).mean().item(), "g_adv": adv.item()}
        loss = self.adv_weight * adv
        if self.mle_weight:
            loss = loss + self.mle_weight * lm_loss(model, batch)
        return loss


def train_discriminator(discriminator: Discriminator, generator: nn.Module, data: SentenceData, steps: int, *,
                        lr: float = 1e-3, batch_size: int = 64, seed: int = 0, progress: bool = True) -> dict:
    """Pre-train ``discriminator`` on real training sentences vs samples of ``generator`` (temperature 1);
    returns the loss curve and the held-out accuracy: validation sentences vs as many fresh samples."""
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        check_positive_int(value, name)
    device = next(discriminator.parameters()).device
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr)
    v, sampler = data.vocab, torch.Generator().manual_seed(seed)

    def fakes(n: int) -> torch.Tensor:
        return sample_sentences(generator, n, data.max_len, start_id=data.start_id, eos_id=v.eos_id,
                                pad_id=v.pad_id, generator=sampler).to(device)

    losses, batches = [], _batches(data.ids["train"], batch_size, seed)
    discriminator.train()
    for _ in tqdm(range(steps), desc="discriminator", disable=not progress, leave=False):
        real = next(batches).to(device)
        loss = _bce(discriminator(real), True) + _bce(discriminator(fakes(real.size(0))), False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    discriminator.eval()
    with torch.no_grad():
        real = data.ids["validation"].to(device)
        correct = (discriminator(real) > 0).sum() + (discriminator(fakes(real.size(0))) <= 0).sum()
    return {"loss": losses, "val_accuracy": correct.item() / (2 * real.size(0))}


def mle_fine_tune_steps(data: SentenceData, epochs: float, batch_size: int = 64) -> int:
    """Optimiser steps for ``epochs`` passes over the training sentences."""
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    check_positive_int(batch_size, "batch_size")
    return max(1, round(epochs * data.ids["train"].size(0) / batch_size))



def adversarial_fine_tune(generator: nn.Module, data: SentenceData, *, d_steps: int, steps: int, lr: float = 1e-4,
                          d_lr: float = 1e-3, adv_weight: float = 1.0, mle_weight: float = 1.0, tau: float = 1.0,
                          batch_size: int = 64, seed: int = 0, eval_every: int | None = None,
                          progress: bool = True) -> tuple[nn.Module, Discriminator, dict]:
    """The GAN stage of lesson 05 on a copy of ``generator`` (left unchanged): pre-train a fresh
    :class:`~nlpprune_lessons.models.gan.Discriminator` for ``d_steps`` steps against the generator's
    samples, then ``steps`` generator steps of :class:`AdversarialObjective` (one discriminator step
    each). Returns ``(fine-tuned generator, discriminator, {"discriminator": ..., "adversarial": StepHistory})``."""
    model = copy.deepcopy(generator)
    device = next(model.parameters()).device
    discriminator = Discriminator(len(data.vocab), pad_id=data.vocab.pad_id).to(device)
    pretrain = train_discriminator(discriminator, model, data, d_steps, lr=d_lr, batch_size=batch_size, seed=seed,
                                   progress=progress)
    objective = AdversarialObjective(discriminator, data, adv_weight=adv_weight, mle_weight=mle_weight, tau=tau,
                                     d_lr=d_lr)
    history = train_steps(model, data, steps, objective, lr=lr, batch_size=batch_size, seed=seed,
                          eval_every=eval_every, progress=progress, desc="adversarial")
    return model, discriminator, {"discriminator": pretrain, "adversarial": history}
