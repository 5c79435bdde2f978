"""A linear bag-of-words classifier: logistic regression on a review's token frequencies."""

from __future__ import annotations

import torch
from torch import nn


class BagOfWordsClassifier(nn.Module):
    """Logistic (softmax) regression on the mean one-hot vector of the tokens.

    ``EmbeddingBag(mode="mean")`` with one output per class computes exactly ``W @ tf + b``, where
    ``tf`` are the token frequencies of the review, without building the sparse vector. Padding
    positions are ignored. ``forward(input_ids, lengths=None)`` matches the RNN classifiers'.
    """

    def __init__(self, vocab_size: int, num_classes: int = 2, pad_id: int = 0):
        super().__init__()
        if vocab_size < 2 or num_classes < 2:
            raise ValueError(f"need vocab_size >= 2 and num_classes >= 2, got {vocab_size}, {num_classes}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary (size {vocab_size})")
        self.token_weights = nn.EmbeddingBag(vocab_size, num_classes, mode="mean", padding_idx=pad_id)
        nn.init.zeros_(self.token_weights.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for right-padded ``input_ids [B, T]``."""
        return self.token_weights(input_ids) + self.bias
