"""Checks for the exercises of lesson 07 (sparse BERT)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import (
    compare_numbers,
    compare_tensors,
    exercise,
    require,
    require_callable,
)

__all__ = ["check_bitmask_encoding", "check_straight_through", "check_topk_mask"]


@exercise("07.1", "top-k mask")
def check_topk_mask(keep_top: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    """Exercise 07.1: ``keep_top(scores, sparsity)`` keeps exactly the ``numel - round(sparsity * numel)``
    highest scores (1) and zeroes the rest (0), in ``scores``' shape."""
    from nlpprune_lessons.pruning import topk_mask

    require_callable(keep_top, "keep_top")
    generator = torch.Generator().manual_seed(7)
    hint = ("Keep (1) the entries with the highest scores and zero (0) the round(sparsity * numel) lowest, over the "
            "whole tensor; the mask has the scores' shape.")
    for shape, sparsity in [((4, 6), 0.5), ((10, 3), 0.9), ((5,), 0.0), ((8, 8), 0.95)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = topk_mask(scores, sparsity), keep_top(scores.clone(), sparsity)
        where = f"for sparsity {sparsity} on a {tuple(shape)} tensor"
        require(isinstance(got, torch.Tensor) and got.shape == scores.shape,
                f"{where}: return a tensor of shape {tuple(scores.shape)}, got "
                f"{tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}. {hint}")
        kept = int((got != 0).sum())
        require(kept == int(expected.sum()),
                f"{where}: keep {int(expected.sum())} of {scores.numel()} entries, you kept {kept}. {hint}")
        compare_tensors(got.float(), expected, f"{where}, the mask", hint)
    return "exactly the top-k scores are kept in every matrix, as movement pruning's forward pass does."


@exercise("07.2", "straight-through gradient")
def check_straight_through(movement_forward: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """Exercise 07.2: ``movement_forward(weight, scores, sparsity)`` returns ``weight * topk_mask(scores,
    sparsity)``, and backward gives ``dL/dscores = dL/dout * weight`` and ``dL/dweight = dL/dout * mask``
    (the straight-through estimator), as :func:`nlpprune_lessons.pruning.straight_through`."""
    from nlpprune_lessons.pruning import straight_through, topk_mask

    require_callable(movement_forward, "movement_forward")
    generator = torch.Generator().manual_seed(72)
    hint = ("The forward pass keeps the weights with the top-k scores: weight * mask. Top-k has a zero "
            "gradient almost everywhere, so movement pruning treats it as the identity in the backward "
            "pass: the gradient that reaches the mask goes on to the scores unchanged, which makes "
            "dL/dscores = dL/dout * weight, while the weight itself gets dL/dout * mask.")
    for shape, sparsity in [((6, 8), 0.5), ((12, 5), 0.9), ((4, 4), 0.25)]:
        weight, scores = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
        upstream = torch.randn(shape, generator=generator)  # dL/dout from the rest of the network
        w_ref, s_ref = weight.clone().requires_grad_(), scores.clone().requires_grad_()
        expected = straight_through(w_ref, s_ref, topk_mask(scores, sparsity))
        expected.backward(upstream)
        w, s = weight.clone().requires_grad_(), scores.clone().requires_grad_()
        got = movement_forward(w, s, sparsity)
        where = f"{tuple(shape)} weights at sparsity {sparsity}"
        compare_tensors(got, expected, f"{where}: the forward output", hint)
        require(got.requires_grad, f"{where}: your output carries no gradient (it was computed under no_grad or "
                                   f"detached). {hint}")
        got.backward(upstream)
        require(s.grad is not None, f"{where}: no gradient reached the scores. {hint}")
        compare_tensors(s.grad, s_ref.grad, f"{where}: dL/dscores", hint)
        require(w.grad is not None, f"{where}: no gradient reached the weight. {hint}")
        compare_tensors(w.grad, w_ref.grad, f"{where}: dL/dweight", hint)
    return ("forward W * top-k(S), backward dL/dS = dL/dW' * W: a score rises when the gradient pushes its "
            "weight away from zero, whether the weight is kept or not, so a pruned weight can come back.")


@exercise("07.3", "bitmask + values")
def check_bitmask_encoding(encode_sparse: Callable[[torch.Tensor], tuple]) -> str:
    """Exercise 07.3: ``encode_sparse(weight) -> (bits, values, nbytes)``: the packed nonzero pattern,
    the nonzero values and their byte count, as :func:`nlpprune_lessons.pruning.encode_bitmask` and
    :func:`~nlpprune_lessons.pruning.bitmask_nbytes` (what ``save_sparse`` writes)."""
    from nlpprune_lessons.pruning import bitmask_nbytes, encode_bitmask

    require_callable(encode_sparse, "encode_sparse")
    generator = torch.Generator().manual_seed(73)
    bits_hint = ("bits is the flattened (row-major) pattern weight != 0, packed eight entries to a uint8 byte, the "
                 "first entry in the most significant bit (value 128), the last byte padded with zero bits: "
                 "numpy.packbits's order, ceil(numel / 8) bytes.")
    values_hint = "values are the nonzero entries in row-major order, in the weight's dtype."
    bytes_hint = ("The byte count is one byte per eight weights, rounded up, plus each value's element size "
                  "(values.element_size(): 4 for float32, 2 for float16).")
    for shape, sparsity, dtype in [((6, 10), 0.7, torch.float32), ((16, 8), 0.5, torch.float16),
                                   ((3, 5), 1.0, torch.float32), ((1, 9), 0.0, torch.float32)]:
        weight = torch.randn(shape, generator=generator)
        weight[torch.rand(shape, generator=generator) < sparsity] = 0.0
        weight = weight.to(dtype)
        expected_bits, expected_values = encode_bitmask(weight)
        got = encode_sparse(weight.clone())
        where = f"a {tuple(shape)} {str(dtype).removeprefix('torch.')} weight with {int((weight == 0).sum())} zeros"
        require(isinstance(got, (tuple, list)) and len(got) == 3,
                f"return the triple (bits, values, nbytes), got {type(got).__name__}")
        bits, values, nbytes = got
        compare_tensors(bits, expected_bits, f"{where}: bits", bits_hint, atol=0, rtol=0, check_dtype=True)
        compare_tensors(values, expected_values, f"{where}: values", values_hint, atol=0, rtol=0, check_dtype=True)
        compare_numbers(nbytes, bitmask_nbytes(weight), f"{where}: nbytes", bytes_hint)
    return ("the same bytes save_sparse writes: at 90% sparsity a float32 matrix takes 1/8 + 0.1 x 4 = 0.525 "
            "bytes per weight instead of 4, about 13% of dense.")
