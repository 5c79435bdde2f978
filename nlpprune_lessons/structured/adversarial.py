"""Pruning a text generator's hidden units with learned masks (lesson 05).

Adapted from generative adversarial learning for structured pruning (GAL; Lin et al., CVPR 2019):
a soft mask ``m_j >= 0`` scales every use of hidden unit ``j``'s output (its recurrent column, the
next layer's input column or the decoder's column); an L1 penalty, applied as a proximal step
(soft-thresholding, as GAL's FISTA does, here after Adam steps), drives masks to exactly 0. The masked generator learns
to stay indistinguishable from the dense one, either against a discriminator on their output
distributions (:class:`OutputAdversary`, GAL's adversarial term) or by distillation (the
non-adversarial counterpart). Units with low masks are then removed physically with
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

from nlpprune_lessons.losses import lm_loss
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
from nlpprune_lessons.training.gan import StepHistory, distillation_objective, train_steps

METHODS = ("l2+mle", "l2+kd", "masks+kd", "masks+adversarial")


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
        """Proximal step of ``amount * sum(m)`` on ``m >= 0``: every mask moves ``amount`` towards 0
        and stops there (soft-thresholding); masks already at 0 stay at 0 unless a gradient lifts them."""
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
    """GAL's objective for the masked generator (an :data:`~nlpprune_lessons.training.gan.Objective`):

    on each real batch, the dense ``teacher``'s next-token distributions are "real", the masked
    model's "fake". ``discriminator`` (reading distributions; padded positions zeroed) takes one
    step to tell them apart; the model then minimises ``adv_weight * -log D(fake) + mle_weight *
    cross-entropy on the real next tokens`` (the data term)."""

    def __init__(self, teacher: nn.Module, discriminator: Discriminator, *, adv_weight: float = 1.0,
                 mle_weight: float = 1.0, d_lr: float = 1e-3):
        if adv_weight <= 0 or mle_weight < 0:
            raise ValueError(f"need adv_weight > 0 and mle_weight >= 0, got {adv_weight} and {mle_weight}")
        self.teacher, self.discriminator = teacher.eval(), discriminator
        self.adv_weight, self.mle_weight = adv_weight, mle_weight
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=d_lr)
        self.log: dict[str, float] = {}

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        keep = (batch["targets"] != IGNORE).unsqueeze(-1)
        with torch.no_grad():
            real = F.softmax(self.teacher(batch["input_ids"])[0], dim=-1) * keep
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
        if self.mle_weight:
            loss = loss + self.mle_weight * lm_loss(model, batch)
        return loss


# --------------------------------------------------------------------------- end to end
#: Defaults of :func:`prune_generator`. Weights: Adam at ``lr``. Masks: Adam steps of about
#: ``mask_lr`` each, then the proximal L1 step ``mask_lr * l1``: ``l1`` is the share of a full step
#: the penalty takes back, so a mask whose loss gradient points up less consistently than ``l1``
#: drifts to 0 (with plain gradient steps the penalty swamps the tiny mask gradients uniformly).
#: Distillation: weight 1 (pure KL at temperature 1). Adversary: its loss and MLE weighted 1:1.
PRUNE_DEFAULTS = dict(lr=1e-3, mask_lr=0.02, l1=0.5, kd_weight=1.0, adv_weight=1.0, mle_weight=1.0, d_lr=1e-3)


@dataclass
class PrunedGenerator:
    """One method's result: the slim model, its training curves and (mask methods) the learned masks."""

    method: str
    fraction: float
    model: nn.Module
    histories: dict[str, StepHistory] = field(default_factory=dict)
    masks: list[torch.Tensor] | None = None
    masks_at_zero: float | None = None  # share of all units whose mask the penalty drove to exactly 0


def _objective(method: str, dense: nn.Module, data: SentenceData, settings: dict):
    if method.endswith("+mle"):
        return lm_loss
    if method.endswith("+kd"):
        return distillation_objective(dense, weight=settings["kd_weight"])
    adversary = Discriminator(len(data.vocab), pad_id=data.vocab.pad_id).to(dense.decoder.weight.device)
    return OutputAdversary(dense, adversary, adv_weight=settings["adv_weight"], mle_weight=settings["mle_weight"],
                           d_lr=settings["d_lr"])


def prune_generator(dense: RNNLanguageModel, data: SentenceData, method: str, sparsity: float, *, steps: int,
                    mask_steps: int = 0, seed: int = 0, eval_every: int | None = None, progress: bool = True,
                    **settings) -> PrunedGenerator:
    """Remove ``sparsity`` of every layer's hidden units of ``dense`` (left unchanged) by ``method``:

    - ``"l2+mle"`` / ``"l2+kd"``: remove the units with the smallest weight norms, then train
      ``mask_steps + steps`` steps by MLE / by distillation from ``dense``;
    - ``"masks+kd"`` / ``"masks+adversarial"``: learn unit masks for ``mask_steps`` steps (L1 proximal
      penalty; distillation, or GAL's adversary + MLE), remove the units with the lowest masks, fold
      the others into the weights, then train ``steps`` steps with the same objective.

    Every method thus gets the same number of training steps. The weights train with the masks (as in
    GAL), so a unit can shrink its mask while its outgoing columns grow; units are ranked by mask alone. ``settings`` override
    :data:`PRUNE_DEFAULTS`. Seeded by ``seed`` (the global RNG is the caller's: seed it first for dropout)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in (0, 1) (the share of units to remove), got {sparsity!r}")
    unknown = set(settings) - set(PRUNE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; allowed: {', '.join(PRUNE_DEFAULTS)}")
    s = PRUNE_DEFAULTS | settings
    bad = {k: s[k] for k in ("lr", "mask_lr", "adv_weight", "d_lr") if not s[k] > 0}
    bad |= {k: s[k] for k in ("l1", "mle_weight") if not s[k] >= 0}
    bad |= {} if 0.0 <= s["kd_weight"] <= 1.0 else {"kd_weight": s["kd_weight"]}
    if bad:
        raise ValueError(f"bad setting value(s) {bad}: lr, mask_lr, adv_weight and d_lr must be > 0, l1 and "
                         "mle_weight >= 0, kd_weight in [0, 1]")
    if isinstance(mask_steps, bool) or not isinstance(mask_steps, int) or mask_steps < 0:
        raise ValueError(f"mask_steps must be an int >= 0, got {mask_steps!r}")
    if method.startswith("masks") and mask_steps == 0:
        raise ValueError(f"method {method!r} learns masks: mask_steps must be >= 1")
    objective = _objective(method, dense, data, s)
    train = dict(lr=s["lr"], seed=seed, eval_every=eval_every, progress=progress)
    result = PrunedGenerator(method, sparsity, dense)
    if method.startswith("l2"):
        slim = remove_hidden_units(dense, units_to_remove(hidden_unit_importance(dense, "l2"), sparsity))
        result.histories["recover"] = train_steps(slim, data, mask_steps + steps, objective, desc=method, **train)
    else:
        masked = UnitMaskedLM(copy.deepcopy(dense))
        mask_opt = torch.optim.Adam(masked.masks.parameters(), lr=s["mask_lr"])

        def prox_step() -> None:
            mask_opt.step()
            mask_opt.zero_grad(set_to_none=True)
            masked.shrink(s["mask_lr"] * s["l1"])

        result.histories["masks"] = train_steps(masked, data, mask_steps, objective, params=masked.weight_parameters(),
                                                after_step=prox_step, desc=f"{method} masks", **train)
        result.masks = masked.mask_values()
        result.masks_at_zero = float(torch.cat(result.masks).eq(0).float().mean())
        slim = fold_unit_masks(masked, units_to_remove(result.masks, sparsity))
        result.histories["recover"] = train_steps(slim, data, steps, objective, desc=method, **train)
    result.model = slim.eval()
    return result
