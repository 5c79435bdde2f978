"""One way to save and reload a physically smaller model: :func:`save_slim` and :func:`load_slim`
dispatch on the model class (the course's RNNs, or a transformers BERT encoder) and on the file's
header metadata, so a learner never has to remember which family wrote a file."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from torch import nn

from nlpprune_lessons.models.rnn import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.models.transformers import ATTENTION_IMPLEMENTATIONS
from nlpprune_lessons.structured.rnn import load_rnn_slim, save_rnn_slim
from nlpprune_lessons.structured.transformer import SLIM_CLASSES, SLIM_FORMAT, load_bert_slim, save_bert_slim


def save_slim(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s weights (safetensors) with the shapes needed to rebuild it in the header
    metadata; returns the path. Takes :class:`RNNClassifier`, :class:`RNNLanguageModel` and the BERT
    classes of :data:`~nlpprune_lessons.structured.transformer.SLIM_CLASSES`."""
    if isinstance(model, (RNNClassifier, RNNLanguageModel)):
        return save_rnn_slim(model, path)
    if type(model).__name__ in SLIM_CLASSES:
        return save_bert_slim(model, path)
    raise TypeError(f"model must be an RNNClassifier or RNNLanguageModel (the course's RNNs) or one of "
                    f"{SLIM_CLASSES} (BERT) to be saved slim, got {type(model).__name__}")


def load_slim(path: str | Path, *, attn_implementation: str | None = None) -> nn.Module:
    """Rebuild the model written by :func:`save_slim` at ``path`` and load its weights (eval mode).
    ``attn_implementation`` (``"sdpa"`` by default, or ``"eager"``) applies to BERT files only."""
    if attn_implementation is not None and attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}")
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
    if meta.get("format") == SLIM_FORMAT:
        return load_bert_slim(path, attn_implementation=attn_implementation or "sdpa")
    if (meta.get("architecture") or {}).get("class"):
        if attn_implementation is not None:
            raise ValueError(f"{path} holds an RNN: attn_implementation applies to BERT files only")
        return load_rnn_slim(path)
    raise ValueError(f"{path} was not written by save_slim (no slim-model metadata in its header)")
