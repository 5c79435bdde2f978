"""Training a translation encoder-decoder from scratch (lesson 10) in the course's one optimisation
loop (:func:`~nlpprune_lessons.training.loop.fit_steps`): AdamW with Vaswani et al.'s warm-up and
inverse square-root decay, label smoothing, gradient clipping, a validation loss every few hundred
steps, and a stop on a step count or on a wall-clock budget (designs are compared at equal time)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.models.seq2seq import Seq2SeqTransformer, label_smoothed_loss
from nlpprune_lessons.training.loop import fit_steps
from nlpprune_lessons.training.schedules import inverse_sqrt


@dataclass
class TranslatorHistory:
    """What :func:`train_translator` saw: the loss of every step, the validation loss (per target token,
    no smoothing) at ``validation_steps``, target tokens per second, and the run's seconds."""

    step_loss: list[float] = field(default_factory=list)
    validation_steps: list[int] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    target_tokens: int = 0
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.step_loss)

    @property
    def tokens_per_second(self) -> float:
        return self.target_tokens / self.seconds if self.seconds else 0.0


@torch.no_grad()
def translation_loss(model: Seq2SeqTransformer, batches: Sequence[dict]) -> float:
    """Mean cross-entropy per target token (no label smoothing) of ``model`` on ``batches``; the model's
    mode is restored afterwards."""
    if not batches:
        raise ValueError("batches is empty")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        logits = model(batch["source"].to(device), batch["target_in"].to(device))
        target = batch["target_out"].to(device)
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                   ignore_index=model.config.pad_id, reduction="sum").item()
        count += int((target != model.config.pad_id).sum())
    model.train(was_training)
    return total / count


def train_translator(model: Seq2SeqTransformer, epoch_batches: Callable[[int], Sequence[dict]],
                     validation_batches: Sequence[dict], *, lr: float = 1e-3, warmup_steps: int = 400,
                     smoothing: float = 0.1, max_grad_norm: float = 1.0, max_steps: int | None = None,
                     seconds: float | None = None, validate_every: int = 200, progress: bool = True,
                     device: torch.device | None = None) -> TranslatorHistory:
    """Train ``model`` in place on ``epoch_batches(epoch)`` (fresh shuffled batches each epoch, e.g. from
    :func:`~nlpprune_lessons.text.batching.translation_batches`) until ``max_steps`` steps or ``seconds``
    of training (whichever comes first; one of them is required), with the validation loss every
    ``validate_every`` steps and at the end (the time budget includes validation). The model keeps its last weights (a from-scratch translator
    is still improving when a CPU budget ends)."""
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model must be a Seq2SeqTransformer, got {type(model).__name__}")
    if max_steps is None and seconds is None:
        raise ValueError("give max_steps or seconds (or both): training needs an end")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    if seconds is not None and not (isinstance(seconds, (int, float)) and 0 < seconds < math.inf):
        raise ValueError(f"seconds must be a positive number or None, got {seconds!r}")
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(validate_every, bool) or not isinstance(validate_every, int) or validate_every < 1:
        raise ValueError(f"validate_every must be a positive int, got {validate_every!r}")
    device = device or config.get_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.98),
                                  weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: inverse_sqrt(step, warmup_steps))
    history = TranslatorHistory()
    start = time.perf_counter()

    def stream() -> Iterator[dict]:
        served = 0
        for epoch in itertools.count():
            batches = epoch_batches(epoch)
            if not batches:
                raise ValueError(f"epoch_batches({epoch}) gave no batches")
            for batch in batches:
                if (max_steps is not None and served >= max_steps) or \
                        (seconds is not None and time.perf_counter() - start >= seconds):
                    return
                served += 1
                history.target_tokens += int((batch["target_out"] != model.config.pad_id).sum())
                yield batch

    def objective(batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits = model(batch["source"], batch["target_in"])
        loss = label_smoothed_loss(logits, batch["target_out"], model.config.pad_id, smoothing)
        return loss, loss.detach(), int((batch["target_out"] != model.config.pad_id).sum())

    def validate(step: int) -> None:
        if step % validate_every == 0:
            history.validation_steps.append(step)
            history.validation_loss.append(translation_loss(model, validation_batches))

    log = fit_steps(model, stream(), objective, optimizer, device=device, max_grad_norm=max_grad_norm,
                    scheduler=scheduler, after_step=validate, progress=progress, desc="translator steps",
                    total=max_steps)
    history.step_loss = log.losses
    history.seconds = time.perf_counter() - start
    if not history.validation_steps or history.validation_steps[-1] != history.steps:
        history.validation_steps.append(history.steps)
        history.validation_loss.append(translation_loss(model, validation_batches))
    return history
