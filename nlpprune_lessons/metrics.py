"""Quality measures shared by the lessons, and the noise around them: the standard error of an
accuracy, a bootstrap standard error of a mean, and the verdict rule (a difference inside two
standard errors is a tie)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

#: A difference counts as a win or a loss only when it is at least this many standard errors.
VERDICT_SES = 2.0


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



# --------------------------------------------------------------------------- translation
#: sacrebleu tokenisations the course uses: "13a" (its default, for English) and "char" (Japanese).
TRANSLATION_TOKENIZERS = ("13a", "char")


def translation_scores(hypotheses: Sequence[str], references: Sequence[str], *, tokenize: str = "13a",
                       samples: int = 1000, seed: int = 0) -> dict:
    """Corpus BLEU and chrF (sacrebleu, one reference per sentence) of detokenised ``hypotheses``, each
    with a 95% bootstrap interval: sentences are resampled with replacement ``samples`` times and the
    corpus score recomputed from the summed sentence statistics (Koehn 2004). Unlike :func:`bleu` (the
    text-GAN lesson's BLEU against a pool of real sentences), this is the translation metric of
    papers, with its sacrebleu signature; ``tokenize="char"`` scores Japanese, written without spaces.
    Returns ``bleu``, ``bleu_low``, ``bleu_high``, ``chrf``, ``chrf_low``, ``chrf_high``, ``sentences``
    and the signatures."""
    import numpy as np
    from sacrebleu.metrics import BLEU, CHRF

    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{name} must be a list of sentences (strings)")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"hypotheses and references must be non-empty and of equal length, got "
                         f"{len(hypotheses)} and {len(references)}")
    if tokenize not in TRANSLATION_TOKENIZERS:
        raise ValueError(f"tokenize must be one of {TRANSLATION_TOKENIZERS}, got {tokenize!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int (bootstrap resamples), got {samples!r}")
    scores: dict = {"sentences": len(hypotheses)}
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(hypotheses), len(hypotheses)) for _ in range(samples)]
    for name, metric in (("bleu", BLEU(tokenize=tokenize)), ("chrf", CHRF())):
        # sacrebleu's per-sentence sufficient statistics, summed per resample (its own bootstrap does the same)
        stats = np.array(metric._extract_corpus_statistics(list(hypotheses), [list(references)]))
        scores[name] = float(metric._compute_score_from_stats(list(stats.sum(0))).score)
        resampled = [metric._compute_score_from_stats(list(stats[draw].sum(0))).score for draw in draws]
        scores[f"{name}_low"], scores[f"{name}_high"] = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
        scores[f"{name}_signature"] = str(metric.get_signature())
    return scores

# --------------------------------------------------------------------------- noise
def binomial_standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` independent examples: ``sqrt(p (1 - p) / n)``."""
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a number in [0, 1], got {accuracy!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be the number of examples, an int >= 1, got {n!r}")
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


def bootstrap_mean(values: Sequence[float] | torch.Tensor, weights: Sequence[float] | torch.Tensor | None = None,
                   resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Weighted mean of ``values`` (e.g. per-window losses, weighted by tokens) and its bootstrap
    spread: ``mean``, ``se`` (standard deviation of the resampled means) and the 2.5 / 97.5
    percentiles ``low`` / ``high``. Windows, not tokens, are resampled: neighbouring tokens are not
    independent, windows nearly are."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    w = torch.ones_like(x) if weights is None else torch.as_tensor(weights, dtype=torch.float64).flatten()
    if x.numel() < 2 or w.shape != x.shape:
        raise ValueError(f"need >= 2 values and one weight per value, got {x.numel()} values and {w.numel()} weights")
    if bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError("weights must be >= 0 and not all 0")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 10:
        raise ValueError(f"resamples must be an int >= 10, got {resamples!r}")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(x.numel(), (resamples, x.numel()), generator=generator)
    means = (x[picks] * w[picks]).sum(1) / w[picks].sum(1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"mean": float((x * w).sum() / w.sum()), "se": float(means.std()), "low": low, "high": high}


def verdict(difference: float, standard_error: float) -> str:
    """``"win"`` if ``difference`` (a - b, larger is better) is at least :data:`VERDICT_SES` standard
    errors above 0, ``"loss"`` if that far below, else ``"tie"``. For two independent measurements
    pass ``sqrt(se_a**2 + se_b**2)``."""
    for value, name in ((difference, "difference"), (standard_error, "standard_error")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if standard_error < 0:
        raise ValueError(f"standard_error must be >= 0, got {standard_error}")
    if difference >= VERDICT_SES * standard_error and difference > 0:
        return "win"
    if difference <= -VERDICT_SES * standard_error and difference < 0:
        return "loss"
    return "tie"


def compare_scores(a: Mapping[str, float], b: Mapping[str, float], metric: str, prefix: str = "") -> dict:
    """``a`` against ``b`` (score dicts of two independently measured models) on ``prefix + metric``:
    ``"accuracy"`` as a difference with the standard errors ``accuracy_se``; ``"perplexity"`` as the
    log ratio ``log(b / a)`` with the standard errors of the log, ``loss_se`` (so for both, a positive
    difference means ``a`` is better). Returns ``difference``, ``se`` and :func:`verdict` for ``a``."""
    error = {"accuracy": "accuracy_se", "perplexity": "loss_se"}
    if metric not in error:
        raise ValueError(f"metric must be one of {sorted(error)}, got {metric!r}")
    value, se = prefix + metric, prefix + error[metric]
    missing = [k for k in (value, se) for d in (a, b) if k not in d]
    if missing:
        raise ValueError(f"scores lack {sorted(set(missing))}: pass dicts with {value!r} and {se!r}")
    difference = (a[value] - b[value] if metric == "accuracy" else math.log(b[value] / a[value]))
    standard_error = math.hypot(a[se], b[se])
    return {"difference": difference, "se": standard_error, "verdict": verdict(difference, standard_error)}


def majority_share(labels: Sequence[int] | torch.Tensor) -> float:
    """Share of the most frequent label in ``labels``: the accuracy of always predicting it."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {tuple(labels.shape)}")
    return torch.unique(labels, return_counts=True)[1].max().item() / labels.numel()


def collapsed_to_majority(accuracy: float, n: int, majority: float) -> bool:
    """Whether a classifier's ``accuracy`` on ``n`` examples is at the majority-class floor within the
    noise: not at least :data:`VERDICT_SES` standard errors (:func:`binomial_standard_error` of
    ``accuracy``) above ``majority``, the share of the most frequent class (:func:`majority_share`)."""
    if isinstance(majority, bool) or not isinstance(majority, (int, float)) or not 0.0 <= majority <= 1.0:
        raise ValueError(f"majority must be a share in [0, 1], got {majority!r}")
    return verdict(accuracy - majority, binomial_standard_error(accuracy, n)) != "win"


def mean_and_spread(values: Sequence[float]) -> dict[str, float]:
    """Mean of repeated measurements (e.g. random draws or seeds), their sample standard deviation
    ``sd``, the standard error of the mean ``se = sd / sqrt(n)`` and the count ``n`` (at least 2)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"values must be a sequence of numbers, got {type(values).__name__}")
    if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  for v in values):
        raise ValueError(f"values must be at least 2 finite numbers, got {values!r}")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "sd": sd, "se": sd / math.sqrt(n), "n": n}
