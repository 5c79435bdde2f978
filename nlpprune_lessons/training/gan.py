"""Sentence-level training of a generator (MLE, distillation, adversarial), and of its discriminator.

A *training objective* is a callable ``loss_fn(model, batch) -> loss`` that :func:`train_steps`
minimises; objectives with a discriminator (:class:`AdversarialObjective`) update it themselves
before each generator step."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.evaluate import sentence_perplexity
from nlpprune_lessons.losses import distillation_loss, lm_loss
from nlpprune_lessons.models.gan import Discriminator, gumbel_sentences, sample_sentences
from nlpprune_lessons.text.sentences import IGNORE, Batch, SentenceData, shuffled_batches
from nlpprune_lessons.training.loop import fit_steps

Objective = Callable[[nn.Module, Batch], torch.Tensor]


# --------------------------------------------------------------------------- training
@dataclass
class StepHistory:
    """Curves of :func:`train_steps`: the training loss every step, the validation perplexity every
    ``eval_every`` steps (and at step 0), and whatever the objective logs (``extra``)."""

    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_perplexity: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    best_step: int | None = None  # with restore_best: the evaluated step whose weights the model holds

    @property
    def steps(self) -> int:
        """Optimiser steps taken (fewer than asked when ``until`` stopped the run)."""
        return len(self.train_loss)


def train_steps(model: nn.Module, data: SentenceData, steps: int, loss_fn: Objective = lm_loss, *, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0, eval_every: int | None = None,
                params: Sequence[torch.Tensor] | None = None, after_step: Callable[[], object] | None = None,
                until: Callable[[], bool] | None = None, restore_best: bool = False,
                max_grad_norm: float | None = 1.0, progress: bool = True, desc: str = "steps") -> StepHistory:
    """At most ``steps`` Adam steps on ``loss_fn`` over shuffled training sentences (default: MLE).

    ``params`` restricts the optimiser (default: every trainable parameter of ``model``);
    ``after_step()`` runs after each step (e.g. a proximal update); ``until()``, checked after each
    step, ends the run early when it returns True. With ``restore_best`` (needs ``eval_every``) the
    model ends with the weights of the evaluated step (0 included) of lowest validation perplexity:
    early stopping, chosen on validation. The objective's ``log`` dict, if it has one, is copied
    into ``history.extra`` each step."""
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        check_positive_int(value, name)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every must be None or a positive int, got {eval_every!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be None (no clipping) or > 0, got {max_grad_norm}")
    if restore_best and not eval_every:
        raise ValueError("restore_best needs eval_every: the best step is chosen among the evaluated ones")
    device = next(model.parameters()).device
    trainable = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    history = StepHistory()
    best: dict[str, object] = {}
    stopped = [False]

    def validate(step: int) -> None:
        history.eval_steps.append(step)
        history.val_perplexity.append(sentence_perplexity(model, data, "validation")["perplexity"])
        if restore_best and history.val_perplexity[-1] <= min(history.val_perplexity):
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.best_step = step

    def objective(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        loss = loss_fn(model, batch)
        return loss, loss, 1

    def step_done(step: int) -> None:
        if after_step is not None:
            after_step()
        for key, value in getattr(loss_fn, "log", {}).items():
            history.extra.setdefault(key, []).append(value)
        stopped[0] = until is not None and bool(until())
        if eval_every and (step % eval_every == 0 or step == steps or stopped[0]):
            validate(step)
            model.train()

    def batches():
        for _ in range(steps):
            if stopped[0]:
                return
            yield data.batch(next(rows))

    if eval_every:
        validate(0)
    model.train()
    rows = shuffled_batches(data.ids["train"], batch_size, seed)
    log = fit_steps(model, batches(), objective, optimizer, device=device, max_grad_norm=max_grad_norm,
                    clip_params=trainable, after_step=step_done, progress=progress, desc=desc, total=steps)
    history.train_loss.extend(log.losses)
    if restore_best:
        model.load_state_dict(best["state"])
    model.eval()
    return history


def distillation_objective(teacher: nn.Module, weight: float = 1.0, temperature: float = 1.0) -> Objective:
    """Knowledge distillation from ``teacher`` (frozen, eval mode) on real sentences:
    :func:`~nlpprune_lessons.losses.distillation_loss` with ``weight`` on the KL term."""
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

    def objective(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        real = batch["real"]
        loss = _bce(discriminator(real), True) + _bce(discriminator(fakes(real.size(0))), False)
        return loss, loss, 1

    rows = shuffled_batches(data.ids["train"], batch_size, seed)
    discriminator.train()
    log = fit_steps(discriminator, ({"real": next(rows)} for _ in range(steps)), objective, optimizer, device=device,
                    progress=progress, desc="discriminator", total=steps)
    losses = log.losses
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
