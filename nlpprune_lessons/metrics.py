"""Quality measures shared by the lessons."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _as_tensors(preds, labels) -> tuple[torch.Tensor, torch.Tensor]:
    preds, labels = torch.as_tensor(preds), torch.as_tensor(labels)
    if preds.shape != labels.shape or preds.ndim != 1:
        raise ValueError(f"preds and labels must be 1-D of equal length, got {tuple(preds.shape)} and {tuple(labels.shape)}")
    if preds.numel() == 0:
        raise ValueError("no predictions given")
    return preds, labels


def accuracy(preds: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    preds, labels = _as_tensors(preds, labels)
    return (preds == labels).float().mean().item()


def macro_f1(preds: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """F1 averaged over the classes present in ``labels`` or ``preds`` (each class weighs the same)."""
    preds, labels = _as_tensors(preds, labels)
    scores = []
    for c in torch.unique(torch.cat([preds, labels])):
        tp = ((preds == c) & (labels == c)).sum().item()
        fp = ((preds == c) & (labels != c)).sum().item()
        fn = ((preds != c) & (labels == c)).sum().item()
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- generated text
#: BLEU-n weights: uniform over 1..n-grams (BLEU-2, BLEU-3, BLEU-4 as text-GAN papers report them).
BLEU_ORDERS = (2, 3, 4)


def _check_sentences(sentences, what: str) -> list[list[str]]:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence) or not sentences:
        raise ValueError(f"{what} must be a non-empty list of token lists")
    out = []
    for s in sentences:
        if isinstance(s, (str, bytes)) or not isinstance(s, Sequence) or not all(isinstance(t, str) for t in s):
            raise TypeError(f"each of {what} must be a list of string tokens, got {s!r}")
        out.append(list(s))
    return out


def _check_orders(orders: Sequence[int]) -> tuple[int, ...]:
    orders = tuple(orders)
    if not orders or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in orders):
        raise ValueError(f"orders must be positive ints (n-gram orders, e.g. (2, 3, 4)), got {orders!r}")
    return orders


def _corpus_bleu(references: list[list[list[str]]], hypotheses: list[list[str]],
                 orders: tuple[int, ...]) -> dict[str, float]:
    # NLTK's corpus BLEU (Papineni et al.): clipped n-gram counts summed over the corpus, one brevity
    # penalty; smoothing method1 (epsilon counts) only matters when some order has no match at all.
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    weights = [tuple([1.0 / n] * n) for n in orders]
    scores = corpus_bleu(references, hypotheses, weights=weights,
                         smoothing_function=SmoothingFunction().method1)
    scores = scores if len(weights) > 1 else [scores]  # NLTK returns a float for a single weight tuple
    return {f"bleu{n}": float(s) for n, s in zip(orders, scores)}


def bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
         orders: Sequence[int] = BLEU_ORDERS) -> dict[str, float]:
    """Corpus BLEU-n of generated sentences against a set of real ones (quality).

    As in SeqGAN and Texygen, every hypothesis is scored against *all* ``references`` (held-out
    real sentences), so BLEU here asks "do the generated n-grams occur in real text?", not "is this
    the right translation". Unlike Texygen, which averages sentence-level BLEU, this is corpus BLEU,
    so values are not comparable with those papers' tables. Returns ``{"bleu2": ..., "bleu3": ..., "bleu4": ...}`` for ``orders``.
    """
    hyps = _check_sentences(hypotheses, "hypotheses")
    refs = _check_sentences(references, "references")
    return _corpus_bleu([refs] * len(hyps), hyps, _check_orders(orders))


def self_bleu(sentences: Sequence[Sequence[str]], orders: Sequence[int] = BLEU_ORDERS) -> dict[str, float]:
    """Self-BLEU-n (Zhu et al., 2018, Texygen): BLEU of each sentence against all the *other*
    sentences of the same set (diversity: higher = more alike = less diverse). Keys ``self_bleu2``..."""
    sents = _check_sentences(sentences, "sentences")
    if len(sents) < 2:
        raise ValueError("self-BLEU needs at least two sentences")
    refs = [sents[:i] + sents[i + 1:] for i in range(len(sents))]
    return {f"self_{k}": v for k, v in _corpus_bleu(refs, sents, _check_orders(orders)).items()}


def distinct_n(sentences: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams / all n-grams over the whole set (0 if none)."""
    sents = _check_sentences(sentences, "sentences")
    (n,) = _check_orders((n,))
    grams = [tuple(s[i:i + n]) for s in sents for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
