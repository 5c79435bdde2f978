"""Pruning a text generator's hidden units with learned masks (lesson 05).

Adapted from generative adversarial learning for structured pruning (GAL; Lin et al., CVPR 2019):
a soft mask ``m_j >= 0`` scales every use of hidden unit ``j``'s output (its recurrent column, the
next layer's input column or the decoder's column); an L1 penalty, applied as a proximal step
(soft-thresholding, as GAL's FISTA does, here after Adam steps), drives masks to exactly 0. GAL fixes
the penalty and takes the sparsity it gives; to compare methods at equal size, the penalty here rises
linearly during the mask phase, and the phase ends as soon as the target share of every layer's
masks *is* exactly 0, so the units cut are the ones the penalty switched off first, not the lowest of
masks still near 1. How fast it rises is GAL's hyperparameter, chosen on validation. The masked generator learns to match the dense one without labels:
GAL's teacher-matching term (here the KL divergence to the dense model's next-token distribution),
alone or with GAL's adversarial term, a discriminator telling the two output distributions apart
(:class:`OutputAdversary`). Units with zero masks are then removed physically with
:func:`~nlpprune_lessons.structured.rnn.remove_hidden_units`; the other masks are folded into the
weights, so the slim model computes what the masked one did.

:func:`prune_generator` runs one method end to end at a given share of units removed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nlpprune_lessons.losses import distillation_loss, lm_loss
from nlpprune_lessons.models.gan import Discriminator
from nlpprune_lessons.models.rnn import RNNLanguageModel
from nlpprune_lessons.structured.rnn import (
    StackedRNN,
    hidden_unit_importance,
    layer_sizes,
    remove_hidden_units,
    tied_weights,
    units_to_remove,
)
from nlpprune_lessons.text.sentences import IGNORE, SentenceData
from nlpprune_lessons.evaluate import sentence_perplexity
from nlpprune_lessons.training.gan import StepHistory, distillation_objective, train_steps

METHODS = ("l2+mle", "l2+kd", "masks+kd", "masks+kd+adversary")


# --------------------------------------------------------------------------- masks
def _consumer_names(model: RNNLanguageModel) -> list[list[str]]:
    """Per layer, the parameters whose columns read that layer's unit outputs."""
    rnn = model.rnn
    stacked = isinstance(rnn, StackedRNN)

    def name(kind: str, layer: int) -> str:
        return f"rnn.layers.{layer}.{kind}_l0" if stacked else f"rnn.{kind}_l{layer}"

    layers = len(layer_sizes(rnn))
    return [[name("weight_hh", l), name("weight_ih", l + 1) if l + 1 < layers else "decoder.weight"]
            for l in range(layers)]


class UnitMaskedLM(nn.Module):
    """A language model whose hidden units are scaled by learnable masks (one per unit, initially 1).

    ``forward(input_ids, state)`` is the wrapped model's, computed with each unit's outgoing columns
    multiplied by its mask; a unit with mask 0 is cut off from everything downstream. ``model`` keeps
    its own (trainable) weights; ``masks[l]`` is layer ``l``'s mask vector."""

    def __init__(self, model: RNNLanguageModel):
        super().__init__()
        if not isinstance(model, RNNLanguageModel) or not isinstance(model.rnn, (nn.LSTM, nn.GRU, StackedRNN)):
            raise TypeError(f"model must be an RNNLanguageModel, got {type(model).__name__}")
        if model.rnn.bidirectional:
            raise ValueError("unit masks are defined for unidirectional language models only")
        if tied_weights(model):
            raise ValueError("the decoder is tied to the embedding: its columns cannot be masked separately")
        self.model = model
        self._consumers = _consumer_names(model)
        device = model.decoder.weight.device
        self.masks = nn.ParameterList(nn.Parameter(torch.ones(h, device=device)) for h in layer_sizes(model.rnn))

    def weight_parameters(self) -> list[nn.Parameter]:
        """The wrapped model's trainable parameters (everything except the masks)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, input_ids: torch.Tensor, state=None):
        params = dict(self.model.named_parameters())
        for mask, names in zip(self.masks, self._consumers):
            for name in names:
                params[name] = params[name] * mask
        return functional_call(self.model, params, (input_ids, state))

    @torch.no_grad()
    def shrink(self, amount: float) -> None:
        """Proximal step of ``amount * sum(m)`` on ``m >= 0``: every mask decreases by ``amount`` and any
        that would end below 0 is set to 0 (soft-thresholding on the non-negative masks); a mask at 0
        stays there unless a gradient step lifts it."""
        if not amount >= 0:
            raise ValueError(f"amount must be >= 0, got {amount}")
        for mask in self.masks:
            mask.sub_(amount).clamp_(min=0.0)

    def mask_values(self) -> list[torch.Tensor]:
        """Detached CPU copies of the masks, one tensor per layer."""
        return [m.detach().cpu().clone() for m in self.masks]


def units_below(masked: UnitMaskedLM, threshold: float = 0.0) -> dict[int, list[int]]:
    """{layer: units whose mask is <= ``threshold``} (0: the units the penalty switched off exactly)."""
    return {l: torch.nonzero(m <= threshold).flatten().tolist() for l, m in enumerate(masked.mask_values())}


@torch.no_grad()
def fold_unit_masks(masked: UnitMaskedLM, units: Mapping[int, Sequence[int]] | None = None) -> nn.Module:
    """A slim copy of the masked model: ``units`` ({layer: indices}; default: every unit whose mask
    is exactly 0) are removed, the remaining masks multiplied into the columns that read their units.
    It computes what ``masked`` computes with the removed units' masks set to 0."""
    if not isinstance(masked, UnitMaskedLM):
        raise TypeError(f"masked must be a UnitMaskedLM, got {type(masked).__name__}")
    units = units_below(masked) if units is None else units
    model = copy.deepcopy(masked.model)
    params = dict(model.named_parameters())
    for mask, names in zip(masked.masks, masked._consumers):
        for name in names:
            params[name].mul_(mask.detach())
    return remove_hidden_units(model, units)


# --------------------------------------------------------------------------- objectives
class OutputAdversary:
    """GAL's objective for the masked generator (an :data:`~nlpprune_lessons.training.gan.Objective`),
    label-free: on each real batch, the dense ``teacher``'s next-token distributions are "real", the
    masked model's "fake". ``discriminator`` (reading distributions; padded positions zeroed) takes one
    step to tell them apart; the model then minimises ``adv_weight * -log D(fake) + kd_weight *
    KL(teacher || model)`` (GAL's adversarial and teacher-matching terms; no real next tokens used)."""

    def __init__(self, teacher: nn.Module, discriminator: Discriminator, *, adv_weight: float = 1.0,
                 kd_weight: float = 1.0, d_lr: float = 1e-3):
        if adv_weight <= 0 or kd_weight < 0:
            raise ValueError(f"need adv_weight > 0 and kd_weight >= 0, got {adv_weight} and {kd_weight}")
        self.teacher, self.discriminator = teacher.eval(), discriminator
        self.adv_weight, self.kd_weight = adv_weight, kd_weight
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=d_lr)
        self.log: dict[str, float] = {}

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        keep = (batch["targets"] != IGNORE).unsqueeze(-1)
        with torch.no_grad():
            teacher_logits = self.teacher(batch["input_ids"])[0]
            real = F.softmax(teacher_logits, dim=-1) * keep
        logits, _ = model(batch["input_ids"])
        fake = F.softmax(logits, dim=-1) * keep
        d = self.discriminator.train()
        d_real, d_fake = d(real), d(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizer.step()
        d_out = d(fake)
        adv = F.binary_cross_entropy_with_logits(d_out, torch.ones_like(d_out))
        self.log = {"d_loss": d_loss.item(), "d_real": torch.sigmoid(d_real).mean().item(),
                    "d_fake": torch.sigmoid(d_fake).mean().item()}
        loss = self.adv_weight * adv
        if self.kd_weight:
            loss = loss + self.kd_weight * distillation_loss(logits, teacher_logits, batch["targets"], weight=1.0,
                                                             ignore_index=IGNORE)
        return loss


# --------------------------------------------------------------------------- end to end
#: Defaults of :func:`prune_generator`. Weights: Adam at ``lr``. Masks: proximal gradient steps on a
#: momentum average of their gradient divided by its layer's mean magnitude, of size
#: ``mask_travel / mask_steps`` (a mask with its layer's mean gradient could travel ``mask_travel`` over
#: the phase), then soft-thresholding by the step size times the penalty, which rises linearly from 0 at
#: the first mask step to ``l1`` at the cap. A unit whose gradient, relative to its layer's, is below the
#: penalty drifts to 0; with ``mask_travel`` 4 and ``l1`` 2 every unit below about 0.75 of its layer's
#: mean gradient reaches 0 by the cap. ``l1`` may be a list: each value is tried and, among those that
#: switched the target share off, the one whose cut model has the lowest validation perplexity is kept
#: (GAL's search of its penalty). Teacher matching (KD): pure KL at temperature 1. Adversary: its loss
#: and KD weighted 1:1.
PRUNE_DEFAULTS = dict(lr=1e-3, mask_travel=4.0, l1=(2.0, 3.0), kd_weight=1.0, adv_weight=1.0, d_lr=1e-3,
                      eval_every=10)


@dataclass
class PrunedGenerator:
    """One method's result: the slim model, its training curves and (mask methods) the learned masks.
    ``mask_steps`` + ``recover_steps`` is the method's training budget; ``best_step`` the recovery step
    (0 = right after the cut) whose weights validation perplexity chose."""

    method: str
    fraction: float
    model: nn.Module
    histories: dict[str, StepHistory] = field(default_factory=dict)
    masks: list[torch.Tensor] | None = None
    masks_at_zero: float | None = None  # share of all units whose mask the penalty drove to exactly 0
    mask_steps: int = 0
    recover_steps: int = 0
    best_step: int | None = None
    l1: float | None = None
    l1_search: dict[float, float] = field(default_factory=dict)  # penalty -> validation perplexity of the cut model


def _objective(method: str, dense: nn.Module, data: SentenceData, settings: dict):
    if method.endswith("+mle"):
        return lm_loss
    if method.endswith("+kd"):
        return distillation_objective(dense, weight=settings["kd_weight"])
    adversary = Discriminator(len(data.vocab), pad_id=data.vocab.pad_id).to(dense.decoder.weight.device)
    return OutputAdversary(dense, adversary, adv_weight=settings["adv_weight"], kd_weight=settings["kd_weight"],
                           d_lr=settings["d_lr"])


def _check_settings(settings: dict) -> dict:
    unknown = set(settings) - set(PRUNE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; allowed: {', '.join(PRUNE_DEFAULTS)}")
    s = PRUNE_DEFAULTS | settings
    penalties = list(s["l1"]) if isinstance(s["l1"], (list, tuple)) else [s["l1"]]
    bad = {k: s[k] for k in ("lr", "mask_travel", "adv_weight", "d_lr") if not s[k] > 0}
    bad |= {} if 0.0 < s["kd_weight"] <= 1.0 else {"kd_weight": s["kd_weight"]}
    bad |= {} if penalties and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                   for v in penalties) else {"l1": s["l1"]}
    bad |= {} if isinstance(s["eval_every"], int) and s["eval_every"] >= 1 else {"eval_every": s["eval_every"]}
    if bad:
        raise ValueError(f"bad setting value(s) {bad}: lr, mask_travel, adv_weight and d_lr must be > 0, kd_weight in "
                         "(0, 1], l1 a number > 0 or a list of them, eval_every an int >= 1")
    return s | {"l1": penalties}


def _zero_share_reached(masked: UnitMaskedLM, sparsity: float) -> bool:
    return all(int(m.eq(0).sum()) >= round(sparsity * m.numel()) for m in masked.masks)


def _relative_to_layer(momentum: torch.Tensor) -> torch.Tensor:
    """A layer's momentum-averaged mask gradients divided by their mean magnitude."""
    return momentum / momentum.abs().mean().clamp_min(1e-12)


def _learn_masks(dense: RNNLanguageModel, data: SentenceData, objective, sparsity: float, l1: float, max_steps: int,
                 s: dict, seed: int, progress: bool, desc: str
                 ) -> tuple[UnitMaskedLM, StepHistory, list[torch.Tensor]]:
    """Masks and weights trained together by proximal gradient steps, the penalty rising from 0 to ``l1``
    over ``max_steps``, until ``sparsity`` of every layer's masks is exactly 0 (or ``max_steps``).
    Also returns each unit's removal score: its mask, and below 0 for a mask at 0 that the loss still
    pushes down (so when one step zeroes more units than the target, the cut takes those first)."""
    masked = UnitMaskedLM(copy.deepcopy(dense))
    momentum = [torch.zeros_like(m) for m in masked.masks]
    step_size = s["mask_travel"] / max_steps  # a mask with its layer's mean gradient travels mask_travel in all
    step = [0]

    @torch.no_grad()
    def prox_step() -> None:
        # A gradient step on a momentum average, divided by the layer's mean |average|: the step keeps each
        # unit's gradient *relative to its layer* (the ranking the cut needs), but not the loss's raw scale,
        # which changes by orders of magnitude between objectives and as the masks shrink (with raw
        # gradients one step size cannot suit both; with Adam, whose second moment lags, a fast-growing
        # gradient outruns any penalty). Then the proximal step of the rising L1 penalty (soft-thresholding).
        for mask, buffer in zip(masked.masks, momentum):
            buffer.mul_(0.9).add_(mask.grad, alpha=0.1)
            mask.sub_(step_size * _relative_to_layer(buffer))
            mask.grad = None
        step[0] += 1
        masked.shrink(step_size * l1 * step[0] / max_steps)

    history = train_steps(masked, data, max_steps, objective, lr=s["lr"], seed=seed, progress=progress,
                          params=masked.weight_parameters(), after_step=prox_step,
                          until=lambda: _zero_share_reached(masked, sparsity), desc=desc)
    scores = [torch.where(m.eq(0), -_relative_to_layer(b).clamp_min(0), m).detach().cpu()
              for m, b in zip(masked.masks, momentum)]
    return masked, history, scores


def prune_generator(dense: RNNLanguageModel, data: SentenceData, method: str, sparsity: float, *, steps: int,
                    mask_steps: int = 0, seed: int = 0, progress: bool = True, **settings) -> PrunedGenerator:
    """Remove ``sparsity`` of every layer's hidden units of ``dense`` (left unchanged) by ``method``,
    within a budget of ``steps`` training steps:

    - ``"l2+mle"`` / ``"l2+kd"``: remove the units with the smallest weight norms, then train ``steps``
      steps by MLE / by teacher matching (KL to ``dense``, no labels);
    - ``"masks+kd"`` / ``"masks+kd+adversary"``: learn unit masks with the L1 proximal penalty, rising
      to ``l1`` at step ``mask_steps`` (teacher matching, or GAL's adversary + teacher matching), until
      ``sparsity`` of every layer's masks is exactly 0; of the penalties in ``settings["l1"]`` that got there,
      keep the one whose cut model has the lowest validation perplexity; remove the zero-mask units, fold the
      others into the weights, then train the rest of the budget with the same objective.

    Every recovery is early-stopped on validation perplexity (evaluated every ``eval_every`` steps,
    the best weights kept). The weights train with the masks (as in GAL), so a unit can shrink its
    mask while its outgoing columns grow. ``settings`` override :data:`PRUNE_DEFAULTS`. Seeded by
    ``seed`` (the global RNG is the caller's: seed it first for dropout)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in (0, 1) (the share of units to remove), got {sparsity!r}")
    s = _check_settings(settings)
    for value, name in ((steps, "steps"), (mask_steps, "mask_steps")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    masks_method = method.startswith("masks")
    if masks_method and not 1 <= mask_steps < steps:
        raise ValueError(f"method {method!r} learns masks: need 1 <= mask_steps < steps (the budget), "
                         f"got mask_steps={mask_steps}, steps={steps}")
    if steps < 1:
        raise ValueError(f"steps (the training budget) must be >= 1, got {steps}")
    objective = _objective(method, dense, data, s)
    result = PrunedGenerator(method, sparsity, dense)
    if not masks_method:
        slim = remove_hidden_units(dense, units_to_remove(hidden_unit_importance(dense, "l2"), sparsity))
    else:
        tried, reached = {}, set()
        for l1 in s["l1"]:
            masked, history, scores = _learn_masks(dense, data, objective, sparsity, l1, mask_steps, s, seed,
                                                   progress, f"{method} masks (l1 {l1})")
            if _zero_share_reached(masked, sparsity):
                reached.add(l1)
            cut = fold_unit_masks(masked, units_to_remove(scores, sparsity)).eval()
            tried[l1] = (sentence_perplexity(cut, data, "validation")["perplexity"], cut, masked.mask_values(),
                         history)
        # GAL's penalty sets the sparsity: only penalties that switched the target share off compete
        # (all of them if none did, and masks_at_zero says so)
        result.l1 = min(reached or tried, key=lambda v: tried[v][0])
        result.l1_search = {l1: t[0] for l1, t in tried.items()}
        _, slim, result.masks, result.histories["masks"] = tried[result.l1]
        result.masks_at_zero = float(torch.cat(result.masks).eq(0).float().mean())
        result.mask_steps = result.histories["masks"].steps
    result.recover_steps = steps - result.mask_steps
    history = train_steps(slim, data, result.recover_steps, objective, lr=s["lr"], seed=seed, progress=progress,
                          eval_every=s["eval_every"], restore_best=True, desc=method)
    result.histories["recover"], result.best_step = history, history.best_step
    result.model = slim.eval()
    return result
