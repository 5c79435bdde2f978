"""Recovery after one-shot pruning of a causal LM (lesson 09): a short fine-tune on text with the
pruned zeros kept.

``prune_causal_lm`` writes zeros into the weights instead of attaching ``torch.nn.utils.prune`` masks
(masks would triple the decoder's 0.4 GB). Here the zeros are kept by a boolean mask per pruned
weight that multiplies its gradient: an entry whose gradient is always zero stays exactly zero under
AdamW (its moments stay zero, so its update is zero, and decoupled weight decay scales zero to zero).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int, check_positive_number, check_warmup_ratio
from nlpprune_lessons.losses import check_distillation_settings, distillation_loss
from nlpprune_lessons.pruning.calibrated import check_calibration, check_causal_lm
from nlpprune_lessons.pruning.params import default_params
from nlpprune_lessons.training.freezing import frozen_embeddings
from nlpprune_lessons.training.loop import fit_steps
from nlpprune_lessons.training.schedules import linear_warmup_decay


def _zero_keeping_hooks(model: nn.Module) -> tuple[list, int]:
    """Gradient hooks that zero the gradient wherever a prunable weight is zero now; (handles, zeros)."""
    handles, zeros = [], 0
    for module, name in default_params(model):
        weight = getattr(module, name)
        keep = weight.detach() != 0
        zeros += int(keep.numel() - keep.sum())
        handles.append(weight.register_hook(lambda grad, keep=keep: grad * keep))
    return handles, zeros


def fine_tune_causal_lm(
    model: nn.Module,
    train_ids: torch.Tensor,
    *,
    lr: float = 1e-4,
    batch_size: int = 8,
    epochs: int = 1,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    teacher: nn.Module | None = None,
    kd_temperature: float = 1.0,
    kd_weight: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Fine-tune a (pruned) causal LM in place on ``train_ids`` (sequences x tokens) by next-token
    cross-entropy, keeping every zero of its prunable weights (the decoder's Linears) at zero.

    AdamW with linear warm-up and decay over ``epochs`` passes of batches of ``batch_size`` sequences,
    in order (draw the sequences at random places, e.g. with ``nlpprune_lessons.lessons.l09_generation.calibration_ids``).
    The embedding table (tied to the LM head in SmolLM2) stays frozen: it is dense, and its gradient
    and AdamW state would add 340 MB. With a ``teacher`` (the dense model) the loss is
    :func:`~nlpprune_lessons.losses.distillation_loss` of the student's and teacher's logits with
    ``kd_weight`` and ``kd_temperature``. Returns a record: steps, tokens, seconds, the loss of every
    step, the number of trainable parameters, the zeros to keep and the zeros counted afterwards.
    """
    check_causal_lm(model)
    check_calibration(train_ids, getattr(model.config, "vocab_size", None), "train_ids")
    if train_ids.shape[1] < 2:
        raise ValueError(f"train_ids must hold sequences of at least 2 tokens, got {train_ids.shape[1]}")
    check_positive_number(lr, "lr")
    check_positive_int(batch_size, "batch_size", "sequences per step")
    check_positive_int(epochs, "epochs")
    check_warmup_ratio(warmup_ratio)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if max_grad_norm is not None:
        check_positive_number(max_grad_norm, "max_grad_norm")
    if teacher is not None:
        check_distillation_settings(kd_temperature, kd_weight, "kd_")
        teacher.eval()
    with config.seeded(seed):
        device = next(model.parameters()).device
        batches = [train_ids[i:i + batch_size] for i in range(0, len(train_ids), batch_size)]
        total = epochs * len(batches)
        record = {"lr": lr, "batch_size": batch_size, "epochs": epochs, "steps": total,
                  "tokens": epochs * int(train_ids.numel()), "distill": teacher is not None}
        handles, record["zeros_kept"] = _zero_keeping_hooks(model)
        start = time.perf_counter()
        model.train()
        try:
            with frozen_embeddings(model):
                trainable = [p for p in model.parameters() if p.requires_grad]
                record["trainable_parameters"] = sum(p.numel() for p in trainable)
                optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
                warmup = math.floor(warmup_ratio * total)
                scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer, lambda s: linear_warmup_decay(s, total, warmup))

                def objective(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
                    loss = _loss(model, batch["input_ids"], teacher, kd_temperature, kd_weight)
                    return loss, loss, 1

                log = fit_steps(model, ({"input_ids": b} for _ in range(epochs) for b in batches), objective,
                                optimizer, device=device, max_grad_norm=max_grad_norm, clip_params=trainable,
                                scheduler=scheduler, progress=progress, desc="fine-tune", total=total)
                record["step_loss"] = log.losses
                del optimizer
        finally:
            for handle in handles:
                handle.remove()
            model.eval()
        record["seconds"] = time.perf_counter() - start
        record["zeros_after"] = sum(int((getattr(m, n) == 0).sum()) for m, n in default_params(model))
        return record


def _loss(model: nn.Module, ids: torch.Tensor, teacher: nn.Module | None, temperature: float,
          weight: float) -> torch.Tensor:
    """Next-token cross-entropy of ``model`` on ``ids``, or its distillation loss from ``teacher``."""
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    targets = ids[:, 1:]
    if teacher is None:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    with torch.no_grad():
        teacher_logits = teacher(input_ids=ids, use_cache=False).logits[:, :-1]
    return distillation_loss(logits, teacher_logits, targets, temperature=temperature, weight=weight)
