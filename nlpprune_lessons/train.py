"""Training and evaluation loops shared by the lessons (one loop per task, never rewritten)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from . import config
from .metrics import accuracy, macro_f1


@dataclass
class History:
    """Per-epoch curves of one training run."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = -1  # 0-based epoch whose weights the model holds at the end
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    # lengths stay on the CPU: pack_padded_sequence requires it.
    return {k: (v if k == "lengths" else v.to(device)) for k, v in batch.items()}


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, predicted classes and labels for every example, in loader order."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        batch = _to(batch, device)
        logits.append(model(batch["input_ids"], batch["lengths"]).float().cpu())
        labels.append(batch["labels"].cpu())
    model.train(was_training)
    all_logits = torch.cat(logits)
    return all_logits, all_logits.argmax(dim=-1), torch.cat(labels)


def evaluate_classifier(
    model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device | None = None
) -> dict[str, float]:
    """Mean cross-entropy, accuracy and macro-F1 of ``model`` on ``loader``."""
    logits, preds, labels = predict(model, loader, device)
    return {
        "loss": nn.functional.cross_entropy(logits, labels).item(),
        "accuracy": accuracy(preds, labels),
        "f1": macro_f1(preds, labels),
    }


def train_classifier(
    model: nn.Module,
    train_loader: Iterable[dict[str, torch.Tensor]],
    val_loader: Iterable[dict[str, torch.Tensor]],
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    patience: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train with Adam(W) and cross-entropy, validating after each epoch.

    Early stopping: after ``patience`` epochs without a lower validation loss, training stops.
    Either way the model ends with the weights of its best validation epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be None or >= 1, got {patience}")
    device = config.get_device(str(device)) if device is not None else config.get_device()
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    best_loss, best_state, stale = float("inf"), None, 0
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            batch = _to(batch, device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch["input_ids"], batch["lengths"])
            loss = nn.functional.cross_entropy(logits, batch["labels"])
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            total += loss.item() * len(batch["labels"])
            count += len(batch["labels"])
        val = evaluate_classifier(model, val_loader, device)
        history.train_loss.append(total / count)
        history.val_loss.append(val["loss"])
        history.val_accuracy.append(val["accuracy"])
        bar.set_postfix(train_loss=f"{total / count:.3f}", val_acc=f"{val['accuracy']:.3f}")
        if val["loss"] < best_loss:
            best_loss, best_state, stale = val["loss"], copy.deepcopy(model.state_dict()), 0
            history.best_epoch = epoch
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history
