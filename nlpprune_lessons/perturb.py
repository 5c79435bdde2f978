"""Seeded input perturbations for robustness tests: typos inside words and dropped words.

Each function takes one tokenised text and returns a new list (the input is not changed). The same
``seed`` gives the same perturbation, so a dense and a pruned model are tested on identical inputs.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

#: The character edits a typo is drawn from.
TYPO_EDITS = ("swap", "delete", "insert", "substitute")
#: Words shorter than this are left alone by :func:`add_typos` (a typo in "a" or "is" is no typo).
MIN_TYPO_LENGTH = 3


def _check_rate(rate: float) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")


def _check_tokens(tokens: Sequence[str]) -> None:
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a list of strings (one tokenised text), not a string")


def _typo(word: str, rng: random.Random) -> str:
    edit = rng.choice(TYPO_EDITS)
    i = rng.randrange(len(word) - 1)
    if edit == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if edit == "delete":
        return word[:i] + word[i + 1:]
    letter = rng.choice(string.ascii_lowercase)
    if edit == "insert":
        return word[:i] + letter + word[i:]
    return word[:i] + letter + word[i + 1:]


def add_typos(tokens: Sequence[str], rate: float, seed: int = 0) -> list[str]:
    """Give each alphabetic word of at least :data:`MIN_TYPO_LENGTH` letters, with probability
    ``rate``, one random character edit (swap of neighbours, deletion, insertion or substitution)."""
    _check_tokens(tokens)
    _check_rate(rate)
    rng = random.Random(seed)
    return [_typo(t, rng) if t.isalpha() and len(t) >= MIN_TYPO_LENGTH and rng.random() < rate else t
            for t in tokens]


def drop_words(tokens: Sequence[str], rate: float, seed: int = 0) -> list[str]:
    """Drop each token with probability ``rate``; a text never becomes empty (one token is kept)."""
    _check_tokens(tokens)
    _check_rate(rate)
    rng = random.Random(seed)
    kept = [t for t in tokens if rng.random() >= rate]
    if not kept and tokens:
        kept = [tokens[rng.randrange(len(tokens))]]
    return kept


PERTURBATIONS = {"typos": add_typos, "dropped words": drop_words}


def perturb_texts(texts: Sequence[Sequence[str]], kind: str, rate: float, seed: int = 0) -> list[list[str]]:
    """Apply the perturbation ``kind`` (a key of :data:`PERTURBATIONS`) to every text; text ``i`` uses
    seed ``seed + i``, so the result does not depend on the order texts are processed in."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; use one of {', '.join(PERTURBATIONS)}")
    return [PERTURBATIONS[kind](t, rate, seed + i) for i, t in enumerate(texts)]
