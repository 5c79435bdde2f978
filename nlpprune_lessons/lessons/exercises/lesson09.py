"""Checks for the exercises of lesson 09 (pruning for generation)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import compare_tensors, exercise, require, require_callable

__all__ = ["check_nm_mask", "check_obs_column", "check_wanda_scores"]


@exercise("09.1", "N:M mask")
def check_nm_mask(keep_n_of_m: Callable[[torch.Tensor, int, int], torch.Tensor]) -> str:
    """Exercise 09.1: ``keep_n_of_m(scores, n, m)`` keeps (1) the ``n`` highest of every ``m`` consecutive
    scores along each row and zeroes (0) the rest, in ``scores``' shape."""
    from nlpprune_lessons.pruning import nm_mask

    require_callable(keep_n_of_m, "keep_n_of_m")
    generator = torch.Generator().manual_seed(9)
    for shape, n, m in [((3, 8), 2, 4), ((4, 16), 2, 4), ((2, 16), 4, 8), ((5, 6), 1, 3)]:
        scores = torch.randn(shape, generator=generator)
        expected, got = nm_mask(scores, n, m), keep_n_of_m(scores.clone(), n, m)
        where = f"for {n}:{m} on a {tuple(shape)} tensor"
        hint = (f"Every group of {m} consecutive entries of a row (entries 0..{m - 1}, {m}..{2 * m - 1}, ...) must keep "
                f"its {n} highest scores as 1 and the others as 0: {n} per group, not {n} per row or per column.")
        compare_tensors(got.float() if torch.is_tensor(got) else got, expected, f"{where}, the mask", hint)
    return "every group of m consecutive weights keeps its n highest scores: the pattern sparse tensor cores read."


@exercise("09.2", "Wanda scores")
def check_wanda_scores(wanda_importance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Exercise 09.2: ``wanda_importance(weight, inputs)``, ``inputs`` the Linear's inputs ``[batch, tokens, in]``,
    = ``|W_ij| * ||X_j||_2`` with the norm over every token, as
    :func:`nlpprune_lessons.pruning.wanda_scores` of the inputs' summed squares."""
    from nlpprune_lessons.pruning import row_mask, wanda_scores

    require_callable(wanda_importance, "wanda_importance")
    generator = torch.Generator().manual_seed(92)
    hint = ("Score weight W_ij by |W_ij| times the 2-norm of input feature j, the square root of the sum of its "
            "squares over every token of every sequence (flatten batch and tokens first): one number per input "
            "feature, i.e. per column of W, the same for every row.")
    changed = []
    for rows, features, batch, tokens in [(6, 10, 3, 5), (4, 16, 2, 9), (8, 12, 1, 20)]:
        weight = torch.randn(rows, features, generator=generator)
        scale = torch.ones(features)
        scale[torch.randperm(features, generator=generator)[:2]] = 20.0  # a few loud features, as in LLMs
        inputs = torch.randn(batch, tokens, features, generator=generator) * scale
        expected = wanda_scores(weight, inputs.reshape(-1, features).square().sum(0))
        got = wanda_importance(weight.clone(), inputs.clone())
        compare_tensors(got, expected, f"a ({rows}, {features}) weight with inputs of shape {(batch, tokens, features)}",
                        hint)
        changed.append((row_mask(expected, 0.5) != row_mask(weight.abs(), 0.5)).float().mean().item())
    return (f"|W| * ||X_j||_2, the Wanda score: with a few loud input features it changes up to {max(changed):.0%} "
            "of magnitude's keep/drop decisions at 50% per row on these weights.")


@exercise("09.3", "one OBS column update")
def check_obs_column(obs_column: Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor]) -> str:
    """Exercise 09.3: ``obs_column(weight, u, column, pruned)`` zeroes the ``pruned`` entries of column
    ``column`` and spreads their error over the later columns through ``u`` (``u^T u = H^-1``), as
    :func:`nlpprune_lessons.pruning.obs_column_update`; applied to every column in turn it must give
    :func:`~nlpprune_lessons.pruning.sparsegpt_update`."""
    from nlpprune_lessons.pruning import inverse_hessian_factor, obs_column_update, row_mask, sparsegpt_update

    require_callable(obs_column, "obs_column")
    generator = torch.Generator().manual_seed(93)
    features, rows = 16, 16
    mixing = torch.eye(features) + 0.6 * torch.randn(features, features, generator=generator)
    x = torch.randn(96, features, generator=generator) @ mixing  # correlated inputs, as real activations are
    hessian = x.T @ x
    u = inverse_hessian_factor(hessian)
    weight = torch.randn(rows, features, generator=generator)
    mask = row_mask(weight.abs(), 0.5)
    hint = ("For each pruned entry r of the column, the error is e_r = weight[r, column] / u[column, column] (0 "
            "for a kept entry); every column k after it becomes weight[r, k] - e_r * u[column, k]. The pruned "
            "entries become 0, the kept entries of the column and every column before it stay as they were. "
            "Return a new tensor.")
    for column in (0, 7, 15):
        pruned = mask[:, column] == 0
        expected = obs_column_update(weight, u, column, pruned)
        got = obs_column(weight.clone(), u.clone(), column, pruned.clone())
        compare_tensors(got, expected, f"a ({rows}, {features}) weight after updating column {column}", hint)
    swept = weight.clone()
    for column in range(features):
        swept = obs_column(swept, u.clone(), column, mask[:, column] == 0)
        require(isinstance(swept, torch.Tensor), f"column {column}: return the updated weight, got {type(swept).__name__}")
    expected = sparsegpt_update(weight, mask, hessian)
    compare_tensors(swept, expected, "your update applied to columns 0..15 in turn, against sparsegpt_update", hint,
                    atol=1e-4, rtol=1e-3)

    def error(w: torch.Tensor) -> float:
        return (x @ weight.T - x @ w.T).square().sum().item()

    return (f"one Optimal Brain Surgeon step, and column by column it is SparseGPT's update: on these inputs the "
            f"reconstruction error ||XW^T - XW'^T||^2 of the 50% mask falls from {error(weight * mask):.0f} "
            f"(zeros only) to {error(expected):.0f}.")
