"""Quality measures shared by the lessons."""

from __future__ import annotations

import math
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


def parameter_counts(model: torch.nn.Module) -> "pd.DataFrame":
    """One row per leaf module with parameters: name, type, kind, parameters, share of the total.

    ``kind`` groups modules the way the pruning lessons discuss them: embedding, recurrent, linear.
    Shared (tied) parameters are counted once, at their first module.
    """
    import pandas as pd

    seen: set[int] = set()
    rows = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        if not own:
            continue
        seen.update(id(p) for p in own)
        kind = ("embedding" if isinstance(module, torch.nn.Embedding)
                else "recurrent" if isinstance(module, torch.nn.RNNBase)
                else "linear" if isinstance(module, torch.nn.Linear) else "other")
        rows.append({"module": name or "(root)", "type": type(module).__name__, "kind": kind,
                     "parameters": sum(p.numel() for p in own)})
    if not rows:
        raise ValueError(f"{type(model).__name__} has no parameters to count")
    table = pd.DataFrame(rows)
    table["share"] = (table["parameters"] / table["parameters"].sum()).round(4)
    return table


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


# --------------------------------------------------------------------------- language models
@torch.no_grad()
def perplexity(model: torch.nn.Module, tokenizer, text: str, window: int = 512, stride: int | None = None,
               *, progress=None) -> float:
    """Token-weighted perplexity of a causal LM on ``text``: ``exp`` of the mean next-token loss.

    The text is tokenised once (no BOS added) and read in windows of ``window`` tokens. With
    ``stride=None`` the windows do not overlap and the first token of each window is context only
    (the cheap estimate). With ``stride < window`` each window starts ``stride`` tokens after the
    previous one and scores only the tokens no earlier window scored, so every token but the first
    sees at least ``window - stride`` tokens of context (all before it, near the start) (closer to how the model is used, costlier).
    The model must return an object with ``.logits``; only the scored positions' logits are kept
    (``logits_to_keep``), so memory stays at one window. ``progress``: e.g. ``tqdm``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an int >= 2 (tokens per forward pass), got {window!r}")
    stride = window if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= window:
        raise ValueError(f"stride must be an int in [1, window={window}] or None, got {stride!r}")
    ids = torch.as_tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    if ids.numel() < 2:
        raise ValueError(f"text has {ids.numel()} token(s): perplexity needs at least two")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    starts = range(0, ids.numel() - 1, stride)
    total, count, scored_until = 0.0, 0, 1  # token 0 has no context and is never scored
    try:
        for begin in (progress(starts, desc="perplexity", unit="window") if progress else starts):
            end = min(begin + window, ids.numel())
            first = max(begin + 1, scored_until)  # first token this window scores
            if first < end:
                keep = end - first + 1  # logits at positions first-1 .. end-1 (the last one is unused)
                logits = model(input_ids=ids[begin:end].unsqueeze(0).to(device), logits_to_keep=keep).logits[0, :-1]
                total += torch.nn.functional.cross_entropy(
                    logits.float(), ids[first:end].to(device), reduction="sum").item()
                count += end - first
                scored_until = end
            if end == ids.numel():
                break
    finally:
        model.train(was_training)
    return math.exp(total / count)
