"""Tiny random transformers and a toy batch source shared by the unit tests (seconds on a CPU)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

from nlpprune_lessons.models.transformers import encoder_loader


def tiny_bert(attn: str = "sdpa", seed: int = 0, layers: int = 2, *, intermediate_size: int = 64,
              dropout: float = 0.0) -> BertForSequenceClassification:
    """A 2-class BERT with hidden 32, 4 heads of 8, vocabulary 60, seeded (train mode, as built)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=intermediate_size, max_position_embeddings=32, num_labels=2,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        attn_implementation=attn)
    return BertForSequenceClassification(config)


def toy_loader(n: int = 48, seed: int = 1, batch_size: int = 8, shuffle: bool = True):
    """Label = whether token 7 occurs; lengths 3..12 (padding inside batches); [CLS]=1 first, [SEP]=2
    last, pad 0."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for _ in range(n):
        body = torch.randint(3, 60, (int(torch.randint(1, 11, (1,), generator=g)),), generator=g).tolist()
        ids.append([1, *body, 2])
        labels.append(int(7 in body))
    return encoder_loader(ids, labels, pad_id=0, batch_size=batch_size, shuffle=shuffle, seed=seed)
