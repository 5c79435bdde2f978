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


def _check_tokens(tokens: Sequence[str]) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a list of strings (one tokenised text), not a string or an iterator")
    return list(tokens)


def _typo(word: str, rng: random.Random) -> str:
    """One edit that always changes ``word`` (a swap only where the neighbours differ)."""
    swaps = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    edit = rng.choice([e for e in TYPO_EDITS if e != "swap" or swaps])
    if edit == "swap":
        i = rng.choice(swaps)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if edit == "delete":
        i = rng.randrange(len(word))
        return word[:i] + word[i + 1:]
    if edit == "insert":
        i = rng.randrange(len(word) + 1)
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]
    i = rng.randrange(len(word))
    return word[:i] + rng.choice(string.ascii_lowercase.replace(word[i].lower(), "")) + word[i + 1:]


def add_typos(tokens: Sequence[str], rate: float, seed: int = 0) -> list[str]:
    """Give each alphabetic word of at least :data:`MIN_TYPO_LENGTH` letters, with probability
    ``rate``, one random character edit that changes it (swap of two different neighbours, deletion,
    insertion or substitution by another letter). Shorter words, numbers and punctuation are kept, so
    the share of tokens changed is below ``rate``; :func:`changed_share` measures it."""
    tokens = _check_tokens(tokens)
    _check_rate(rate)
    rng = random.Random(seed)
    return [_typo(t, rng) if t.isalpha() and len(t) >= MIN_TYPO_LENGTH and rng.random() < rate else t
            for t in tokens]


def drop_words(tokens: Sequence[str], rate: float, seed: int = 0) -> list[str]:
    """Drop each token with probability ``rate``; a text never becomes empty (one token is kept)."""
    tokens = _check_tokens(tokens)
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
    if isinstance(texts, str) or any(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of tokenised texts (lists of strings); for one text, pass [tokens]")
    return [PERTURBATIONS[kind](t, rate, seed + i) for i, t in enumerate(texts)]


def changed_share(original: Sequence[Sequence[str]], perturbed: Sequence[Sequence[str]]) -> float:
    """Share of the original tokens that did not survive unchanged: for typos (same lengths), the tokens
    that differ; for dropped words, the tokens missing."""
    total = sum(len(t) for t in original)
    if total == 0 or len(original) != len(perturbed):
        raise ValueError("need the same non-empty list of texts before and after the perturbation")
    lost = sum(sum(a != b for a, b in zip(o, p)) if len(o) == len(p) else len(o) - len(p)
               for o, p in zip(original, perturbed))
    return lost / total
