"""Checks for the exercises of lesson 01 (text preprocessing)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence


from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_negation_safe_stopwords", "check_oov_rate"]


@exercise("01.1", "negation-safe stopwords")
def check_negation_safe_stopwords(candidate: Iterable[str]) -> str:
    """Exercise 01.1: NLTK's English stopwords minus every negation word, nothing else changed."""
    from nlpprune_lessons.data import nltk_stopwords
    from nlpprune_lessons.text.tokenize import is_negation

    if isinstance(candidate, str):
        raise TypeError("pass a list or set of words, not a single string")
    chosen = set(candidate)
    nltk_list = set(nltk_stopwords())
    extra = sorted(chosen - nltk_list)
    require(not extra, f"only remove words from NLTK's list; these are not in it: {extra[:10]}")
    kept_negations = sorted(w for w in chosen if is_negation(w))
    require(
        not kept_negations,
        f"these still remove negation cues: {kept_negations[:10]}. Look for 'no', 'not', 'nor', "
        "words ending in n't, and their clipped forms such as 'didn' or 'wasn'.",
    )
    # A clipped contraction ("won" of "won't") may go either way: it is also a word of its own.
    lost = sorted(w for w in nltk_list - chosen if not is_negation(w) and w + "'t" not in nltk_list)
    require(not lost, f"keep every other stopword; you dropped: {lost[:10]}")
    return (f"{len(chosen)} stopwords kept, {len(nltk_list) - len(chosen)} negation words taken out.")


@exercise("01.2", "OOV rate")
def check_oov_rate(oov_rate: Callable[[Sequence[Sequence[str]], object], float]) -> str:
    """Exercise 01.2: ``oov_rate(token_lists, vocab)`` = share of tokens (not types) not in ``vocab``."""
    from nlpprune_lessons.text.vocab import Vocab

    require_callable(oov_rate, "oov_rate")
    vocab = Vocab(["the", "film", "good"])
    cases = [
        ([["the", "film", "was", "good"]], 0.25),
        ([["the", "the", "the"], ["dull"]], 0.25),  # tokens, not types: "the" counts three times
        ([["<unk>"], ["film"]], 0.0),  # a special token in the vocabulary is not out of it
        ([["wow"], [], ["meh"]], 1.0),  # empty reviews add no tokens
    ]
    for token_lists, expected in cases:
        got = oov_rate(token_lists, vocab)
        require(
            got is not None and math.isclose(float(got), expected, abs_tol=1e-9),
            f"for {token_lists} the answer is {expected}, you returned {got}. Divide the number of "
            "tokens missing from vocab by the number of tokens (count repeats; skip nothing).",
        )
    return ("oov_rate counts token occurrences, as the OOV numbers of this notebook do.")
