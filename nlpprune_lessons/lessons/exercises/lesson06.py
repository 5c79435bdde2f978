"""Checks for the exercises of lesson 06 (BERT fine-tuning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nlpprune_lessons.lessons.exercises.protocol import (
    compare_numbers,
    compare_tensors,
    exercise,
    require_callable,
)

__all__ = ["check_attention_mask", "check_lr_factor", "check_masked_attention"]


@exercise("06.1", "attention mask")
def check_attention_mask(mask_from_lengths: Callable[[torch.Tensor, int], torch.Tensor]) -> str:
    """Exercise 06.1: ``mask_from_lengths(lengths, width)`` -> ``[B, width]`` with 1 on each row's first
    ``lengths[b]`` positions (real tokens) and 0 after (padding), as the course's loaders
    (:func:`~nlpprune_lessons.models.transformers.encoder_loader`) build it."""
    from nlpprune_lessons.models.transformers import encoder_loader

    require_callable(mask_from_lengths, "mask_from_lengths")
    hint = ("Row b has lengths[b] real tokens followed by padding: 1 on positions 0 .. lengths[b] - 1, 0 on "
            "positions lengths[b] .. width - 1 (a position equal to the length is already padding).")
    generator = torch.Generator().manual_seed(0)
    cases = [(torch.tensor([3, 1, 4]), 4), (torch.tensor([2]), 5), (torch.tensor([6, 6]), 6),
             (torch.randint(1, 9, (5,), generator=generator), 9)]
    for lengths, width in cases:
        rows = [list(range(1, int(n) + 1)) for n in lengths]  # token ids 1.., padded with 0 by the loader
        batch = next(iter(encoder_loader(rows, [0] * len(rows), pad_id=0, batch_size=len(rows), shuffle=False)))
        by_length = {int(n): row.long() for n, row in zip(batch["lengths"], batch["attention_mask"])}  # rows bucketed
        expected = torch.zeros(len(rows), width, dtype=torch.long)
        for b, n in enumerate(lengths.tolist()):
            expected[b, :by_length[n].numel()] = by_length[n]
        got = mask_from_lengths(lengths.clone(), width)
        compare_tensors(got.long() if torch.is_tensor(got) else got, expected,
                        f"for lengths {lengths.tolist()} and width {width}, the mask", hint)
    return "1 marks real tokens, 0 padding, as the course's loaders build it; attention ignores the 0 positions."


@exercise("06.2", "attention with a padding mask")
def check_masked_attention(masked_attention: Callable[..., torch.Tensor]) -> str:
    """Exercise 06.2: ``masked_attention(q, k, v, attention_mask)``: scaled dot-product attention of
    ``q, k, v`` ``[B, heads, T, d]`` in which no query gives weight to a padded key
    (``attention_mask`` ``[B, T]``, 1 = real token, 0 = padding). Compared with
    ``torch.nn.functional.scaled_dot_product_attention`` (boolean mask), first without padding, then
    with it; then the values at padded positions are changed, which must change no output."""
    require_callable(masked_attention, "masked_attention")
    hint_scale = ("The weights are softmax(q k^T / sqrt(d)) over the keys (the last dimension), d the size of one "
                  "head's vectors; the output is the weights times v.")
    hint_mask = ("Padded keys must get weight exactly 0: before the softmax, put -inf (or the dtype's most "
                 "negative number) in the scores of every key whose mask is 0, for every query and head.")
    generator = torch.Generator().manual_seed(3)
    for batch, heads, length, dim in [(2, 3, 5, 4), (3, 2, 7, 8)]:
        q, k, v = (torch.randn(batch, heads, length, dim, generator=generator) for _ in range(3))
        where = f"q, k, v of shape {(batch, heads, length, dim)}"
        full = torch.ones(batch, length, dtype=torch.long)
        expected = F.scaled_dot_product_attention(q, k, v)
        got = masked_attention(q.clone(), k.clone(), v.clone(), full)
        compare_tensors(got, expected, f"{where}, no padding: the output", hint_scale)
        lengths = torch.randint(1, length + 1, (batch,), generator=generator)
        lengths[0] = max(1, length - 2)  # at least one row with padding
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool()[:, None, None, :])
        got = masked_attention(q.clone(), k.clone(), v.clone(), mask.clone())
        compare_tensors(got, expected, f"{where}, lengths {lengths.tolist()}: the output", hint_mask)
        noisy = v.masked_fill(~mask.bool()[:, None, :, None], 1e3)  # values of padded positions changed
        compare_tensors(masked_attention(q.clone(), k.clone(), noisy, mask.clone()), expected,
                        f"{where}, lengths {lengths.tolist()}, values at padded positions set to 1000: the output",
                        hint_mask)
    return ("your attention equals F.scaled_dot_product_attention with the padding mask: padded keys get weight 0, "
            "so whatever sits in the padding changes no output.")


@exercise("06.3", "warm-up and decay")
def check_lr_factor(lr_factor: Callable[[int, int, int], float]) -> str:
    """Exercise 06.3: ``lr_factor(step, total_steps, warmup_steps)``, the learning-rate factor of the
    0-based optimiser step ``step``: a linear warm-up whose first step already uses ``1 / warmup_steps``
    and whose last uses 1, then a linear decay that reaches 0 at ``total_steps``. Compared with
    :func:`~nlpprune_lessons.training.schedules.linear_warmup_decay` at every step from 0 to
    ``total_steps``, boundaries included."""
    from nlpprune_lessons.training.schedules import linear_warmup_decay

    require_callable(lr_factor, "lr_factor")
    for total, warmup in [(10, 2), (100, 10), (7, 0), (5, 5), (1, 1), (30, 3)]:
        for step in range(total + 1):
            expected = linear_warmup_decay(step, total, warmup)
            if step < warmup:
                hint = ("During warm-up the factor rises in equal steps of 1 / warmup_steps, and step counts the update "
                        "being taken: the first update (step 0) already gets 1 / warmup_steps of the rate (a factor of "
                        "0 there would waste it, as transformers' get_linear_schedule_with_warmup does), the last "
                        "warm-up update (step warmup_steps - 1) the full rate.")
            else:
                hint = ("After warm-up the factor falls linearly from 1 at step warmup_steps to 0 at step total_steps, "
                        "so by 1 / (total_steps - warmup_steps) per step; with no warm-up it starts at 1 at step 0; "
                        "when warmup_steps equals total_steps it is 0 at step total_steps; it never goes below 0.")
            compare_numbers(lr_factor(step, total, warmup), expected,
                            f"with total_steps {total} and warmup_steps {warmup}, the factor at step {step}", hint,
                            rel=1e-9, abs_tol=1e-12)
    return ("linear warm-up from 1/warmup_steps to 1, then linear decay to 0 at total_steps, as the course's "
            "training loop applies it through torch.optim.lr_scheduler.LambdaLR.")
