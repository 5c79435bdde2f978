"""Checks for the notebooks' exercises: a short "correct" line on success, a hint on failure.

Each exercise is a ``# YOUR CODE HERE`` ... ``# END YOUR CODE`` block in a cell tagged
``solution``, followed by a ``check_*`` call. The repository keeps the solved notebooks;
``nlpprune student`` writes copies with the blocks emptied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch


class ExerciseError(AssertionError):
    """The learner's answer is not right yet; the message is a hint."""


def _passed(message: str) -> None:
    print(f"\u2714 Correct: {message}")


def _require(condition: bool, hint: str) -> None:
    if not condition:
        raise ExerciseError(f"Not yet. {hint}")


def _require_callable(fn: object, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"pass your function {name} itself (not its result), got {type(fn).__name__}")


def check_zero_fraction(zero_fraction: Callable[[torch.Tensor], float]) -> None:
    """Exercise 00.1: ``zero_fraction(t)`` returns the share of entries of ``t`` equal to zero."""
    _require_callable(zero_fraction, "zero_fraction")
    cases = [
        (torch.tensor([0.0, 1.0, 0.0, 2.0]), 0.5),
        (torch.zeros(3, 5), 1.0),
        (torch.ones(7), 0.0),
        (torch.tensor([[0, 3], [4, 5], [0, 0]]), 0.5),  # integers, 2-D
        (torch.tensor([-0.0, 1e-12, 0.0]), 2 / 3),  # -0.0 is zero; a tiny number is not
    ]
    for tensor, expected in cases:
        got = zero_fraction(tensor.clone())
        _require(
            isinstance(got, (float, int)) and not isinstance(got, bool),
            f"return a Python float (use .item()), got {type(got).__name__} for {tensor.tolist()}",
        )
        _require(
            math.isclose(float(got), expected, abs_tol=1e-9),
            f"for {tensor.tolist()} the answer is {expected:.4f}, you returned {float(got):.4f}. "
            "Count entries with t == 0 (not abs(t) < eps) and divide by t.numel().",
        )
    _passed("zero_fraction counts exact zeros over all entries, for any shape and dtype.")


def check_negation_safe_stopwords(candidate: Iterable[str]) -> None:
    """Exercise 01.1: NLTK's English stopwords minus every negation word, nothing else changed."""
    from nlpprune_lessons.data import nltk_stopwords
    from nlpprune_lessons.text.tokenize import is_negation

    if isinstance(candidate, str):
        raise TypeError("pass a list or set of words, not a single string")
    chosen = set(candidate)
    nltk_list = set(nltk_stopwords())
    extra = sorted(chosen - nltk_list)
    _require(not extra, f"only remove words from NLTK's list; these are not in it: {extra[:10]}")
    kept_negations = sorted(w for w in chosen if is_negation(w))
    _require(
        not kept_negations,
        f"these still remove negation cues: {kept_negations[:10]}. Look for 'no', 'not', 'nor', "
        "words ending in n't, and their clipped forms such as 'didn' or 'wasn'.",
    )
    # A clipped contraction ("won" of "won't") may go either way: it is also a word of its own.
    lost = sorted(w for w in nltk_list - chosen if not is_negation(w) and w + "'t" not in nltk_list)
    _require(not lost, f"keep every other stopword; you dropped: {lost[:10]}")
    _passed(f"{len(chosen)} stopwords kept, {len(nltk_list) - len(chosen)} negation words taken out.")


def check_oov_rate(oov_rate: Callable[[Sequence[Sequence[str]], object], float]) -> None:
    """Exercise 01.2: ``oov_rate(token_lists, vocab)`` = share of tokens (not types) not in ``vocab``."""
    from nlpprune_lessons.text.vocab import Vocab

    _require_callable(oov_rate, "oov_rate")
    vocab = Vocab(["the", "film", "good"])
    cases = [
        ([["the", "film", "was", "good"]], 0.25),
        ([["the", "the", "the"], ["dull"]], 0.25),  # tokens, not types: "the" counts three times
        ([["<unk>"], ["film"]], 0.0),  # a special token in the vocabulary is not out of it
        ([["wow"], [], ["meh"]], 1.0),  # empty reviews add no tokens
    ]
    for token_lists, expected in cases:
        got = oov_rate(token_lists, vocab)
        _require(
            got is not None and math.isclose(float(got), expected, abs_tol=1e-9),
            f"for {token_lists} the answer is {expected}, you returned {got}. Divide the number of "
            "tokens missing from vocab by the number of tokens (count repeats; skip nothing).",
        )
    _passed("oov_rate counts token occurrences, as the OOV numbers of this notebook do.")


def check_lstm_parameter_count(lstm_parameters: Callable[[int, int], int]) -> None:
    """Exercise 02.1: parameters of one unidirectional ``nn.LSTM`` layer, by formula."""
    _require_callable(lstm_parameters, "lstm_parameters")
    for input_size, hidden_size in [(128, 256), (1, 1), (300, 50), (256, 256)]:
        expected = sum(p.numel() for p in torch.nn.LSTM(input_size, hidden_size).parameters())
        got = lstm_parameters(input_size, hidden_size)
        _require(
            got == expected,
            f"for input_size={input_size}, hidden_size={hidden_size} nn.LSTM has {expected} "
            f"parameters, you returned {got}. Four gates, each with an input matrix "
            "(hidden x input), a recurrent matrix (hidden x hidden) and two bias vectors (PyTorch "
            "keeps b_ih and b_hh separately).",
        )
    _passed("4 x (hidden*input + hidden*hidden + 2*hidden), as nn.LSTM allocates.")


def check_global_magnitude_masks(global_magnitude_masks: Callable[[list, float], list]) -> None:
    """Exercise 03.1: masks (1 keep, 0 prune) zeroing the ``round(amount * total)`` smallest |w|
    over all the given weight tensors together, as ``torch.nn.utils.prune.global_unstructured``."""
    from torch.nn.utils import prune as torch_prune

    _require_callable(global_magnitude_masks, "global_magnitude_masks")
    generator = torch.Generator().manual_seed(0)
    for shapes, amount in [([(4, 3), (2, 5)], 0.5), ([(8, 8), (3, 8), (16,)], 0.9), ([(5, 5)], 0.0)]:
        weights = [torch.randn(*shape, generator=generator) * (i + 1) for i, shape in enumerate(shapes)]
        holders = [torch.nn.Module() for _ in weights]
        for holder, w in zip(holders, weights):
            holder.weight = torch.nn.Parameter(w.clone())
        torch_prune.global_unstructured([(h, "weight") for h in holders], torch_prune.L1Unstructured, amount=amount)
        expected = [h.weight_mask for h in holders]
        got = global_magnitude_masks([w.clone() for w in weights], amount)
        _require(
            isinstance(got, (list, tuple)) and len(got) == len(weights)
            and all(torch.is_tensor(g) and g.shape == w.shape for g, w in zip(got, weights)),
            "return one mask per weight, each with that weight's shape",
        )
        wrong = sum(int((g.float() != e).sum()) for g, e in zip(got, expected))
        _require(
            wrong == 0,
            f"for shapes {shapes} at amount {amount}, {wrong} mask entries differ from torch's. Rank all "
            "|w| of all tensors together (torch.cat of the flattened weights), zero the "
            "round(amount * total) smallest, then split the flat mask back per tensor.",
        )
    _passed("one threshold over all matrices, identical to prune.global_unstructured.")


def check_unit_rows(unit_rows: Callable[[int, int, int], Sequence[int]]) -> None:
    """Exercise 04.1: ``unit_rows(unit, hidden_size, gates)`` = the rows of ``weight_ih`` / ``weight_hh``
    (and bias entries) that belong to hidden unit ``unit``: one per gate block, in block order."""
    _require_callable(unit_rows, "unit_rows")
    for unit, hidden_size, gates in [(0, 4, 4), (3, 4, 4), (5, 256, 4), (2, 3, 3), (255, 256, 3)]:
        expected = [g * hidden_size + unit for g in range(gates)]
        got = list(unit_rows(unit, hidden_size, gates))
        _require(got == expected,
                 f"for unit={unit}, hidden_size={hidden_size}, gates={gates} the rows are {expected}, you returned "
                 f"{got}. weight_ih stacks the gate blocks (LSTM: i, f, g, o; GRU: r, z, n) on top of each other, "
                 "each hidden_size rows tall; the unit has one row in each block.")
    # the rows really are the unit: zero them in an LSTM and the unit's output stays exactly 0
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(lstm, name)[list(unit_rows(2, 5, 4))] = 0.0
        out, _ = lstm(torch.randn(2, 6, 3))
    _require(bool((out[..., 2] == 0).all()), "zeroing your rows did not silence unit 2 of an LSTM.")
    _passed("row g * hidden_size + unit of each gate block; zeroing them silences the unit.")


def check_distinct_n(distinct: Callable[[Sequence[Sequence[str]], int], float]) -> None:
    """Exercise 05.1: ``distinct(sentences, n)`` = distinct n-grams / all n-grams of the whole set."""
    from nlpprune_lessons.metrics import distinct_n

    _require_callable(distinct, "distinct")
    cases = [([["a", "b", "a"], ["a", "b"]], 1), ([["a", "b", "a"], ["a", "b"]], 2),
             ([["the", "cat", "sat"], ["the", "cat", "ran"]], 2), ([["a"] * 5], 1), ([["x", "y"]], 3)]
    for sentences, n in cases:
        expected, got = distinct_n(sentences, n), distinct(sentences, n)
        _require(isinstance(got, (int, float)) and abs(got - expected) < 1e-9,
                 f"for {sentences} and n={n} the answer is {expected:.4f}, you returned {got!r}. Collect the "
                 "n-grams of every sentence (tuples of n consecutive tokens; none in a sentence shorter than n), "
                 "then divide the number of distinct ones by the number of all of them (0 if there are none).")
    _passed("distinct-n over the whole set, as nlpprune_lessons.metrics.distinct_n computes it.")


def check_attention_mask(attention_mask: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Exercise 06.1: ``attention_mask(lengths, width)`` -> ``[B, width]`` with 1 on each row's first
    ``lengths[b]`` positions (real tokens) and 0 after (padding)."""
    _require_callable(attention_mask, "attention_mask")
    cases = [(torch.tensor([3, 1, 4]), 4), (torch.tensor([2]), 5), (torch.tensor([6, 6]), 6)]
    for lengths, width in cases:
        expected = (torch.arange(width)[None, :] < lengths[:, None]).long()
        got = attention_mask(lengths.clone(), width)
        _require(isinstance(got, torch.Tensor) and got.shape == expected.shape,
                 f"for lengths {lengths.tolist()} and width {width} return a tensor of shape "
                 f"{tuple(expected.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        _require(torch.equal(got.long(), expected),
                 f"for lengths {lengths.tolist()} and width {width} the mask is {expected.tolist()}, you returned "
                 f"{got.tolist()}. Compare positions torch.arange(width) with each row's length.")
    _passed("1 marks real tokens, 0 padding; the encoder's attention ignores the 0 positions.")


def check_topk_mask(keep_top: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 07.1: ``keep_top(scores, sparsity)`` keeps exactly the ``numel - round(sparsity * numel)``
    highest scores (1) and zeroes the rest (0), in ``scores``' shape."""
    from nlpprune_lessons.pruning import topk_mask

    _require_callable(keep_top, "keep_top")
    generator = torch.Generator().manual_seed(7)
    for shape, sparsity in [((4, 6), 0.5), ((10, 3), 0.9), ((5,), 0.0), ((8, 8), 0.95)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = topk_mask(scores, sparsity), keep_top(scores.clone(), sparsity)
        _require(isinstance(got, torch.Tensor) and got.shape == scores.shape,
                 f"return a tensor of shape {tuple(scores.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        _require(torch.equal(got.float(), expected),
                 f"for sparsity {sparsity} on a {tuple(shape)} tensor keep {int(expected.sum())} of {scores.numel()} "
                 f"entries (the highest scores); you kept {int((got != 0).sum())}, or not the highest ones. "
                 "Zero the round(sparsity * numel) lowest scores (torch.topk(..., largest=False)).")
    _passed("exactly the top-k scores are kept in every matrix, as movement pruning's forward pass does.")


def check_head_columns(head_columns: Callable[[int, int], Sequence[int]]) -> None:
    """Exercise 08.1: ``head_columns(head, head_size)`` = the output rows of query/key/value (and the
    input columns of the attention-output dense) that belong to attention head ``head``."""
    _require_callable(head_columns, "head_columns")
    for head, size in [(0, 32), (3, 32), (11, 32), (2, 64), (5, 8)]:
        expected = list(range(head * size, (head + 1) * size))
        got = [int(i) for i in head_columns(head, size)]
        _require(got == expected,
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
    _require(torch.allclose(gated, zeroed, atol=1e-6), "zeroing your columns of head 1 did not silence head 1.")
    _passed("head h owns the block h * head_size ... (h + 1) * head_size - 1; zeroing it silences the head.")


def check_nm_mask(keep_n_of_m: Callable[[torch.Tensor, int, int], torch.Tensor]) -> None:
    """Exercise 09.1: ``keep_n_of_m(scores, n, m)`` keeps (1) the ``n`` highest of every ``m`` consecutive
    scores along each row and zeroes (0) the rest, in ``scores``' shape."""
    from nlpprune_lessons.pruning import nm_mask

    _require_callable(keep_n_of_m, "keep_n_of_m")
    generator = torch.Generator().manual_seed(9)
    for shape, n, m in [((3, 8), 2, 4), ((4, 16), 2, 4), ((2, 16), 4, 8), ((5, 6), 1, 3)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = nm_mask(scores, n, m), keep_n_of_m(scores.clone(), n, m)
        _require(isinstance(got, torch.Tensor) and got.shape == scores.shape,
                 f"return a tensor of shape {tuple(scores.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        _require(torch.equal(got.float(), expected),
                 f"for {n}:{m} on a {tuple(shape)} tensor, every group of {m} consecutive entries of a row must keep "
                 f"its {n} highest scores. Reshape to (-1, {m}), take topk({n}, dim=1) and scatter ones.")
    _passed("every group of m consecutive weights keeps its n highest scores: the pattern sparse tensor cores read.")
