"""Lesson 09's experiment, defined once for the notebook and ``benchmarks/lm_pruning.py``.

SmolLM2-135M is pruned one-shot (no training) and measured by its perplexity on a book by an author
whose text is *not* in the calibration set (Chesterton's *The Man Who Was Thursday*), so Wanda's
activation statistics cannot simply memorise the evaluation text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from . import config
from .bench import release_memory
from .data.gutenberg import book_text
from .generation import generate
from .metrics import perplexity
from .models.transformers import load_causal_lm
from .pruning.calibrated import check_calibration, parse_sparsity, prune_causal_lm

#: Held-out evaluation text: a novel by an author not used for calibration, from its first chapter
#: on (the book opens with a dedication in verse, measured at perplexity 88 against 30-40 for the prose).
EVAL_BOOK = "chesterton-thursday.txt"
EVAL_START = "CHAPTER I\n"
#: Calibration text: four authors and styles (Wanda calibrates on C4 web text; we have no web text offline).
CALIBRATION_BOOKS = ("austen-emma.txt", "carroll-alice.txt", "melville-moby_dick.txt", "edgeworth-parents.txt")

#: FULL: 8,192 evaluation tokens in 512-token windows; Wanda's 128 calibration sequences, but of 128
#: tokens rather than 2,048 (a CPU budget: calibration runs the decoder twice, block by block).
LM_SETTINGS = dict(eval_tokens=8192, window=512, calibration_sequences=128, calibration_length=128,
                   sparsities=(0.3, 0.5, 0.7, "2:4"), calibration_sizes=(8, 32, 128), batch_size=8,
                   max_new_tokens=40)
#: FAST: the same code path on 1,024 evaluation tokens, 8 calibration sequences, two sparsities.
LM_FAST = dict(eval_tokens=1024, calibration_sequences=8, sparsities=(0.5, "2:4"), calibration_sizes=(2, 8),
               max_new_tokens=24)
#: Prompt of the generated continuations (the first words of the evaluation book's second paragraph
#: are not used: a memorised continuation would say nothing about the model).
PROMPT = "The old man looked out of the window and said"


def lm_settings() -> dict:
    """:data:`LM_SETTINGS`, with :data:`LM_FAST` applied in FAST mode."""
    return LM_SETTINGS | (LM_FAST if config.is_fast() else {})


def heldout_text(tokenizer, tokens: int) -> str:
    """The first ``tokens`` tokens of :data:`EVAL_BOOK`'s prose (from :data:`EVAL_START`), as text."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"tokens must be an int >= 2, got {tokens!r}")
    text = book_text(EVAL_BOOK)
    ids = tokenizer(text[text.index(EVAL_START):])["input_ids"]
    if len(ids) < tokens:
        raise ValueError(f"{EVAL_BOOK} has only {len(ids)} tokens, fewer than the {tokens} asked for")
    return tokenizer.decode(ids[:tokens])


def calibration_ids(tokenizer, sequences: int, length: int, seed: int = 0,
                    books: Sequence[str] = CALIBRATION_BOOKS) -> torch.Tensor:
    """``sequences`` x ``length`` token ids cut at seeded random places of ``books`` (as Wanda samples C4).

    The same seed gives the same sequences, and a smaller set is a prefix of a larger one: the
    calibration-size study adds data instead of drawing a new sample.
    """
    for value, name in ((sequences, "sequences"), (length, "length")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if EVAL_BOOK in books:
        raise ValueError(f"{EVAL_BOOK} is the evaluation text: calibrating on it would leak the test set")
    ids = torch.as_tensor([i for book in books for i in tokenizer(book_text(book))["input_ids"]], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length, (sequences,), generator=generator)
    return torch.stack([ids[s:s + length] for s in starts.tolist()])


def measure(model: torch.nn.Module, tokenizer, text: str, settings: dict) -> dict:
    """Perplexity of ``model`` on ``text`` and its greedy continuation of :data:`PROMPT`."""
    return {"perplexity": perplexity(model, tokenizer, text, window=settings["window"]),
            "continuation": generate(model, tokenizer, PROMPT, settings["max_new_tokens"])}


def pruned_run(method: str, sparsity: float | str, calibration: torch.Tensor | None, text: str, settings: dict,
               *, update: bool = False, progress: Callable | None = None) -> dict:
    """Load a fresh SmolLM2, prune it one-shot, measure it, free it; one record of the lesson's table.

    A fresh copy each time (about 2 s from the cache) instead of a deep copy of a dense model kept
    aside: two 135M-parameter models would not fit beside everything else in Binder's 2 GB.
    """
    fraction, pattern = parse_sparsity(sparsity)
    model, tokenizer = load_causal_lm()
    data = check_calibration(calibration) if (method == "wanda" or update) else None
    start = time.perf_counter()
    report = prune_causal_lm(model, sparsity, method, data, update=update, batch_size=settings["batch_size"],
                             progress=progress)
    seconds = time.perf_counter() - start
    record = {"method": method + (" + update" if update else ""), "sparsity": str(sparsity),
              "pattern": "n:m" if pattern else "unstructured", "target_sparsity": fraction,
              "calibration_sequences": 0 if data is None else int(data.shape[0]),
              "prunable_sparsity": report.prunable_sparsity, "overall_sparsity": report.overall_sparsity,
              "prune_seconds": seconds, **measure(model, tokenizer, text, settings)}
    del model
    release_memory()
    return record


def semi_structured_status(weight: torch.Tensor) -> str:
    """What PyTorch says when asked to store a 2:4-pruned ``weight`` in its compressed 2:4 format
    (``torch.sparse.to_sparse_semi_structured``): "supported", or the first line of its error."""
    try:
        torch.sparse.to_sparse_semi_structured(weight.detach())
    except (RuntimeError, ValueError, NotImplementedError) as err:
        return str(err).strip().splitlines()[0]
    return "supported"


def masked_latency(tokens: int = 256, rounds: int = 3) -> dict:
    """Forward latency (ms, batch 1 x ``tokens``) of the dense model and of a 2:4 magnitude-pruned copy,
    timed alternately in this process (:func:`~nlpprune_lessons.bench.compare_latency`), plus what
    PyTorch says about a compressed 2:4 weight on this device."""
    from .bench import compare_latency

    dense, _ = load_causal_lm()
    masked, _ = load_causal_lm()
    prune_causal_lm(masked, "2:4", "magnitude")
    ids = torch.randint(0, dense.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    ids = ids.to(next(dense.parameters()).device)
    times = compare_latency({"dense": lambda: dense(input_ids=ids, logits_to_keep=1),
                             "2:4 masked": lambda: masked(input_ids=ids, logits_to_keep=1)},
                            rounds=rounds, repeats=5, warmup=1)
    status = semi_structured_status(masked.model.layers[0].mlp.up_proj.weight)
    return {"dense_ms": times["dense"], "masked_ms": times["2:4 masked"], "tokens": tokens,
            "threads": torch.get_num_threads(), "semi_structured": status}
