"""The fit loop of classifiers (RNN or transformers encoder) and RNN language models: AdamW, optional
warm-up/decay schedule, distillation, penalties and per-step hooks (a pruner), validation each
epoch, early stopping and the best epoch's weights."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from nlpprune_lessons.core import config
from nlpprune_lessons.core.batch import detach_state, to_device
from nlpprune_lessons.core.checks import check_warmup_ratio
from nlpprune_lessons.evaluate import evaluate_classifier, evaluate_language_model
from nlpprune_lessons.losses import (
    check_distillation_settings,
    check_layer_map,
    classifier_logits,
    distillation_loss,
    hidden_state_loss,
)
from nlpprune_lessons.text.streams import batchify, bptt_batches, num_bptt_windows
from nlpprune_lessons.training.schedules import SCHEDULES, linear_warmup_decay


@dataclass
class History:
    """Per-epoch curves of one training run."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # classifiers
    val_perplexity: list[float] = field(default_factory=list)  # language models
    step_loss: list[float] = field(default_factory=list)  # training loss of every optimiser step (classifiers)
    step_lr: list[float] = field(default_factory=list)  # learning rate (first group) of every step (classifiers)
    best_epoch: int = -1  # 0-based epoch whose weights the model holds at the end
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def _encoder_forward(model: nn.Module, batch: dict[str, torch.Tensor], hidden: bool):
    """``(logits, hidden_states)`` of a transformers classifier; ``hidden_states`` (embeddings output,
    then every layer's) only when ``hidden``."""
    if not hidden:
        return classifier_logits(model, batch), None
    if "attention_mask" not in batch:
        raise ValueError("hidden-state distillation needs a transformers model and batches with attention_mask")
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    return out.logits, out.hidden_states


def _check_fit_args(epochs: int, lr: float, patience: int | None) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be None or >= 1, got {patience}")


def _fit(model, epochs, patience, progress, desc, train_epoch, validate, history, restore_best) -> History:
    """The epoch loop shared by both tasks: validate each epoch, stop early, keep the best weights
    (or, with ``restore_best=False``, the last epoch's)."""
    best_loss, best_state, stale = float("inf"), None, 0
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        history.train_loss.append(train_epoch())
        val = validate()
        history.val_loss.append(val["loss"])
        for key, values in (("accuracy", history.val_accuracy), ("perplexity", history.val_perplexity)):
            if key in val:
                values.append(val[key])
        bar.set_postfix({"train_loss": f"{history.train_loss[-1]:.3f}",
                         **{f"val_{k}": f"{v:.3f}" for k, v in val.items() if k != "loss"}})
        if val["loss"] < best_loss:
            best_loss, best_state, stale = val["loss"], _state_copy(model) if restore_best else None, 0
            history.best_epoch = epoch
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if restore_best:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.val_loss) - 1
    history.seconds = time.perf_counter() - start
    return history


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    # state_dict() + clone rather than deepcopy(model): a module with pruning masks attached
    # cannot be deep-copied (its effective weights are not graph leaves).
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class StepLog:
    """What :func:`fit_steps` saw: per optimiser step, the reported loss, the learning rate of the
    first parameter group (before the step) and how many items (examples or tokens) the loss averaged."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def mean_loss(self) -> float:
        """The item-weighted mean of the reported losses (summed in step order)."""
        total, count = 0.0, 0
        for loss, n in zip(self.losses, self.counts):
            total += loss * n
            count += n
        return total / count


#: ``objective(batch) -> (loss to minimise, loss to report, items it averaged)``.
StepObjective = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor, int]]


def fit_steps(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    objective: StepObjective,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    max_grad_norm: float | None = None,
    clip_params: Iterable[torch.Tensor] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    after_step: Callable[[int], object] | None = None,
    progress: bool = True,
    desc: str = "steps",
    total: int | None = None,
) -> StepLog:
    """The course's one optimisation loop; every trainer (classifiers, RNN language models, text
    generators, causal LMs) runs its steps here. For each batch (moved to ``device``): the objective,
    gradients (scaled by a CUDA mixed-precision ``scaler`` when given), clipping of ``clip_params``
    (default: all of ``model``'s) to ``max_grad_norm``, the optimiser step, the ``scheduler`` step,
    then ``after_step(i)`` with the 1-based step count of this call (e.g. a pruner or a proximal update)."""
    clip = list(clip_params) if clip_params is not None else None
    log = StepLog()
    bar = tqdm(batches, desc=desc, total=total, disable=not progress, leave=False)
    for step, batch in enumerate(bar, start=1):
        batch = to_device(batch, device)
        train_loss, loss, count = objective(batch)
        log.lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(train_loss).backward()
            scaler.unscale_(optimizer)
        else:
            train_loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(clip if clip is not None else model.parameters(), max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        log.losses.append(loss.item())
        log.counts.append(count)
        if after_step is not None:
            after_step(step)
    return log


def _optimizer(model: nn.Module, lr: float, weight_decay: float, param_groups, fused: bool = False
               ) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; ``param_groups`` (each a dict with ``params`` and its own
    settings, e.g. movement scores with a larger lr) take their parameters out of the default group.
    ``fused``: PyTorch's fused AdamW kernel (CPU and CUDA; same update, different rounding)."""
    for group in param_groups or []:
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError("param_groups entries must be dicts with a 'params' list, as torch.optim expects")
    groups = [{**g, "params": list(g["params"])} for g in (param_groups or [])]
    claimed = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    return torch.optim.AdamW([{"params": rest}, *groups], lr=lr, weight_decay=weight_decay, fused=fused or None)


def _check_distillation(teacher, kd_temperature: float, kd_weight: float, kd_hidden_map, kd_hidden_weight) -> None:
    if teacher is not None and not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module or None, got {type(teacher).__name__}")
    check_distillation_settings(kd_temperature, kd_weight, prefix="kd_")
    if kd_hidden_map is None:
        return
    if teacher is None:
        raise ValueError("kd_hidden_map needs a teacher")
    check_layer_map(kd_hidden_map)
    if isinstance(kd_hidden_weight, bool) or not isinstance(kd_hidden_weight, (int, float)) or kd_hidden_weight <= 0:
        raise ValueError(f"kd_hidden_weight must be a number > 0 when kd_hidden_map is given, got {kd_hidden_weight!r}")


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
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    on_step: Callable[[int], object] | None = None,
    restore_best: bool = True,
    schedule: str = "constant",
    warmup_ratio: float = 0.0,
    teacher: nn.Module | None = None,
    kd_temperature: float = 2.0,
    kd_weight: float = 0.5,
    kd_hidden_map: Mapping[int, int] | None = None,
    kd_hidden_weight: float = 1.0,
    param_groups: Sequence[dict] | None = None,
    mixed_precision: bool | None = None,
    fused_optimizer: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train a classifier (RNN or transformers encoder) with AdamW and cross-entropy, validating after
    each epoch.

    - ``schedule``: ``"constant"`` lr, or ``"linear"``: warm-up over ``warmup_ratio`` of all steps, then
      linear decay to 0 (:func:`linear_warmup_decay`).
    - ``teacher``: knowledge distillation from a frozen teacher; the loss is
      :func:`distillation_loss` with ``kd_temperature`` and ``kd_weight`` (its share vs cross-entropy).
      ``kd_hidden_map`` = {student hidden-state index: teacher's} adds ``kd_hidden_weight`` times
      :func:`hidden_state_loss` (transformers encoders; e.g. a student with dropped layers).
    - ``penalty(model)`` is added to the loss (e.g. an L1 term); ``on_step(step)`` runs after every
      optimiser step (e.g. a gradual pruner); ``param_groups`` give some parameters their own settings.
    - ``mixed_precision``: float16 autocast with a gradient scaler; default on for CUDA only (on CPU
      it is refused: float16 matmuls there are slow and bfloat16 changes results).
    - ``fused_optimizer``: AdamW's fused kernel. The same update rule, rounded differently (results are
      not bit-identical to the default's); on a CPU its step over MiniLM's 22M parameters is several
      times faster than the default's, which saves most of what training the embedding table costs per step.

    - ``device``: where training runs (default :func:`~nlpprune_lessons.core.config.get_device`); the
      model and the teacher are moved there and stay there.

    Early stopping: after ``patience`` epochs without a lower validation loss, training stops. The
    model ends with its best validation epoch's weights, or with the last epoch's when
    ``restore_best=False`` (needed when ``on_step`` prunes: an earlier epoch's state would bring back
    its lower sparsity).
    """
    _check_fit_args(epochs, lr, patience)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    check_warmup_ratio(warmup_ratio)
    if warmup_ratio and schedule != "linear":
        raise ValueError(f"warmup_ratio only applies to schedule='linear', got schedule={schedule!r}")
    _check_distillation(teacher, kd_temperature, kd_weight, kd_hidden_map, kd_hidden_weight)
    device = config.get_device(str(device)) if device is not None else config.get_device()
    if mixed_precision is None:
        mixed_precision = device.type == "cuda"
    if mixed_precision and device.type != "cuda":
        raise ValueError("mixed_precision is only supported on CUDA devices")
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    if not isinstance(fused_optimizer, bool):
        raise TypeError(f"fused_optimizer must be True or False, got {fused_optimizer!r}")
    optimizer = _optimizer(model, lr, weight_decay, param_groups, fused_optimizer)
    scheduler = None
    if schedule == "linear":  # needs the number of steps: train_loader must have a length
        total_steps = epochs * len(train_loader)
        warmup = round(warmup_ratio * total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: linear_warmup_decay(step, total_steps, warmup))
    scaler = torch.amp.GradScaler("cuda") if mixed_precision else None
    step = epoch = 0
    history = History()

    def objective(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.float16, enabled=mixed_precision):
            hidden = kd_hidden_map is not None
            logits, student_hidden = _encoder_forward(model, batch, hidden)
            loss = nn.functional.cross_entropy(logits.float(), batch["labels"])
            if teacher is None:
                return loss, loss
            with torch.no_grad():
                teacher_logits, teacher_hidden = _encoder_forward(teacher, batch, hidden)
            objective = distillation_loss(logits.float(), teacher_logits.float(), batch["labels"],
                                          temperature=kd_temperature, weight=kd_weight)
            if hidden:
                objective = objective + kd_hidden_weight * hidden_state_loss(
                    [h.float() for h in student_hidden], [h.float() for h in teacher_hidden], kd_hidden_map,
                    batch["attention_mask"])
            return objective, loss

    def step_objective(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        train_objective, loss = objective(batch)
        if penalty is not None:
            train_objective = train_objective + penalty(model)
        return train_objective, loss, len(batch["labels"])

    def train_epoch() -> float:
        nonlocal step, epoch
        sampler = getattr(train_loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):  # same batch order for the same seed, whatever ran before
            sampler.set_epoch(epoch)
        epoch += 1
        offset = step
        log = fit_steps(model, train_loader, step_objective, optimizer, device=device, max_grad_norm=max_grad_norm,
                        scheduler=scheduler, scaler=scaler, progress=progress, desc="batches",
                        after_step=None if on_step is None else lambda i: on_step(offset + i))
        step += len(log.losses)
        history.step_lr.extend(log.lrs)
        history.step_loss.extend(log.losses)
        return log.mean_loss

    return _fit(model, epochs, patience, progress, "epochs", train_epoch,
                lambda: evaluate_classifier(model, val_loader, device), history, restore_best)


def train_language_model(
    model: nn.Module,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    *,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 32,
    bptt: int = 35,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 0.25,
    patience: int | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    on_step: Callable[[int], object] | None = None,
    restore_best: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train a language model by truncated backpropagation through time (TBPTT).

    The training stream is cut into ``batch_size`` rows and read in windows of ``bptt`` tokens; the
    recurrent state flows from one window to the next but gradients stop at the window edge.
    Validation perplexity each epoch; hooks, early stopping and ``device`` (the model is moved there)
    as in :func:`train_classifier`.
    """
    _check_fit_args(epochs, lr, patience)
    device = config.get_device(str(device)) if device is not None else config.get_device()
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    data = batchify(train_ids, batch_size)
    step = 0

    def train_epoch() -> float:
        nonlocal step
        state = None  # the recurrent state flows across windows; gradients stop at each window's edge

        def objective(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
            nonlocal state
            logits, state = model(batch["input_ids"], detach_state(state))
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1))
            return (loss + penalty(model) if penalty is not None else loss), loss, batch["targets"].numel()

        offset = step
        log = fit_steps(model, bptt_batches(data, bptt), objective, optimizer, device=device,
                        max_grad_norm=max_grad_norm, progress=progress, desc="windows",
                        total=num_bptt_windows(data, bptt),
                        after_step=None if on_step is None else lambda i: on_step(offset + i))
        step += len(log.losses)
        return log.mean_loss

    return _fit(model, epochs, patience, progress, "epochs", train_epoch,
                lambda: evaluate_language_model(model, val_ids, device=device), History(), restore_best)
