"""Checks for the exercises of lesson 05 (text GAN pruning)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.lessons.exercises.protocol import (
    compare_numbers,
    compare_tensors,
    exercise,
    require,
    require_callable,
)

__all__ = ["check_distinct_n", "check_mask_prox_step", "check_straight_through_gumbel"]


@exercise("05.1", "distinct-n")
def check_distinct_n(distinct: Callable[[Sequence[Sequence[str]], int], float]) -> str:
    """Exercise 05.1: ``distinct(sentences, n)`` = distinct n-grams / all n-grams of the whole set, as
    :func:`~nlpprune_lessons.metrics.distinct_n` computes it."""
    from nlpprune_lessons.metrics import distinct_n

    require_callable(distinct, "distinct")
    cases = [([["a", "b", "a"], ["a", "b"]], 1), ([["a", "b", "a"], ["a", "b"]], 2),
             ([["the", "cat", "sat"], ["the", "cat", "ran"]], 2), ([["a"] * 5], 1), ([["x", "y"]], 3),
             ([["a", "b", "c", "d"], ["b", "c"], ["x"]], 2)]
    for sentences, n in cases:
        compare_numbers(distinct([list(s) for s in sentences], n), distinct_n(sentences, n),
                        f"for the sentences {sentences} and n={n}, distinct-n",
                        "Collect the n-grams of every sentence (tuples of n consecutive tokens; none in a sentence "
                        "shorter than n) into one list for the whole set, then divide the number of distinct ones "
                        "by the number of all of them (0 if there are none). An average of per-sentence ratios "
                        "weighs a short sentence like a long one.", rel=1e-9)
    return "distinct-n over the whole set, as nlpprune_lessons.metrics.distinct_n computes it."


def _gumbel_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(uniform))


@exercise("05.2", "straight-through Gumbel-softmax")
def check_straight_through_gumbel(st_gumbel_softmax: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """Exercise 05.2: ``st_gumbel_softmax(logits, gumbel, tau)`` = one straight-through Gumbel-softmax
    sample over the last dimension with the noise given: the one-hot row of the argmax of
    ``logits + gumbel`` forward, the gradient of ``softmax((logits + gumbel) / tau)`` backward. Compared
    with :func:`~nlpprune_lessons.models.gan.straight_through_gumbel_softmax` (which equals
    ``F.gumbel_softmax(hard=True)`` given the same noise): the value, then the gradient of a random
    linear function of the sample with respect to the logits."""
    from nlpprune_lessons.models.gan import straight_through_gumbel_softmax

    require_callable(st_gumbel_softmax, "st_gumbel_softmax")
    hint_value = ("Forward, the sample is exact: a one-hot row with its 1 at the argmax of logits + gumbel "
                  "(dividing by tau does not move the argmax).")
    hint_grad = ("Backward, the gradient must be that of the soft sample softmax((logits + gumbel) / tau), while "
                 "the value stays the one-hot sample. A tensor's value and its gradient can come from different "
                 "terms: a detached term adds to the value and passes no gradient.")
    generator = torch.Generator().manual_seed(5)
    for shape, tau in [((4, 7), 1.0), ((3, 5), 0.5), ((2, 3, 6), 2.0)]:
        where = f"logits of shape {shape}, tau {tau}"
        logits = (torch.randn(shape, generator=generator) * 2).requires_grad_(True)
        gumbel = _gumbel_noise(shape, generator)
        weights = torch.randn(shape, generator=generator)
        expected = straight_through_gumbel_softmax(logits, gumbel, tau)
        (expected_grad,) = torch.autograd.grad((expected * weights).sum(), logits)
        mine = logits.detach().clone().requires_grad_(True)
        got = st_gumbel_softmax(mine, gumbel.clone(), tau)
        compare_tensors(got, expected, f"{where}: the sample's value", hint_value, atol=1e-6)
        require(got.requires_grad and got.grad_fn is not None,
                f"{where}: your sample carries no gradient back to the logits. {hint_grad}")
        (grad,) = torch.autograd.grad((got * weights).sum(), mine, allow_unused=True)
        require(grad is not None, f"{where}: your sample's value does not depend on the logits. {hint_grad}")
        compare_tensors(grad, expected_grad, f"{where}: the gradient of sum(weights * sample) with respect to the logits",
                        hint_grad, atol=1e-6)
    return ("an exact sample forward, the relaxed sample's gradient backward: what F.gumbel_softmax(hard=True) does "
            "with the noise it draws, and what the generator's adversarial updates use.")


@exercise("05.3", "proximal step on unit masks")
def check_mask_prox_step(prox_step: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> str:
    """Exercise 05.3: ``prox_step(mask, grad, lr, l1)`` = one proximal gradient step on unit masks ``m >= 0``
    with the penalty ``l1 * sum(m)``: a gradient step ``mask - lr * grad``, then the proximal step of the
    penalty on ``m >= 0`` (every mask decreases by ``lr * l1``; one that would end below 0 is set to 0).
    Compared with a gradient step followed by the library's
    :meth:`~nlpprune_lessons.structured.adversarial.UnitMaskedLM.shrink`, layer by layer."""
    from nlpprune_lessons.models.rnn import RNNLanguageModel
    from nlpprune_lessons.structured.adversarial import UnitMaskedLM

    require_callable(prox_step, "prox_step")
    hint = ("First the gradient step on the loss: mask - lr * grad. Then the penalty's proximal step: every mask "
            "decreases by lr * l1, and masks live on m >= 0, so none may end below 0, not even one the gradient step "
            "already took below 0 (a plain subgradient step of the penalty would overshoot 0 and oscillate around "
            "it instead).")
    masked = UnitMaskedLM(RNNLanguageModel(vocab_size=11, embed_dim=4, hidden_size=8, num_layers=2))
    generator = torch.Generator().manual_seed(7)
    zeros = total = 0
    for lr, l1 in [(0.1, 2.0), (0.05, 0.5), (0.2, 1.0)]:
        starts, grads = [], []
        with torch.no_grad():
            for mask in masked.masks:
                start = torch.rand(mask.numel(), generator=generator) * 1.2
                start[::3] = 0.0  # some masks already switched off
                starts.append(start)
                grads.append(torch.randn(mask.numel(), generator=generator) * 3)
                mask.copy_(start - lr * grads[-1])
            masked.shrink(lr * l1)
        for layer, (start, grad, mask) in enumerate(zip(starts, grads, masked.masks)):
            got = prox_step(start.clone(), grad.clone(), lr, l1)
            compare_tensors(got, mask.detach(), f"layer {layer}'s masks after one step with lr {lr} and l1 {l1}", hint,
                            atol=1e-6)
            zeros += int((mask == 0).sum())
            total += mask.numel()
    return (f"{zeros} of the {total} masks tried ended exactly at 0, including masks the loss's gradient pushed below "
            "0; masks at 0 leave only when the gradient lifts them by more than the penalty. That is why the units "
            "switched off can be removed, not just made small.")
