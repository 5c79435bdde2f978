"""Lesson 09's experiment, defined once for the notebook and ``benchmarks/lm_pruning.py``.

SmolLM2-135M is pruned one-shot (no training) and measured by its perplexity on a book by an author
whose text is *not* in the calibration set (Chesterton's *The Man Who Was Thursday*), so Wanda's
activation statistics cannot simply memorise the evaluation text.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.data.gutenberg import book_text
from nlpprune_lessons.evaluate import generate, perplexity
from nlpprune_lessons.measure.memory import release_memory
from nlpprune_lessons.models.transformers import load_causal_lm
from nlpprune_lessons.pruning.calibrated import parse_sparsity, prune_causal_lm
from nlpprune_lessons.pruning.masks import nm_mask
from nlpprune_lessons.pruning.params import transformer_blocks
from nlpprune_lessons.pruning.report import sparsity_report
from nlpprune_lessons.training.causal_lm import fine_tune_causal_lm

#: Held-out evaluation text: a novel by an author not used for calibration, from its first chapter
#: on (the book opens with a dedication in verse, whose perplexity is far above the prose's).
EVAL_BOOK = "chesterton-thursday.txt"
EVAL_START = "CHAPTER I\n"
#: Calibration text: four authors and styles (Wanda calibrates on C4 web text; we have no web text offline).
CALIBRATION_BOOKS = ("austen-emma.txt", "carroll-alice.txt", "melville-moby_dick.txt", "edgeworth-parents.txt")

#: FULL: 8,192 evaluation tokens in 512-token windows; Wanda's 128 calibration sequences, but of 128
#: tokens rather than 2,048 (a CPU budget: calibration runs the decoder twice, block by block).
LM_SETTINGS = dict(eval_tokens=8192, window=512, calibration_sequences=128, calibration_length=128,
                   sparsities=(0.3, 0.5, 0.7, "2:4"), calibration_sizes=(8, 32, 128), batch_size=8,
                   max_new_tokens=40, recovery=(("wanda", 0.5), ("magnitude", 0.5), ("wanda", "2:4")),
                   fine_tune=dict(sequences=384, length=128, batch_size=8, lr=1e-4, seed=1, kd_temperature=1.0,
                                  kd_weight=0.5))
#: FAST: the same code path on 1,024 evaluation tokens, 8 calibration sequences, three sparsities, and
#: the weight update after Wanda only (an update run adds a SparseGPT solve per matrix, slow on 2 cores); a two-step
#: fine-tune (the benchmark's smoke run: notebook 09 does not fine-tune, see its section 9).
LM_FAST = dict(eval_tokens=1024, calibration_sequences=8, sparsities=(0.5, 0.7, "2:4"), calibration_sizes=(2, 8),
               max_new_tokens=24, recovery=(("wanda", 0.5),),
               fine_tune=LM_SETTINGS["fine_tune"] | dict(sequences=8, length=64, batch_size=4))
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
        check_positive_int(value, name)
    if EVAL_BOOK in books:
        raise ValueError(f"{EVAL_BOOK} is the evaluation text: calibrating on it would leak the test set")
    ids = torch.as_tensor([i for book in books for i in tokenizer(book_text(book))["input_ids"]], dtype=torch.long)
    if ids.numel() <= length:
        raise ValueError(f"the calibration books hold {ids.numel()} tokens: too few for sequences of {length}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length, (sequences,), generator=generator)
    return torch.stack([ids[s:s + length] for s in starts.tolist()])


def measure(model: torch.nn.Module, tokenizer, text: str, settings: dict) -> dict:
    """Perplexity of ``model`` on ``text`` and its greedy continuation of :data:`PROMPT`."""
    return {"perplexity": perplexity(model, tokenizer, text, window=settings["window"]),
            "continuation": generate(model, tokenizer, PROMPT, settings["max_new_tokens"])}


def fine_tune_ids(tokenizer, settings: dict) -> torch.Tensor:
    """The recovery fine-tune's training sequences: ``settings["fine_tune"]``'s sequences x length tokens
    from :data:`CALIBRATION_BOOKS` (never the evaluation book), drawn with their own seed."""
    tune = settings["fine_tune"]
    return calibration_ids(tokenizer, tune["sequences"], tune["length"], seed=tune["seed"])


def pruned_run(method: str, sparsity: float | str, calibration: torch.Tensor | None, text: str, settings: dict,
               *, update: bool = False, train_ids: torch.Tensor | None = None, distill: bool = False,
               progress: Callable | None = None) -> dict:
    """Load a fresh SmolLM2, prune it one-shot, measure it, free it; one record of the lesson's table.

    With ``train_ids`` (see :func:`fine_tune_ids`) the pruned model is then fine-tuned with its zeros
    kept (:func:`~nlpprune_lessons.training.causal_lm.fine_tune_causal_lm`, settings from
    ``settings["fine_tune"]``), distilled from a second, dense copy when ``distill``. Sparsity 0 is the
    dense model (a fine-tuned dense model is the control of that recovery).
    A fresh copy each time (quick to load from the cache) instead of a deep copy of a dense model kept
    aside: two 135M-parameter models would not fit beside everything else in Binder's 2 GB.
    """
    fraction, pattern = parse_sparsity(sparsity)
    if distill and train_ids is None:
        raise ValueError("distill=True distils during the fine-tune: pass train_ids")
    model, tokenizer = load_causal_lm()
    start = time.perf_counter()
    report = prune_causal_lm(model, sparsity, method, calibration, update=update, batch_size=settings["batch_size"],
                             progress=progress)
    seconds = time.perf_counter() - start
    label = ("dense" if fraction == 0 else method) + (" + update" if update else "")
    record = {"method": label, "sparsity": str(sparsity), "pattern": "n:m" if pattern else "unstructured",
              "target_sparsity": fraction, "calibration_sequences": 0 if calibration is None else int(calibration.shape[0]),
              "prunable_sparsity": report.prunable_sparsity, "overall_sparsity": report.overall_sparsity,
              "prune_seconds": seconds}
    if train_ids is not None:
        tune = settings["fine_tune"]
        teacher = load_causal_lm()[0] if distill else None
        tuned = fine_tune_causal_lm(model, train_ids, lr=tune["lr"], batch_size=tune["batch_size"], teacher=teacher,
                                    kd_temperature=tune["kd_temperature"], kd_weight=tune["kd_weight"],
                                    progress=progress is not None)
        del teacher
        record["method"] += " + distilled fine-tune" if distill else " + fine-tune"
        record.update({f"fine_tune_{key}": value for key, value in tuned.items()})
        record["prunable_sparsity"] = sparsity_report(model).prunable_sparsity
    record.update(measure(model, tokenizer, text, settings))
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


def masked_latency(model: torch.nn.Module, tokens: int = 256, rounds: int = 3) -> dict:
    """Forward latency (ms) of the first block's MLP (gate, up and down projections: two thirds of a
    block's multiply-adds) on ``tokens`` tokens, dense and as a 2:4 magnitude-masked copy, timed
    alternately in this process (:func:`~nlpprune_lessons.measure.latency.compare_latency`); plus what PyTorch
    says about storing the masked weight in its compressed 2:4 format on the model's device. One MLP,
    not two whole models: a second 540 MB copy would not fit in Binder's 2 GB."""
    from nlpprune_lessons.measure.latency import compare_latency

    check_positive_int(tokens, "tokens")
    blocks = transformer_blocks(model)
    if blocks is None or not hasattr(blocks[0], "mlp"):
        raise ValueError(f"{type(model).__name__} has no decoder blocks with an .mlp")
    dense_mlp = blocks[0].mlp
    masked_mlp = copy.deepcopy(dense_mlp)
    with torch.no_grad():
        for linear in (m for m in masked_mlp.modules() if isinstance(m, torch.nn.Linear)):
            linear.weight.mul_(nm_mask(linear.weight.abs(), 2, 4))
    device = next(dense_mlp.parameters()).device
    x = torch.randn(1, tokens, model.config.hidden_size, generator=torch.Generator().manual_seed(0)).to(device)
    times = compare_latency({"dense": lambda: dense_mlp(x), "2:4 masked": lambda: masked_mlp(x)},
                            rounds=rounds, repeats=10, warmup=2)
    weights = [m.weight for m in masked_mlp.modules() if isinstance(m, torch.nn.Linear)]
    return {"module": "block 0 MLP", "dense_ms": times["dense"], "masked_ms": times["2:4 masked"], "tokens": tokens,
            "masked_sparsity": sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights),
            "threads": torch.get_num_threads(), "device": str(device),
            "semi_structured": semi_structured_status(weights[0])}
