"""Checks for the exercises of lesson 08 (slim BERT)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_head_columns"]


@exercise("08.1", "a head's columns")
def check_head_columns(head_columns: Callable[[int, int], Sequence[int]]) -> str:
    """Exercise 08.1: ``head_columns(head, head_size)`` = the output rows of query/key/value (and the
    input columns of the attention-output dense) that belong to attention head ``head``."""
    require_callable(head_columns, "head_columns")
    for head, size in [(0, 32), (3, 32), (11, 32), (2, 64), (5, 8)]:
        expected = list(range(head * size, (head + 1) * size))
        got = [int(i) for i in head_columns(head, size)]
        require(got == expected,
                 f"for head={head}, head_size={size} the columns are {expected[0]}..{expected[-1]} ({size} of them), "
                 f"you returned {got[:4]}{'...' if len(got) > 4 else ''} ({len(got)} entries). BertSelfAttention "
                 "reshapes the query output [..., heads * head_size] to [..., heads, head_size]: head h is one "
                 "contiguous block.")
    # the columns really are the head: zeroing them equals switching the head's gate to 0
    from transformers import BertConfig, BertModel

    from nlpprune_lessons.structured.transformer import head_gates

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=8, max_position_embeddings=16)).eval()
    ids = torch.randint(30, (2, 5))
    with torch.no_grad(), head_gates(model, requires_grad=False) as gates:
        gates[0][1] = 0.0
        gated = model(input_ids=ids).last_hidden_state
    with torch.no_grad():
        model.encoder.layer[0].attention.output.dense.weight[:, list(head_columns(1, 4))] = 0.0
        zeroed = model(input_ids=ids).last_hidden_state
    require(torch.allclose(gated, zeroed, atol=1e-6), "zeroing your columns of head 1 did not silence head 1.")
    return ("head h owns the block h * head_size ... (h + 1) * head_size - 1; zeroing it silences the head.")
