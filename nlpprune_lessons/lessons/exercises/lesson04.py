"""Checks for the exercises of lesson 04 (structured pruning of RNNs)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from nlpprune_lessons.lessons.exercises.protocol import compare_tensors, exercise, require, require_callable

__all__ = ["check_remove_unit", "check_unit_columns", "check_unit_rows"]


def _index_list(got: object, what: str, size: int, hint: str) -> list[int]:
    """``got`` as a list of ints in ``range(size)``, or an ExerciseError saying what it is instead."""
    if torch.is_tensor(got):
        got = got.tolist()
    require(isinstance(got, Sequence) and not isinstance(got, str),
            f"{what}: return a list of int indices, got {type(got).__name__}. {hint}")
    values = list(got)
    require(all(isinstance(v, int) and not isinstance(v, bool) for v in values),
            f"{what}: return int indices, got {values!r}. {hint}")
    require(all(0 <= v < size for v in values),
            f"{what}: every index must lie in 0..{size - 1} (the matrix has {size} of them), got {values}. {hint}")
    return values


@exercise("04.1", "a hidden unit's rows")
def check_unit_rows(unit_rows: Callable[[int, int, int], Sequence[int]]) -> str:
    """Exercise 04.1: ``unit_rows(unit, hidden_size, gates)`` = the rows of ``weight_ih`` / ``weight_hh``
    (and bias entries) that belong to hidden unit ``unit``: one per gate block, in block order, as the
    library's :func:`~nlpprune_lessons.structured.rnn.gate_rows` selects them."""
    from nlpprune_lessons.structured.rnn import gate_rows

    require_callable(unit_rows, "unit_rows")
    hint = ("weight_ih stacks the gate blocks (LSTM: i, f, g, o; GRU: r, z, n) on top of each other, each "
            "hidden_size rows tall, in that order; the unit has one row in each block, at the same place.")
    for unit, hidden_size, gates in [(0, 4, 4), (3, 4, 4), (5, 256, 4), (2, 3, 3), (255, 256, 3)]:
        expected = gate_rows(torch.tensor([unit]), hidden_size, gates).tolist()
        what = f"for unit={unit}, hidden_size={hidden_size}, gates={gates}"
        got = _index_list(unit_rows(unit, hidden_size, gates), what, gates * hidden_size, hint)
        require(len(got) == gates, f"{what}: expected {gates} rows (one per gate block), got {len(got)}: {got}. {hint}")
        require(got == expected, f"{what}: expected the rows {expected}, got {got}. {hint}")
    # the rows really are the unit: zero them in an LSTM and the unit's output stays exactly 0
    generator = torch.Generator().manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True)  # the weights are set below
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            param = getattr(lstm, name)
            param.copy_(torch.randn(param.shape, generator=generator))
            param[list(unit_rows(2, 5, 4))] = 0.0
        out, _ = lstm(torch.randn(2, 6, 3, generator=generator))
    require(bool((out[..., 2] == 0).all()), f"zeroing your rows did not silence unit 2 of an LSTM. {hint}")
    return "row g * hidden_size + unit of each gate block; zeroing them silences the unit."


@exercise("04.2", "a hidden unit's columns")
def check_unit_columns(unit_columns: Callable[[int, int, int], tuple[Sequence[int], Sequence[int]]]) -> str:
    """Exercise 04.2: ``unit_columns(unit, hidden_size, directions) -> (recurrent, downstream)``: the
    columns of each direction's own ``weight_hh`` that read hidden unit ``unit``, and the columns of
    the next layer's ``weight_ih`` (or the head's weight) that read it, whose input is the layer's output
    ``[forward | backward]`` (as the library's :func:`~nlpprune_lessons.structured.rnn.direction_columns`
    lays it out). Also checked by behaviour: with those columns zeroed in a two-layer LSTM, the
    unit's own weights no longer change anything downstream."""
    from nlpprune_lessons.structured.rnn import direction_columns

    require_callable(unit_columns, "unit_columns")
    hint_hh = ("weight_hh is [gates * hidden_size, hidden_size]: its rows are the gate blocks, its columns the "
               "hidden units whose previous output it reads, one column per unit (each direction has its own "
               "weight_hh).")
    hint_next = ("The next layer reads the layer's output, which holds the forward direction's hidden_size units "
                 "first and then, when bidirectional, the backward direction's: the unit appears once per direction.")
    for unit, hidden_size, directions in [(0, 4, 1), (3, 4, 1), (2, 5, 2), (4, 5, 2), (0, 7, 2)]:
        what = f"for unit={unit}, hidden_size={hidden_size}, directions={directions}"
        got = unit_columns(unit, hidden_size, directions)
        require(isinstance(got, (tuple, list)) and len(got) == 2,
                f"{what}: return the pair (recurrent columns, downstream columns), got {type(got).__name__}")
        recurrent = _index_list(got[0], f"{what}, the columns of weight_hh", hidden_size, hint_hh)
        downstream = _index_list(got[1], f"{what}, the columns of the next layer", directions * hidden_size, hint_next)
        require(recurrent == [unit], f"{what}: expected the weight_hh columns {[unit]}, got {recurrent}. {hint_hh}")
        expected = direction_columns(torch.tensor([unit]), hidden_size, directions).tolist()
        require(sorted(downstream) == expected,
                f"{what}: expected the next layer's columns {expected}, got {downstream}. {hint_next}")
    # behaviour: cut the unit's outgoing columns, then its own weights must not matter downstream
    generator = torch.Generator().manual_seed(1)
    unit, hidden_size = 2, 5
    lstm = nn.LSTM(3, hidden_size, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.7)
        recurrent, downstream = unit_columns(unit, hidden_size, 2)
        for name in ("weight_hh_l0", "weight_hh_l0_reverse"):
            getattr(lstm, name)[:, list(recurrent)] = 0.0
        for name in ("weight_ih_l1", "weight_ih_l1_reverse"):
            getattr(lstm, name)[:, list(downstream)] = 0.0
        other = copy.deepcopy(lstm)
        rows = [g * hidden_size + unit for g in range(4)]
        for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"):
            getattr(other, name)[rows] = torch.randn(len(rows), getattr(other, name).shape[1], generator=generator) * 3
        x = torch.randn(2, 6, 3, generator=generator)
        compare_tensors(other(x)[0], lstm(x)[0], "output of a 2-layer bidirectional LSTM after cutting your columns "
                        "and then changing unit 2's own weights", f"{hint_hh} {hint_next}")
    return ("column `unit` of weight_hh, and one column per direction (unit, hidden_size + unit) of whatever reads "
            "the layer; with them cut, nothing downstream depends on the unit.")


def _classifier(hidden_size: int, seed: int):
    from nlpprune_lessons.models.rnn import RNNClassifier

    model = RNNClassifier(vocab_size=20, num_classes=3, embed_dim=4, hidden_size=hidden_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.6)
    return model.eval()


@exercise("04.3", "removing one unit")
def check_remove_unit(remove_unit: Callable[[nn.LSTM, nn.Linear, int], tuple[nn.LSTM, nn.Linear]]) -> str:
    """Exercise 04.3: ``remove_unit(lstm, linear, unit) -> (new_lstm, new_linear)``: new, smaller modules
    without hidden unit ``unit`` of a one-layer ``nn.LSTM`` (``batch_first``) and of the ``nn.Linear`` that
    reads its final hidden state. Compared with the library's
    :func:`~nlpprune_lessons.structured.remove_hidden_units` (shapes and values) and, in a classifier,
    with the model whose unit is zeroed (:func:`~nlpprune_lessons.structured.protocols.zero_hidden_units`)."""
    from nlpprune_lessons.structured import remove_hidden_units
    from nlpprune_lessons.structured.protocols import zero_hidden_units

    require_callable(remove_unit, "remove_unit")
    hint = ("Keep every row of weight_ih, weight_hh and both biases except the unit's row in each of the four gate "
            "blocks (exercise 1), keep every column of weight_hh and of the Linear's weight except the unit's "
            "(exercise 2), copy the kept values into new modules of the smaller size, and keep the Linear's bias.")
    tested = 0
    for hidden_size, unit, seed in [(6, 0, 0), (6, 3, 1), (5, 4, 2), (8, 6, 3)]:
        model = _classifier(hidden_size, seed)
        original = {name: p.detach().clone() for name, p in model.named_parameters()}
        expected = remove_hidden_units(model, {0: [unit]}).eval()
        where = f"hidden_size {hidden_size}, unit {unit}"
        got = remove_unit(model.rnn, model.classifier, unit)
        require(isinstance(got, (tuple, list)) and len(got) == 2,
                f"{where}: return the pair (new LSTM, new Linear), got {type(got).__name__}")
        new_lstm, new_linear = got
        require(isinstance(new_lstm, nn.LSTM) and isinstance(new_linear, nn.Linear),
                f"{where}: return an nn.LSTM and an nn.Linear, got {type(new_lstm).__name__} and "
                f"{type(new_linear).__name__}")
        for name, p in model.named_parameters():
            require(torch.equal(p.detach(), original[name]),
                    f"{where}: your function changed the original model's {name}; build new modules and copy the "
                    "kept weights into them, leaving the originals as they were.")
        require(new_lstm.batch_first and new_lstm.num_layers == 1 and not new_lstm.bidirectional,
                f"{where}: the new LSTM must be one-layer, unidirectional and batch_first=True, like the original.")
        layer = expected.rnn.layers[0]
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            compare_tensors(getattr(new_lstm, name), getattr(layer, name), f"{where}: the new LSTM's {name}", hint)
        compare_tensors(new_linear.weight, expected.classifier.weight, f"{where}: the new Linear's weight", hint)
        compare_tensors(new_linear.bias, expected.classifier.bias, f"{where}: the new Linear's bias", hint)
        # the cut classifier computes what the one with the unit zeroed computes
        slim = copy.deepcopy(model)
        slim.rnn, slim.classifier = new_lstm, new_linear
        generator = torch.Generator().manual_seed(10 + seed)
        ids = torch.randint(1, 20, (4, 7), generator=generator)
        lengths = torch.tensor([7, 5, 3, 6])
        with torch.no_grad():
            zeroed = zero_hidden_units(model, {0: [unit]}).eval()
            compare_tensors(slim.eval()(ids, lengths), zeroed(ids, lengths),
                            f"{where}: logits of a classifier using your modules vs the classifier with the unit zeroed",
                            hint)
        tested += 1
    return (f"your cut matches remove_hidden_units in {tested} cases: 4 x (input + hidden + 2) fewer gate weights, "
            "4 x (hidden - 1) fewer recurrent ones and one column of the Linear, and the same logits as the model "
            "with the unit zeroed.")
