"""Checks for the exercises of lesson 08 (slim BERT)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from nlpprune_lessons.lessons.exercises.protocol import compare_tensors, exercise, require, require_callable

__all__ = ["check_drop_heads", "check_head_columns", "check_head_importance"]


def _tiny_bert(classifier: bool = False) -> nn.Module:
    """A seeded 2-layer BERT (hidden 24, 4 heads of 6, no dropout, weights ten times BERT's initial
    scale), in eval mode; the caller's global random state is left as it was."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    config = BertConfig(vocab_size=40, hidden_size=24, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        initializer_range=0.2)  # 10x BERT's: gradients large enough to compare
    with torch.random.fork_rng():
        torch.manual_seed(8)
        model = (BertForSequenceClassification if classifier else BertModel)(config)
    return model.eval()


def _tiny_batches(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``count`` batches of 4 sequences of 7 token ids, the last two padded, with labels."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        mask = torch.ones(4, 7, dtype=torch.long)
        mask[2, 5:], mask[3, 3:] = 0, 0
        ids = torch.randint(1, 40, (4, 7), generator=generator) * mask
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (4,), generator=generator)})
    return batches


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
    from nlpprune_lessons.structured.transformer import head_gates

    model = _tiny_bert()
    ids = _tiny_batches(1, 81)[0]["input_ids"]
    with torch.no_grad(), head_gates(model, requires_grad=False) as gates:
        gates[0][1] = 0.0
        gated = model(input_ids=ids).last_hidden_state
    with torch.no_grad():
        model.encoder.layer[0].attention.output.dense.weight[:, list(head_columns(1, 6))] = 0.0
        zeroed = model(input_ids=ids).last_hidden_state
    require(torch.allclose(gated, zeroed, atol=1e-5), "zeroing your columns of head 1 did not silence head 1.")
    return "head h owns the block h * head_size ... (h + 1) * head_size - 1; zeroing it silences the head."


@exercise("08.2", "remove heads from a layer")
def check_drop_heads(drop_heads: Callable[[nn.Module, Sequence[int]], object]) -> str:
    """Exercise 08.2: ``drop_heads(layer, heads)`` removes the attention heads ``heads`` from one BERT
    encoder layer in place (query/key/value rows, attention-output columns, the head count); the
    model then computes what the model with those heads gated to 0 computes
    (:func:`~nlpprune_lessons.structured.transformer.head_gates`), with smaller matrices."""
    from nlpprune_lessons.structured.transformer import head_gates

    require_callable(drop_heads, "drop_heads")
    model = _tiny_bert()
    batch = _tiny_batches(1, 82)[0]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    heads_total, size, hidden = 4, 6, 24
    hint = ("Head h owns rows h * head_size ... (h + 1) * head_size - 1 of query, key and value (weight and bias) "
            "and the same columns of attention.output.dense's weight (its bias belongs to no head). Keep the "
            "other heads' rows and columns, in order, in new nn.Linear layers, and set the layer's "
            "attention.self.num_attention_heads and all_head_size to what is left.")
    for index, heads in [(0, [1, 3]), (1, [0]), (1, [3, 0, 2])]:
        with torch.no_grad(), head_gates(model, requires_grad=False) as gates:
            gates[index][heads] = 0.0
            expected = model(**inputs).last_hidden_state
        cut = copy.deepcopy(model)
        with torch.no_grad():
            drop_heads(cut.encoder.layer[index], list(heads))
        attention = cut.encoder.layer[index].attention
        kept = (heads_total - len(heads)) * size
        where = f"layer {index}, heads {heads} removed"
        for name in ("query", "key", "value"):
            linear = getattr(attention.self, name)
            require(tuple(linear.weight.shape) == (kept, hidden) and tuple(linear.bias.shape) == (kept,),
                    f"{where}: attention.self.{name} should have weight ({kept}, {hidden}) and bias ({kept},), has "
                    f"{tuple(linear.weight.shape)} and {tuple(linear.bias.shape)}. {hint}")
        dense = attention.output.dense
        require(tuple(dense.weight.shape) == (hidden, kept) and tuple(dense.bias.shape) == (hidden,),
                f"{where}: attention.output.dense should have weight ({hidden}, {kept}) and bias ({hidden},), has "
                f"{tuple(dense.weight.shape)} and {tuple(dense.bias.shape)}. {hint}")
        require(attention.self.num_attention_heads == heads_total - len(heads) and attention.self.all_head_size == kept,
                f"{where}: the layer still says num_attention_heads={attention.self.num_attention_heads}, "
                f"all_head_size={attention.self.all_head_size}; it has {heads_total - len(heads)} heads and {kept} "
                f"columns left (head_gates, layer_shapes and the saved config read these). {hint}")
        with torch.no_grad():
            got = cut(**inputs).last_hidden_state
        compare_tensors(got, expected, f"{where}: the hidden states against the model with those heads gated to 0",
                        hint, atol=1e-5)
    return ("slicing the head's rows and columns away computes exactly what gating it to 0 computes, with "
            "smaller matrices: what remove_heads does for every layer of a plan.")


@exercise("08.3", "head importance")
def check_head_importance(head_scores: Callable[[nn.Module, Iterable[dict]], torch.Tensor]) -> str:
    """Exercise 08.3: ``head_scores(model, batches)`` = Michel et al.'s head importance, ``|dL/d gate_h|``
    summed over the batches, ``[layers, heads]``, as
    :func:`~nlpprune_lessons.structured.transformer.head_importance` (unnormalised)."""
    from nlpprune_lessons.structured.transformer import head_importance

    require_callable(head_scores, "head_scores")
    model = _tiny_bert(classifier=True)
    batches = _tiny_batches(3, 83)
    expected = head_importance(model, batches)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    got = head_scores(model, batches)
    require(all(torch.equal(state[k], v) for k, v in model.state_dict().items()),
            "your function changed the model's weights: scoring only reads gradients, it takes no optimiser step.")
    compare_tensors(got, expected, "the scores of a 2-layer, 4-head classifier over 3 batches",
                    "Attach the gates with head_gates(model), a list with one tensor of ones per layer. For each "
                    "batch take the gradient of the mean cross-entropy (classification_loss) with respect to the "
                    "gates, and add up its absolute value batch by batch (the absolute value of each batch's "
                    "gradient, not of their sum; a sum over batches, not a mean). One row per layer.",
                    atol=1e-6, rtol=1e-4)
    return ("|dL/d gate| summed over batches: how fast the loss changes when a head is turned down, the score "
            "section 3 ranks heads by.")
