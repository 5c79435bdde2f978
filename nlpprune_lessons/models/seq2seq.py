"""A small Transformer encoder-decoder for translation (lesson 10), written out rather than taken from
transformers.

Why our own module: the lesson needs pre-norm layers (stable from scratch with a short warm-up;
transformers' Marian and BART are post-norm), separate source and target vocabularies with the target
embedding tied to the output layer, the three attention types (encoder self, decoder self,
encoder-decoder cross) built from one class with the same per-head layout, so that one head-removal
routine serves all three, and an incremental decoder whose key/value cache a learner can read in a
few lines. Each attention keeps ``heads`` heads of ``head_dim`` columns: head ``h`` owns rows
``h * head_dim ... (h + 1) * head_dim - 1`` of ``query``, ``key`` and ``value`` and the same columns of
``out``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes of :class:`Seq2SeqTransformer` and its special token ids (those of the tokenizers)."""

    source_vocab: int
    target_vocab: int
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 2
    ffn: int = 512
    dropout: float = 0.1
    max_positions: int = 256
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    memory_dim: int | None = None  # width of the encoder output the decoder reads (None: d_model)

    def __post_init__(self):
        for name in ("source_vocab", "target_vocab", "d_model", "heads", "encoder_layers", "decoder_layers", "ffn",
                     "max_positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.memory_dim is not None and (isinstance(self.memory_dim, bool) or not isinstance(self.memory_dim, int)
                                            or self.memory_dim < 1):
            raise ValueError(f"memory_dim must be a positive int or None, got {self.memory_dim!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position encodings of Vaswani et al. (2017), ``(length, d_model)``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


class Attention(nn.Module):
    """Multi-head attention with separate query/key/value/out projections (see the module's docstring
    for the per-head layout). ``memory=None`` is self-attention; ``cache`` (a dict) keeps the keys and
    values of earlier decoding steps (self-attention) or of the encoder output (cross-attention)."""

    def __init__(self, d_model: int, heads: int, dropout: float, memory_dim: int | None = None):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, d_model // heads, dropout
        self.query = nn.Linear(d_model, heads * self.head_dim)
        self.key = nn.Linear(memory_dim or d_model, heads * self.head_dim)
        self.value = nn.Linear(memory_dim or d_model, heads * self.head_dim)
        self.out = nn.Linear(heads * self.head_dim, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H * D) -> (B, H, T, D)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
                causal: bool = False, cache: dict | None = None) -> torch.Tensor:
        """``key_mask`` (B, S) is True where a key may be attended (False at padding); ``causal`` lets
        position t attend to positions <= t only (training; with a cache the step sees all it holds)."""
        query = self._split(self.query(x))
        if memory is not None and cache is not None and "key" in cache:
            key, value = cache["key"], cache["value"]  # the encoder output does not change while decoding
        else:
            source = x if memory is None else memory
            key, value = self._split(self.key(source)), self._split(self.value(source))
            if cache is not None and memory is None and "key" in cache:
                key, value = torch.cat([cache["key"], key], dim=2), torch.cat([cache["value"], value], dim=2)
            if cache is not None:
                cache["key"], cache["value"] = key, value
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if causal and cache is None:
            steps = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=x.device).tril()
            mask = steps if mask is None else mask & steps
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                                  dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.head_dim))


class FeedForward(nn.Module):
    """Two Linears with a ReLU between them (``ffn`` neurons)."""

    def __init__(self, d_model: int, ffn: int, dropout: float):
        super().__init__()
        self.inner, self.outer, self.dropout = nn.Linear(d_model, ffn), nn.Linear(ffn, d_model), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.dropout(F.relu(self.inner(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: x + self-attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.self_attention = Attention(config.d_model, config.heads, config.dropout)
        self.feed_forward = FeedForward(config.d_model, config.ffn, config.dropout)
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attention(self.norm1(x), key_mask=source_mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm: causal self-attention, cross-attention to the encoder output, feed-forward."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.self_attention = Attention(config.d_model, config.heads, config.dropout)
        self.cross_attention = Attention(config.d_model, config.heads, config.dropout, config.memory_dim)
        self.feed_forward = FeedForward(config.d_model, config.ffn, config.dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(config.d_model) for _ in range(3))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, source_mask: torch.Tensor,
                cache: dict | None = None) -> torch.Tensor:
        own, cross = (None, None) if cache is None else (cache.setdefault("self", {}), cache.setdefault("cross", {}))
        x = x + self.dropout(self.self_attention(self.norm1(x), causal=True, cache=own))
        x = x + self.dropout(self.cross_attention(self.norm2(x), memory, key_mask=source_mask, cache=cross))
        return x + self.dropout(self.feed_forward(self.norm3(x)))


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer: source ids -> encoder; target ids shifted right (``<s>`` first) ->
    decoder -> logits over the target vocabulary, whose output layer is the target embedding (tied)."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig, got {type(config).__name__}")
        self.config = config
        self.source_embedding = nn.Embedding(config.source_vocab, config.d_model, padding_idx=config.pad_id)
        self.target_embedding = nn.Embedding(config.target_vocab, config.d_model, padding_idx=config.pad_id)
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, config.d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        for embedding in (self.source_embedding, self.target_embedding):
            nn.init.normal_(embedding.weight, std=config.d_model ** -0.5)
            with torch.no_grad():
                embedding.weight[config.pad_id].zero_()

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        if start + ids.shape[1] > self.config.max_positions:
            raise ValueError(f"sequence of {start + ids.shape[1]} positions exceeds max_positions "
                             f"({self.config.max_positions})")
        scaled = embedding(ids) * math.sqrt(self.config.d_model)
        return self.dropout(scaled + self.positions[start:start + ids.shape[1]])

    def encode(self, source_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder output (B, S, d_model) and the source mask (B, S; False at padding)."""
        if source_ids.dim() != 2:
            raise ValueError(f"source_ids must be (batch, length), got shape {tuple(source_ids.shape)}")
        source_mask = source_ids != self.config.pad_id
        x = self._embed(self.source_embedding, source_ids)
        for layer in self.encoder:
            x = layer(x, source_mask)
        return self.encoder_norm(x), source_mask

    def decode(self, target_ids: torch.Tensor, memory: torch.Tensor, source_mask: torch.Tensor,
               cache: list[dict] | None = None, start: int = 0) -> torch.Tensor:
        """Logits (B, T, target_vocab) for ``target_ids`` (B, T) at positions ``start ...``; with a
        ``cache`` (one dict per decoder layer, see :meth:`new_cache`) only the new positions are passed."""
        x = self._embed(self.target_embedding, target_ids, start)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, source_mask, None if cache is None else cache[i])
        return F.linear(self.decoder_norm(x), self.target_embedding.weight)

    def new_cache(self) -> list[dict]:
        """An empty key/value cache for incremental decoding: one dict per decoder layer."""
        return [{} for _ in self.decoder]

    def forward(self, source_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        memory, source_mask = self.encode(source_ids)
        return self.decode(target_ids, memory, source_mask)



class PretrainedEncoderTranslator(Seq2SeqTransformer):
    """The decoder of :class:`Seq2SeqTransformer` reading a pretrained encoder's output (e.g. MiniLM's,
    :func:`~nlpprune_lessons.models.transformers.load_pretrained_encoder`; ``config.memory_dim`` is its
    hidden size): the encoder brings what it learned of English, the decoder learns the target
    language from scratch. Source ids are the encoder tokenizer's (``[CLS] ... [SEP]``, padding id
    ``config.pad_id``). ``freeze_encoder`` keeps the pretrained weights fixed (their gradients are not
    computed)."""

    def __init__(self, config: Seq2SeqConfig, encoder: nn.Module, freeze_encoder: bool = True):
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig, got {type(config).__name__}")
        hidden = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if hidden != (config.memory_dim or config.d_model):
            raise ValueError(f"the encoder's hidden size ({hidden}) must equal config.memory_dim "
                             f"({config.memory_dim or config.d_model})")
        super().__init__(config)
        del self.source_embedding, self.encoder, self.encoder_norm  # the pretrained encoder replaces them
        self.pretrained_encoder = encoder
        self.freeze_encoder(freeze_encoder)

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Fix (``True``) or release (``False``) the pretrained encoder's weights."""
        for parameter in self.pretrained_encoder.parameters():
            parameter.requires_grad_(not frozen)

    def encode(self, source_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if source_ids.dim() != 2:
            raise ValueError(f"source_ids must be (batch, length), got shape {tuple(source_ids.shape)}")
        source_mask = source_ids != self.config.pad_id
        frozen = not any(p.requires_grad for p in self.pretrained_encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            memory = self.pretrained_encoder(input_ids=source_ids, attention_mask=source_mask.long()).last_hidden_state
        return memory, source_mask

def label_smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int,
                        smoothing: float = 0.1) -> torch.Tensor:
    """Mean cross-entropy per target token (padding ignored), with ``smoothing`` of the probability mass
    spread over the vocabulary (Szegedy et al. 2016; 0.1 as in Vaswani et al. 2017)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id,
                           label_smoothing=smoothing)


def max_target_length(source_lengths: torch.Tensor, ratio: float = 1.2, extra: int = 5) -> torch.Tensor:
    """The decoding cap of each sentence: ``ratio`` x its source length + ``extra`` tokens."""
    return (source_lengths.float() * ratio).long() + extra


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, source_ids: torch.Tensor, *, max_length: int | None = None,
                  use_cache: bool = True) -> torch.Tensor:
    """Greedy translations of a batch of sources: (B, T) target ids, ``</s>`` then padding after a
    sentence ends. Each sentence stops at ``</s>`` or at :func:`max_target_length` of its source
    (``max_length`` caps all). ``use_cache=False`` re-runs the decoder over the whole prefix at every
    step (the same output, slower: kept to show what the cache saves)."""
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model must be a Seq2SeqTransformer, got {type(model).__name__}")
    if source_ids.dim() != 2 or source_ids.dtype != torch.long:
        raise ValueError(f"source_ids must be (batch, length) token ids, got {source_ids.dtype} {tuple(source_ids.shape)}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    was_training = model.training
    model.eval()
    config = model.config
    memory, source_mask = model.encode(source_ids)
    caps = max_target_length(source_mask.sum(1))
    if max_length is not None:
        caps = caps.clamp(max=max_length)
    caps = caps.clamp(max=config.max_positions - 1)
    batch = source_ids.shape[0]
    output = torch.full((batch, 1), config.bos_id, dtype=torch.long, device=source_ids.device)
    done = torch.zeros(batch, dtype=torch.bool, device=source_ids.device)
    cache = model.new_cache() if use_cache else None
    for step in range(int(caps.max())):
        if use_cache:
            logits = model.decode(output[:, -1:], memory, source_mask, cache, start=step)
        else:
            logits = model.decode(output, memory, source_mask)
        token = logits[:, -1].argmax(-1)
        token = torch.where(done, torch.full_like(token, config.pad_id), token)
        token = torch.where(~done & (step + 1 >= caps), torch.full_like(token, config.eos_id), token)
        output = torch.cat([output, token[:, None]], dim=1)
        done |= token == config.eos_id
        if done.all():
            break
    model.train(was_training)
    return output[:, 1:]
