"""A text GAN's two players for short sentences: the generator is a word-level LM
(:class:`~nlpprune_lessons.models.rnn.RNNLanguageModel`, any module ``forward(ids, state) -> (logits,
state)``), the discriminator a CNN over token embeddings (Kim, 2014; SeqGAN's choice).

Sentences are laid out ``[B, T]``: the generated tokens (without the start token), ``<eos>``
included, ``pad`` after it. The discriminator reads token ids, or distributions over the vocabulary
``[B, T, V]`` (one-hot samples, Gumbel-softmax relaxations, a model's output probabilities) whose
rows are zero at padded positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nlpprune_lessons.core.checks import check_positive_int


class Discriminator(nn.Module):
    """Real-vs-generated classifier: embedding -> 1-D convolutions of several widths ->
    max over time -> linear -> one logit per sentence (``prob`` gives the probability "real")."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, widths: Sequence[int] = (2, 3, 4), channels: int = 64,
                 dropout: float = 0.25, pad_id: int = 0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("channels", channels)):
            check_positive_int(value, name)
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be positive ints (convolution widths in tokens), got {widths!r}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary (size {vocab_size})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(channels * len(widths), 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, E]`` from ids ``[B, T]`` or distributions ``[B, T, V]`` (expected embedding)."""
        if x.dtype in (torch.long, torch.int, torch.int32):
            return self.embedding(x)
        if not x.is_floating_point() or x.ndim != 3 or x.size(-1) != self.embedding.num_embeddings:
            raise ValueError(f"input must be token ids [B, T] or distributions [B, T, {self.embedding.num_embeddings}], "
                             f"got {x.dtype} {tuple(x.shape)}")
        return x @ self.embedding.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` (positive = judged real)."""
        h = self.embed(x).transpose(1, 2)  # [B, E, T]
        widest = max(conv.kernel_size[0] for conv in self.convs)
        if h.size(-1) < widest:  # a sentence shorter than the widest filter: pad with zero vectors
            h = F.pad(h, (0, widest - h.size(-1)))
        pooled = [F.relu(conv(h)).amax(dim=-1) for conv in self.convs]
        return self.out(self.dropout(torch.cat(pooled, dim=-1))).squeeze(-1)

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        """Probability ``[B]`` that each sentence is real."""
        return torch.sigmoid(self(x))


def _check_sampling(n: int, max_len: int, temperature: float) -> None:
    for name, value in (("n", n), ("max_len", max_len)):
        check_positive_int(value, name)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def alive_mask(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``[B, T]`` booleans: True up to and including each row's first ``eos_id``."""
    is_eos = (tokens == eos_id).long()
    return (is_eos.cumsum(1) - is_eos) == 0


@torch.no_grad()
def sample_sentences(model: nn.Module, n: int, max_len: int, *, start_id: int, eos_id: int, pad_id: int,
                     temperature: float = 1.0, generator: torch.Generator | None = None,
                     batch_size: int = 256) -> torch.Tensor:
    """``n`` sentences sampled from ``model`` (``temperature`` 0: greedy), each begun by feeding
    ``start_id``; ``[n, max_len]`` ids, ``<eos>`` kept, ``pad_id`` after it (never sampled inside a
    sentence). A sentence without ``<eos>`` within ``max_len`` tokens is cut there. Model left in its mode; sampling in eval mode."""
    _check_sampling(n, max_len, temperature)
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device, rows = _device(model), []
    pad = torch.tensor([pad_id], device=device)
    try:
        for first in range(0, n, batch_size):
            b = min(batch_size, n - first)
            token = torch.full((b, 1), start_id, dtype=torch.long, device=device)
            state, out = None, []
            for _ in range(max_len):
                logits, state = model(token, state)
                last = logits[:, -1].float().index_fill(-1, pad, float("-inf"))
                if temperature == 0:
                    token = last.argmax(-1, keepdim=True)
                else:
                    probs = torch.softmax(last / temperature, dim=-1).cpu()
                    token = torch.multinomial(probs, 1, generator=generator).to(device)
                out.append(token)
                if bool((torch.cat(out, 1) == eos_id).any(1).all()):
                    break
            tokens = torch.cat(out, 1)
            tokens = F.pad(tokens, (0, max_len - tokens.size(1)), value=pad_id)
            rows.append(tokens.masked_fill(~alive_mask(tokens, eos_id), pad_id))
    finally:
        model.train(was_training)
    return torch.cat(rows).cpu()


def straight_through_gumbel_softmax(logits: torch.Tensor, gumbels: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """One straight-through Gumbel-softmax sample over the last dimension, with the noise given.

    ``gumbels`` (same shape as ``logits``) is standard Gumbel noise, ``-log(-log(U))`` for uniform ``U``.
    The value is the one-hot row of ``argmax(logits + gumbels)`` (an exact sample of
    ``softmax(logits)``); the gradient is that of the relaxed sample ``softmax((logits + gumbels) / tau)``.
    ``torch.nn.functional.gumbel_softmax(logits, tau, hard=True)`` computes the same, drawing the noise
    itself."""
    if not torch.is_tensor(logits) or not torch.is_tensor(gumbels):
        raise TypeError(f"logits and gumbels must be tensors, got {type(logits).__name__} and {type(gumbels).__name__}")
    if logits.shape != gumbels.shape or logits.ndim == 0:
        raise ValueError(f"logits and gumbels must have the same shape (at least 1-D), got {tuple(logits.shape)} "
                         f"and {tuple(gumbels.shape)}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
        raise ValueError(f"tau must be a number > 0, got {tau!r}")
    soft = ((logits + gumbels) / tau).softmax(-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


def gumbel_sentences(model: nn.Module, batch_size: int, max_len: int, *, start_id: int, eos_id: int,
                     pad_id: int, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable free-running samples (straight-through Gumbel-softmax; Jang et al., 2017):

    each step draws a token exactly from ``softmax(logits)`` (Gumbel-max) and feeds it back; the
    returned one-hot rows ``[B, T, V]`` carry the gradient of the relaxed sample ``softmax((logits + g)
    / tau)`` back into the generator; ``pad_id`` is never drawn. After a sentence's first ``<eos>``, tokens are ``pad_id`` and rows zero. Returns
    ``(tokens [B, T], one_hot [B, T, V])``; uses the global RNG (seed it for repeatability)."""
    _check_sampling(batch_size, max_len, 1.0)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    device = _device(model)
    token = torch.full((batch_size, 1), start_id, dtype=torch.long, device=device)
    state, hots = None, []
    pad = torch.tensor([pad_id], device=device)
    for _ in range(max_len):
        logits, state = model(token, state)
        hot = F.gumbel_softmax(logits[:, -1].index_fill(-1, pad, float("-inf")), tau=tau, hard=True)
        hots.append(hot)
        token = hot.argmax(-1, keepdim=True)
    one_hot = torch.stack(hots, 1)
    tokens = one_hot.argmax(-1)
    alive = alive_mask(tokens, eos_id)
    return tokens.masked_fill(~alive, pad_id), one_hot * alive.unsqueeze(-1)
