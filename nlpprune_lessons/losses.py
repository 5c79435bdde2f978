"""Training objectives shared by every loop: classification and next-token cross-entropy, knowledge
distillation from a teacher's logits (Hinton et al., 2015) and from its hidden states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def classifier_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits ``[B, classes]`` of a classifier on a batch: a transformers model when the batch has an
    ``attention_mask`` (the RNNs of lessons 02-04 read ``lengths`` instead)."""
    if "attention_mask" in batch:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    if hasattr(model, "config") and hasattr(model, "base_model"):  # lengths would be taken for the mask
        raise ValueError("a transformers model needs an 'attention_mask' in the batch (see encoder_loader)")
    return model(batch["input_ids"], batch.get("lengths"))


def classification_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of a classifier on a batch with ``input_ids``, ``lengths`` or
    ``attention_mask``, and ``labels``."""
    return nn.functional.cross_entropy(classifier_logits(model, batch), batch["labels"])


def lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy of a language model on a batch with ``input_ids``, ``targets``."""
    logits, _ = model(batch["input_ids"])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1))


def default_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """:func:`classification_loss` for batches with ``labels``, :func:`lm_loss` for ``targets``."""
    if "labels" in batch:
        return classification_loss(model, batch)
    if "targets" in batch:
        return lm_loss(model, batch)
    raise ValueError(f"cannot tell the task from batch keys {sorted(batch)}; pass a loss_fn")


def check_distillation_settings(temperature: float, weight: float, prefix: str = "") -> None:
    """The distillation temperature must be > 0 and the weight in [0, 1] (``prefix`` names the arguments)."""
    if not temperature > 0:
        raise ValueError(f"{prefix}temperature must be > 0, got {temperature}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{prefix}weight must be in [0, 1] (the share of the distillation term), got {weight}")


def check_layer_map(layer_map) -> None:
    """A hidden-state map must be a non-empty {student layer index: teacher layer index} of ints >= 0."""
    if not isinstance(layer_map, Mapping) or not layer_map:
        raise ValueError(f"layer_map must be a non-empty dict {{student index: teacher index}}, got {layer_map!r}")
    for key, value in layer_map.items():
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (key, value)):
            raise ValueError(f"layer_map entries must be ints >= 0 (hidden-state indices), got {key!r}: {value!r}")


def hidden_state_loss(
    student_hidden: Sequence[torch.Tensor],
    teacher_hidden: Sequence[torch.Tensor],
    layer_map: Mapping[int, int],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Hidden-state distillation (as in TinyBERT and CoFi): the mean over ``layer_map`` = {student
    index: teacher index} of the mean squared error between the two hidden states ``[B, T, H]``, over
    the real (non-padding) tokens of ``attention_mask``. Index 0 is the embeddings' output, ``i`` is
    layer ``i``'s (transformers' ``hidden_states``). The teacher gets no gradient."""
    check_layer_map(layer_map)
    for index, pool, what in [(max(layer_map), student_hidden, "student"),
                              (max(layer_map.values()), teacher_hidden, "teacher")]:
        if index >= len(pool):
            raise ValueError(f"layer_map names {what} hidden state {index}, but there are {len(pool)} (0..{len(pool) - 1})")
    mask = attention_mask.bool()
    losses = [nn.functional.mse_loss(student_hidden[s][mask], teacher_hidden[t].detach()[mask])
              for s, t in layer_map.items()]
    return torch.stack(losses).mean()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    weight: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015) for logits ``[..., C]`` from any training loop:

    ``weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - weight) * CE(student, targets)``,

    averaged over positions; positions whose target is ``ignore_index`` are left out of both terms
    (padding). ``targets`` may be omitted only when ``weight == 1``. The teacher gets no gradient.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.ndim < 2:
        raise ValueError(f"student and teacher logits must have the same shape [..., classes], got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    check_distillation_settings(temperature, weight)
    if targets is None and weight < 1.0:
        raise ValueError("targets are needed when weight < 1 (the cross-entropy term)")
    classes = student_logits.size(-1)
    student, teacher = student_logits.reshape(-1, classes), teacher_logits.detach().reshape(-1, classes)
    keep = torch.ones(student.size(0), dtype=torch.bool, device=student.device)
    if targets is not None:
        if targets.shape != student_logits.shape[:-1]:
            raise ValueError(f"targets must have shape {tuple(student_logits.shape[:-1])}, got {tuple(targets.shape)}")
        keep = targets.reshape(-1) != ignore_index
    if not keep.any():
        raise ValueError("every position is ignored: nothing to distil")
    log_student = nn.functional.log_softmax(student[keep] / temperature, dim=-1)
    log_teacher = nn.functional.log_softmax(teacher[keep] / temperature, dim=-1)
    kd = nn.functional.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature ** 2
    if weight == 1.0:
        return kd
    return weight * kd + (1 - weight) * nn.functional.cross_entropy(student[keep], targets.reshape(-1)[keep])
