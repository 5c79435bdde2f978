"""Checks for the exercises of lesson 01 (text preprocessing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.lessons.exercises.protocol import compare_numbers, exercise, require, require_callable

__all__ = ["check_negation_safe_stopwords", "check_oov_rate", "check_padding_share", "check_vocabulary_tokens"]

#: Words the random token lists of the checks are drawn from, most likely first.
_WORDS = ["the", "film", "a", "good", "not", "plot", "bad", "actor", "dull", "fun", "long", "story"]


def _describe(got: object) -> str:
    """What the learner returned, for a message: the type, and for a list the type of its first non-string."""
    if isinstance(got, (list, tuple)):
        odd = next((item for item in got if not isinstance(item, str)), None)
        if odd is not None:
            return f"a {type(got).__name__} holding a {type(odd).__name__} ({odd!r})"
    return type(got).__name__


def _random_reviews(generator: torch.Generator, n: int, max_len: int) -> list[list[str]]:
    """``n`` token lists of 0..``max_len`` tokens from :data:`_WORDS`, earlier words more frequent."""
    weights = torch.tensor([1.0 / (rank + 1) for rank in range(len(_WORDS))])
    reviews = []
    for _ in range(n):
        length = int(torch.randint(0, max_len + 1, (1,), generator=generator))
        picks = torch.multinomial(weights, length, replacement=True, generator=generator) if length else []
        reviews.append([_WORDS[int(i)] for i in picks])
    return reviews


@exercise("01.1", "vocabulary with min_freq")
def check_vocabulary_tokens(vocabulary_tokens: Callable[[Sequence[Sequence[str]], int], list[str]]) -> str:
    """Exercise 01.1: ``vocabulary_tokens(token_lists, min_freq)`` = the tokens of
    ``Vocab.build(token_lists, min_freq)`` in id order (``.itos``): the four special tokens, then every
    token seen at least ``min_freq`` times, most frequent first, ties alphabetically."""
    from nlpprune_lessons.text.vocab import SPECIALS, Vocab

    require_callable(vocabulary_tokens, "vocabulary_tokens")
    generator = torch.Generator().manual_seed(1)
    cases = [([["b", "a", "b", "c"], ["a", "d"]], 1),  # a and b tie (2 each), c and d tie (1 each)
             ([["b", "a", "b", "c"], ["a", "d"]], 2)]
    cases += [(_random_reviews(generator, 40, 8), min_freq) for min_freq in (1, 3, 10)]
    cases += [([["rare"], ["words"], []], 2)]  # nothing reaches min_freq: only the special tokens
    for token_lists, min_freq in cases:
        expected = Vocab.build(token_lists, min_freq=min_freq).itos
        counts = Counter(t for tokens in token_lists for t in tokens)
        got = vocabulary_tokens([list(tokens) for tokens in token_lists], min_freq)
        where = f"for min_freq={min_freq} and token counts {dict(sorted(counts.items()))}"
        require(isinstance(got, (list, tuple)) and all(isinstance(t, str) for t in got),
                f"return a list of token strings, got {_describe(got)}")
        got = list(got)
        require(got[: len(SPECIALS)] == list(SPECIALS),
                f"{where}: the list must start with the special tokens {list(SPECIALS)} in that order (ids 0 to "
                f"{len(SPECIALS) - 1}, as every Vocab of the course has them), got {got[: len(SPECIALS)]}")
        require(len(set(got)) == len(got), f"{where}: a token appears twice in your list; ids must be unique")
        extra = [t for t in got if t not in expected]
        if extra:
            require(False, f"{where}: {extra[0]!r} is seen {counts[extra[0]]} time(s), fewer than min_freq={min_freq}: "
                           "keep only tokens seen at least min_freq times (counted over all token lists)")
        missing = [t for t in expected if t not in got]
        if missing:
            require(False, f"{where}: {missing[0]!r} is seen {counts[missing[0]]} time(s), at least min_freq="
                           f"{min_freq}, but is missing from your list")
        first = next((i for i, (e, g) in enumerate(zip(expected, got)) if e != g), None)
        if first is not None:
            require(False, f"{where}: id {first} should be {expected[first]!r} (seen {counts[expected[first]]} times), "
                           f"you have {got[first]!r} (seen {counts[got[first]]} times). After the specials, order by "
                           "count, most frequent first, and break ties alphabetically, so the ids do not depend on "
                           "the order of the reviews")
    return ("your list is Vocab.build(...).itos: specials, then frequent tokens first, ties alphabetically; "
            "raising min_freq drops the rare tail.")


@exercise("01.2", "OOV rate")
def check_oov_rate(oov_rate: Callable[[Sequence[Sequence[str]], object], float]) -> str:
    """Exercise 01.2: ``oov_rate(token_lists, vocab)`` = share of tokens (not types) not in ``vocab``,
    as :meth:`Vocab.oov_rate <nlpprune_lessons.text.vocab.Vocab.oov_rate>`."""
    from nlpprune_lessons.text.vocab import Vocab

    require_callable(oov_rate, "oov_rate")
    vocab = Vocab(["the", "film", "good"])
    cases = [
        [["the", "film", "was", "good"]],
        [["the", "the", "the"], ["dull"]],  # tokens, not types: "the" counts three times
        [["<unk>"], ["film"]],  # a special token in the vocabulary is not out of it
        [["wow"], [], ["meh"]],  # empty reviews add no tokens
        _random_reviews(torch.Generator().manual_seed(2), 30, 10),
    ]
    for token_lists in cases:
        expected = vocab.oov_rate(token_lists)
        got = oov_rate([list(tokens) for tokens in token_lists], vocab)
        shown = token_lists if len(token_lists) < 5 else f"{len(token_lists)} random reviews"
        compare_numbers(got, expected, f"for {shown} and a vocabulary of {vocab.itos}, the OOV rate",
                        "Divide the number of tokens missing from vocab by the number of tokens (count repeats; "
                        "skip nothing).")
    return ("token occurrences missing from the vocabulary over all tokens, as Vocab.oov_rate (the OOV numbers "
            "of this notebook).")


@exercise("01.3", "negation-safe stopwords")
def check_negation_safe_stopwords(negation_safe: Callable[[Sequence[str]], list[str]]) -> str:
    """Exercise 01.3: ``negation_safe(stopwords)`` = the list without its negation cues, order kept, every
    other word kept, as :func:`~nlpprune_lessons.text.tokenize.negation_safe_stopwords`. A clipped
    contraction that is also a word of its own (``"won"`` of ``"won't"``) may go either way."""
    from nlpprune_lessons.data import nltk_stopwords
    from nlpprune_lessons.text.tokenize import is_negation, negation_safe_stopwords

    require_callable(negation_safe, "negation_safe")
    nltk_list = nltk_stopwords()
    cases = [("NLTK's list", nltk_list), ("NLTK's list reversed", nltk_list[::-1]),
             ("a short list", ["the", "not", "very", "didn", "didn't", "won", "won't", "a", "nor"])]
    for name, words in cases:
        expected = negation_safe_stopwords(words)
        either_way = {w for w in words if w + "'t" in words and not is_negation(w)}  # "won"
        got = negation_safe(list(words))
        require(isinstance(got, (list, tuple)) and all(isinstance(w, str) for w in got),
                f"{name}: return a list of words (strings), got {_describe(got)}")
        got = list(got)
        extra = [w for w in got if w not in words]
        require(not extra, f"{name}: only remove words from the list you are given; these are not in it: {extra[:10]}")
        kept_negations = [w for w in got if is_negation(w)]
        require(not kept_negations,
                f"{name}: your list still holds these negation cues, so removing stopwords would delete them "
                f"from the text: {kept_negations[:10]}. Look for 'no', 'not', 'nor', "
                "words ending in n't, and their clipped forms such as 'didn' or 'wasn' (or 'ain', whose full form "
                "NLTK's list does not hold).")
        lost = [w for w in expected if w not in got and w not in either_way]
        require(not lost, f"{name}: keep every other stopword; you dropped: {lost[:10]}")
        require(got == [w for w in words if w in set(got)],
                f"{name}: keep the words in the order of the list you are given (and each once)")
    return (f"{len(negation_safe_stopwords(nltk_list))} of NLTK's {len(nltk_list)} stopwords kept; every "
            "negation cue stays in the text.")


@exercise("01.4", "padding share")
def check_padding_share(padding_share: Callable[[list[torch.Tensor]], float]) -> str:
    """Exercise 01.4: ``padding_share(batch_lengths)``, given the ``lengths`` tensor of every batch, = the
    share of all padded positions that are padding, as :func:`~nlpprune_lessons.text.batching.padding_fraction`
    of the loader."""
    from nlpprune_lessons.text.batching import make_loader, padding_fraction

    require_callable(padding_share, "padding_share")
    generator = torch.Generator().manual_seed(3)
    sequences = [[1] * int(n) for n in torch.randint(1, 31, (50,), generator=generator)]
    hand = [{"input_ids": torch.zeros(2, 3), "lengths": torch.tensor([3, 1])},
            {"input_ids": torch.zeros(1, 2), "lengths": torch.tensor([2])}]
    cases = [("batches with lengths [3, 1] and [2]", hand)]
    for bucket in (False, True):  # 50 reviews in batches of 16: the last batch holds 2
        loader = make_loader(sequences, batch_size=16, shuffle=True, bucket=bucket, seed=0)
        cases.append((f"50 random reviews in {'length-bucketed' if bucket else 'random'} batches of 16", list(loader)))
    for name, batches in cases:
        expected = padding_fraction(batches)
        got = padding_share([batch["lengths"].clone() for batch in batches])
        compare_numbers(got, expected, f"for {name}, the padding share",
                        "A batch is a rectangle: as many rows as reviews, as many columns as its longest review. "
                        "Add up the positions of all rectangles and the real tokens of all reviews, then divide "
                        "once (a mean of per-batch shares gives a small last batch as much weight as a full one).")
    return "padding over all positions of all batches, as padding_fraction(loader) measures it."
