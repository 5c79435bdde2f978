"""Checks for the exercises of lesson 05 (text GAN pruning)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_distinct_n"]


@exercise("05.1", "distinct-n")
def check_distinct_n(distinct: Callable[[Sequence[Sequence[str]], int], float]) -> str:
    """Exercise 05.1: ``distinct(sentences, n)`` = distinct n-grams / all n-grams of the whole set."""
    from nlpprune_lessons.metrics import distinct_n

    require_callable(distinct, "distinct")
    cases = [([["a", "b", "a"], ["a", "b"]], 1), ([["a", "b", "a"], ["a", "b"]], 2),
             ([["the", "cat", "sat"], ["the", "cat", "ran"]], 2), ([["a"] * 5], 1), ([["x", "y"]], 3)]
    for sentences, n in cases:
        expected, got = distinct_n(sentences, n), distinct(sentences, n)
        require(isinstance(got, (int, float)) and abs(got - expected) < 1e-9,
                 f"for {sentences} and n={n} the answer is {expected:.4f}, you returned {got!r}. Collect the "
                 "n-grams of every sentence (tuples of n consecutive tokens; none in a sentence shorter than n), "
                 "then divide the number of distinct ones by the number of all of them (0 if there are none).")
    return ("distinct-n over the whole set, as nlpprune_lessons.metrics.distinct_n computes it.")
