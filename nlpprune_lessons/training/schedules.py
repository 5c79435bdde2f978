"""Learning-rate schedules: linear warm-up then linear decay (the BERT fine-tuning schedule), and
linear warm-up then inverse square-root decay (the Transformer's, for training from scratch)."""

from __future__ import annotations

SCHEDULES = ("constant", "linear")


def linear_warmup_decay(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor of update ``step`` (0-based): ``(step + 1) / warmup_steps`` during warm-up (the
    first update already gets ``1 / warmup_steps``, the last warm-up update the full rate), then linear
    decay from 1 to 0 at ``total_steps`` (the BERT fine-tuning schedule; transformers'
    ``get_linear_schedule_with_warmup`` starts at 0 instead, wasting the first update)."""
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} and {total_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def inverse_sqrt(step: int, warmup_steps: int) -> float:
    """Learning-rate factor of update ``step`` (0-based) in Vaswani et al.'s schedule, scaled to peak at
    1: ``(step + 1) / warmup_steps`` during warm-up, then ``sqrt(warmup_steps / (step + 1))``. It needs
    no total step count, so a run can stop on a time budget."""
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive int, got {warmup_steps!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return (warmup_steps / (step + 1)) ** 0.5
