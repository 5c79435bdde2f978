"""Structured pruning (lesson 04): remove whole hidden units, embedding dimensions and vocabulary
rows so that the recurrent models physically shrink; score units; save and reload slim models."""

from __future__ import annotations

from nlpprune_lessons.structured.io import load_slim, save_slim
from nlpprune_lessons.structured.rnn import (
    CRITERIA,
    GATES,
    StackedRNN,
    hidden_sizes,
    hidden_unit_importance,
    remove_vocabulary,
    recurrent_flops,
    remove_embedding_dims,
    remove_hidden_units,
    units_to_delete,
    units_to_remove,
)

__all__ = [
    "CRITERIA",
    "GATES",
    "StackedRNN",
    "hidden_sizes",
    "hidden_unit_importance",
    "load_slim",
    "remove_vocabulary",
    "recurrent_flops",
    "remove_embedding_dims",
    "remove_hidden_units",
    "save_slim",
    "units_to_delete",
    "units_to_remove",
]
