"""Evaluation of every model family of the course, without training: class predictions and accuracy,
the next-token perplexity of an RNN LM on a token stream, of a sentence generator, and of a causal
LM in sliding windows, and text generation (a causal LM from a prompt; an RNN generator's sentences)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nlpprune_lessons.core.batch import to_device
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.losses import classifier_logits
from nlpprune_lessons.metrics import accuracy, binomial_standard_error, bleu, bootstrap_mean, distinct_n, macro_f1, self_bleu
from nlpprune_lessons.models.gan import sample_sentences
from nlpprune_lessons.text.sentences import IGNORE, SentenceData, check_sentence_split, decode
from nlpprune_lessons.text.streams import batchify, bptt_batches


def token_perplexity(total_nll: float, tokens: int) -> dict[str, float]:
    """The course's one definition of perplexity: ``exp`` of the token-weighted mean next-token loss,
    from the loss summed over ``tokens`` scored tokens (every evaluator below ends here)."""
    if tokens < 1:
        raise ValueError(f"no token was scored (tokens={tokens}): perplexity is undefined")
    return {"loss": total_nll / tokens, "perplexity": math.exp(total_nll / tokens)}


def _perplexity_with_noise(piece_nll: torch.Tensor, piece_tokens: torch.Tensor) -> dict[str, float]:
    """:func:`token_perplexity` of pieces (windows, sentences) given their summed losses and token counts,
    with ``loss_se`` and the 95% interval bootstrapped over the scored pieces (when there are two or more)."""
    result = token_perplexity(float(piece_nll.sum()), int(piece_tokens.sum()))
    scored = piece_tokens > 0
    if int(scored.sum()) >= 2:
        spread = bootstrap_mean(piece_nll[scored] / piece_tokens[scored], piece_tokens[scored])
        result |= {"loss_se": spread["se"], "perplexity_low": math.exp(spread["low"]),
                   "perplexity_high": math.exp(spread["high"])}
    return result


@torch.no_grad()
def generate(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int = 40, *, sample: bool = False,
             temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> str:
    """The text a causal LM writes after ``prompt`` (the continuation only, special tokens dropped).

    Greedy by default (always the most likely next token). With ``sample=True`` each token is drawn
    from the ``top_k`` most likely ones at ``temperature``, seeded by ``seed`` in a forked random
    state, so the same call gives the same text and the caller's random state is left alone.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    check_positive_int(max_new_tokens, "max_new_tokens")
    if sample and (isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if sample and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    device = next(model.parameters()).device
    ids = torch.as_tensor([tokenizer(prompt)["input_ids"]], dtype=torch.long, device=device)
    settings = dict(do_sample=True, temperature=float(temperature), top_k=top_k) if sample else dict(do_sample=False)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.eos_token_id, top_p=None, **settings)
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# --------------------------------------------------------------------------- language models
def perplexity(model: torch.nn.Module, tokenizer, text: str, window: int = 512, stride: int | None = None,
               *, progress=None) -> float:
    """Token-weighted perplexity of a causal LM on ``text``: ``exp`` of the mean next-token loss
    (:func:`perplexity_scores` without the noise; see it for the arguments)."""
    return perplexity_scores(model, tokenizer, text, window, stride, progress=progress)["perplexity"]


@torch.no_grad()
def perplexity_scores(model: torch.nn.Module, tokenizer, text: str, window: int = 512, stride: int | None = None,
                      *, progress=None) -> dict[str, float]:
    """Token-weighted mean next-token ``loss`` (nats) and ``perplexity`` of a causal LM on ``text``,
    with the noise when two or more windows are scored: ``loss_se`` and the 95% interval
    ``perplexity_low`` / ``perplexity_high``, bootstrapped over the windows (seed 0, so repeatable).

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
    window_nll, window_tokens, scored_until = [], [], 1  # token 0 has no context and is never scored
    try:
        for begin in (progress(starts, desc="perplexity", unit="window") if progress else starts):
            end = min(begin + window, ids.numel())
            first = max(begin + 1, scored_until)  # first token this window scores
            if first < end:
                keep = end - first + 1  # logits at positions first-1 .. end-1 (the last one is unused)
                logits = model(input_ids=ids[begin:end].unsqueeze(0).to(device), logits_to_keep=keep).logits[0, :-1]
                window_nll.append(torch.nn.functional.cross_entropy(
                    logits.float(), ids[first:end].to(device), reduction="sum").item())
                window_tokens.append(end - first)
                scored_until = end
            if end == ids.numel():
                break
    finally:
        model.train(was_training)
    return _perplexity_with_noise(torch.tensor(window_nll, dtype=torch.float64),
                                  torch.tensor(window_tokens, dtype=torch.float64))


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def sentence_perplexity(model: nn.Module, data: SentenceData, split: str = "test", batch_size: int = 256) -> dict:
    """Token-weighted next-token loss and perplexity of ``split``'s real sentences (``<eos>`` included),
    each scored from a fresh state after ``start_id``; eval mode. With the noise: ``loss_se`` and the
    95% interval ``perplexity_low`` / ``perplexity_high``, bootstrapped over sentences (seed 0)."""
    check_sentence_split(split)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sentence_nll, sentence_tokens = [], []
    try:
        for rows in data.ids[split].split(batch_size):
            batch = {k: v.to(device) for k, v in data.batch(rows).items()}
            logits, _ = model(batch["input_ids"])
            nll = F.cross_entropy(logits.transpose(1, 2), batch["targets"], ignore_index=IGNORE, reduction="none")
            sentence_nll.append(nll.sum(1).double().cpu())
            sentence_tokens.append((batch["targets"] != IGNORE).sum(1).double().cpu())
    finally:
        model.train(was_training)
    sums, tokens = torch.cat(sentence_nll), torch.cat(sentence_tokens)
    return _perplexity_with_noise(sums, tokens)


def generate_sentences(model: nn.Module, data: SentenceData, n: int, temperature: float = 1.0,
                       seed: int = 0) -> list[list[str]]:
    """``n`` sampled sentences as token lists (seeded)."""
    rows = sample_sentences(model, n, data.max_len, start_id=data.start_id, eos_id=data.vocab.eos_id,
                            pad_id=data.vocab.pad_id, temperature=temperature,
                            generator=torch.Generator().manual_seed(seed))
    return decode(rows, data.vocab)


def evaluate_generator(model: nn.Module, data: SentenceData, n_samples: int, temperature: float = 1.0,
                       seed: int = 0, split: str = "test") -> dict[str, float]:
    """Quality, diversity and likelihood of a generator on ``split``:

    ``bleu2..4`` of ``n_samples`` samples against all real ``split`` sentences; ``self_bleu2..4`` of
    the samples; ``distinct1``, ``distinct2``; ``mean_words`` of the samples; ``perplexity`` of the
    real sentences under the model, with its bootstrap interval and ``loss_se``
    (:func:`sentence_perplexity`). Empty samples (an immediate ``<eos>``) count in every measure."""
    check_sentence_split(split)
    samples = generate_sentences(model, data, n_samples, temperature, seed)
    scored = [s or ["<empty>"] for s in samples]  # BLEU needs a token; "<empty>" matches nothing real
    return {**bleu(scored, data.sentences(split)), **self_bleu(scored),
            "distinct1": distinct_n(scored, 1), "distinct2": distinct_n(scored, 2),
            "mean_words": sum(map(len, samples)) / len(samples),
            **{k: v for k, v in sentence_perplexity(model, data, split).items() if k != "loss"}}


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, predicted classes and labels for every example, in loader order."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        batch = to_device(batch, device)
        logits.append(classifier_logits(model, batch).float().cpu())
        labels.append(batch["labels"].cpu())
    model.train(was_training)
    all_logits = torch.cat(logits)
    return all_logits, all_logits.argmax(dim=-1), torch.cat(labels)


def evaluate_classifier(
    model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device | None = None
) -> dict[str, float]:
    """Mean cross-entropy, accuracy, its binomial standard error ``accuracy_se``, macro-F1 and the
    number of examples ``n`` of ``model`` on ``loader``."""
    logits, preds, labels = predict(model, loader, device)
    acc = accuracy(preds, labels)
    return {
        "loss": nn.functional.cross_entropy(logits, labels).item(),
        "accuracy": acc,
        "accuracy_se": binomial_standard_error(acc, labels.numel()),
        "f1": macro_f1(preds, labels),
        "n": labels.numel(),
    }


@torch.no_grad()
def evaluate_language_model(
    model: nn.Module, ids: torch.Tensor, *, batch_size: int = 16, bptt: int = 64,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Token-weighted mean next-token loss and perplexity on a token stream, state carried across
    windows; with the noise: ``loss_se`` and the 95% interval ``perplexity_low`` / ``perplexity_high``,
    bootstrapped over the ``batch_size x windows`` pieces of ``bptt`` tokens (seed 0, so repeatable)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    piece_nll, piece_tokens, state = [], [], None
    for batch in bptt_batches(batchify(ids, batch_size), bptt):
        batch = to_device(batch, device)
        logits, state = model(batch["input_ids"], state)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"], reduction="none")  # [B, T]
        piece_nll.append(nll.sum(1).double().cpu())
        piece_tokens.append(batch["targets"].size(1))
    model.train(was_training)
    sums = torch.cat(piece_nll)
    tokens = torch.tensor([t for t in piece_tokens for _ in range(batch_size)], dtype=torch.float64)
    return _perplexity_with_noise(sums, tokens)
