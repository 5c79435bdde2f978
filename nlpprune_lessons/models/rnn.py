"""Recurrent text models trained from scratch: a sequence classifier and a word-level language model.

Module names (``embedding``, ``rnn``, ``classifier`` / ``decoder``) are part of the API: the pruning
lessons address weights by them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nlpprune_lessons.core.checks import check_positive_int

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
         bidirectional: bool = False) -> nn.RNNBase:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    for name, value in (("input size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        check_positive_int(value, name)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    # nn.LSTM applies dropout only between layers; with one layer it would only warn.
    return CELLS[cell](input_size, hidden_size, num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)


def _init_embedding(embedding: nn.Embedding, weights: torch.Tensor, freeze: bool) -> None:
    if weights.shape != embedding.weight.shape:
        raise ValueError(f"embedding weights must have shape {tuple(embedding.weight.shape)}, "
                         f"got {tuple(weights.shape)} (for GloVe 50d, use embed_dim=50)")
    with torch.no_grad():
        embedding.weight.copy_(weights)
    embedding.weight.requires_grad_(not freeze)


class RNNClassifier(nn.Module):
    """Embedding -> LSTM/GRU -> final hidden state(s) of the last layer -> linear classifier."""

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 128, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", bidirectional: bool = False,
                 dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        if vocab_size < 2 or num_classes < 2 or embed_dim < 1:
            raise ValueError("need vocab_size >= 2, num_classes >= 2 and embed_dim >= 1")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary (size {vocab_size})")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = _rnn(cell, embed_dim, hidden_size, num_layers, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def init_embeddings(self, weights: torch.Tensor, freeze: bool = False) -> None:
        """Copy pre-trained vectors (e.g. :func:`nlpprune_lessons.data.load_glove`) into the embedding."""
        _init_embedding(self.embedding, weights, freeze)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]``; with ``lengths`` the padded tail is skipped (packed sequences)."""
        x = self.dropout(self.embedding(input_ids))
        if lengths is not None:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(x)
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        final = torch.cat([hidden[-2], hidden[-1]], dim=-1) if self.rnn.bidirectional else hidden[-1]
        return self.classifier(self.dropout(final))


class RNNLanguageModel(nn.Module):
    """Word-level LM: embedding -> stacked LSTM/GRU -> linear decoder over the vocabulary."""

    def __init__(self, vocab_size: int, embed_dim: int = 256, hidden_size: int = 256, num_layers: int = 2,
                 cell: str = "lstm", dropout: float = 0.0, tie_weights: bool = False):
        super().__init__()
        if vocab_size < 2 or embed_dim < 1:
            raise ValueError("need vocab_size >= 2 and embed_dim >= 1")
        if tie_weights and embed_dim != hidden_size:
            raise ValueError(f"tie_weights needs embed_dim == hidden_size, got {embed_dim} and {hidden_size}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _rnn(cell, embed_dim, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:  # Press & Wolf (2017): input and output embeddings share one matrix
            self.decoder.weight = self.embedding.weight

    def init_embeddings(self, weights: torch.Tensor, freeze: bool = False) -> None:
        """Copy pre-trained vectors into the input embedding."""
        _init_embedding(self.embedding, weights, freeze)

    def forward(self, input_ids: torch.Tensor, state=None):
        """``(logits [B, T, V], state)``; pass ``state`` back in to continue a sequence."""
        output, state = self.rnn(self.dropout(self.embedding(input_ids)), state)
        return self.decoder(self.dropout(output)), state

    @torch.no_grad()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None, stop_id: int | None = None) -> list[int]:
        """Continue ``prompt_ids`` by sampling (``temperature`` > 0) or greedily (``temperature`` 0)."""
        if not prompt_ids:
            raise ValueError("prompt_ids must hold at least one token id")
        if temperature < 0 or max_new_tokens < 0:
            raise ValueError("temperature and max_new_tokens must be >= 0")
        was_training = self.training
        self.eval()
        device = self.decoder.bias.device
        logits, state = self(torch.tensor([prompt_ids], device=device))
        out = []
        for _ in range(max_new_tokens):
            last = logits[0, -1]
            if temperature == 0:
                token = int(last.argmax())
            else:
                probs = torch.softmax(last.float() / temperature, dim=-1).cpu()
                token = int(torch.multinomial(probs, 1, generator=generator))
            out.append(token)
            if token == stop_id:
                break
            logits, state = self(torch.tensor([[token]], device=device), state)
        self.train(was_training)
        return out
