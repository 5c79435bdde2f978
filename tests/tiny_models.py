"""Tiny random models and batches shared by the unit tests (milliseconds to seconds on a CPU): a BERT
classifier and a toy loader, a Llama causal LM with a character tokenizer, and small RNN classifiers
and language models with hand-made batches."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
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


#: Vocabulary of :func:`tiny_llama` and :class:`CharTokenizer`.
LLAMA_VOCAB = 64


class CharTokenizer:
    """Enough of a tokenizer for the helpers: one id per character, ``eos_token_id``, ``decode``."""

    eos_token_id = 0

    def __call__(self, text: str) -> dict:
        return {"input_ids": [1 + ord(ch) % (LLAMA_VOCAB - 1) for ch in text]}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(96 + int(i) % 26) for i in ids)


def tiny_llama(seed: int = 0, tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=LLAMA_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=0)
    return LlamaForCausalLM(config).eval()


# --------------------------------------------------------------------------- tiny RNNs
VOCAB, CLASSES, EMBED, HIDDEN = 20, 3, 6, 8
UNITS = {0: [1, 4], 1: [0, 2, 7], 2: [5]}  # per layer, hidden units to delete
SEQS = [[3, 7, 2], [5, 1, 9, 4, 8, 6], [11], [2, 2, 13, 4], [6, 19, 3, 3, 5]]
KINDS = ["clf", "clf-bi", "lm"]


def tiny_rnn_classifier(cell: str = "lstm", num_layers: int = 2, bidirectional: bool = False, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return RNNClassifier(VOCAB, CLASSES, embed_dim=EMBED, hidden_size=HIDDEN, num_layers=num_layers, cell=cell,
                         bidirectional=bidirectional, **kwargs).eval()


def tiny_rnn_lm(cell: str = "lstm", num_layers: int = 2, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"embed_dim": EMBED, "hidden_size": HIDDEN, **kwargs}
    return RNNLanguageModel(VOCAB, num_layers=num_layers, cell=cell, **kwargs).eval()


def tiny_rnn(kind: str, cell: str, num_layers: int, **kwargs):
    if kind == "lm":
        return tiny_rnn_lm(cell, num_layers, **kwargs)
    return tiny_rnn_classifier(cell, num_layers, bidirectional=kind == "clf-bi", **kwargs)


def token_ids(batch: int, length: int, seed: int = 1, high: int = VOCAB) -> torch.Tensor:
    return torch.randint(1, high, (batch, length), generator=torch.Generator().manual_seed(seed))


def padded_ids(seqs=SEQS) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)  # pad id 0
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
    return ids, lengths


def rnn_classifier_batches() -> list[dict[str, torch.Tensor]]:
    batches = []
    for part, labels in ((SEQS[:3], [0, 2, 1]), (SEQS[3:], [1, 1])):
        ids, lengths = padded_ids(part)
        batches.append({"input_ids": ids, "lengths": lengths, "labels": torch.tensor(labels)})
    return batches


def rnn_lm_batches() -> list[dict[str, torch.Tensor]]:
    ids = token_ids(3, 13, seed=5)
    return [{"input_ids": ids[:, s : s + 6], "targets": ids[:, s + 1 : s + 7]} for s in (0, 6)]


@torch.no_grad()
def rnn_outputs(model: nn.Module, kind: str) -> list[torch.Tensor]:
    """Classifier: logits with packed and with unpacked input. LM: logits of two halves, state carried."""
    if kind != "lm":
        ids, lengths = padded_ids()
        return [model(ids, lengths), model(ids)]
    ids = token_ids(3, 10)
    first, state = model(ids[:, :4])
    second, state = model(ids[:, 4:], state)
    return [first, second]


def assert_same_rnn_outputs(a: nn.Module, b: nn.Module, kind: str, atol: float = 1e-5) -> None:
    for x, y in zip(rnn_outputs(a, kind), rnn_outputs(b, kind)):
        torch.testing.assert_close(x, y, rtol=0, atol=atol)
