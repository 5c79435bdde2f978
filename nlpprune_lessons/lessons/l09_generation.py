"""Lesson 09's experiment, defined once for the notebook and ``benchmarks/lm_pruning.py``.

SmolLM2-135M (dequantised from a 4-bit GGUF file) is pruned one-shot (no training) and measured by
its perplexity on books by an author whose text is *not* in the calibration set, so Wanda's
activation statistics cannot simply memorise the evaluation text. Two Chesterton novels split the
roles: every choice (calibration size, tie-breaking, fine-tune learning rate, which recovery) reads
*The Ball and the Cross* (validation); *The Man Who Was Thursday* (test) is read only for the
reported numbers, once per configuration, with its standard error.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.data.gutenberg import book_text
from nlpprune_lessons.evaluate import generate, perplexity_scores, predict
from nlpprune_lessons.measure.memory import release_memory
from nlpprune_lessons.metrics import accuracy, binomial_standard_error, bootstrap_mean, distinct_n
from nlpprune_lessons.models.transformers import load_causal_lm
from nlpprune_lessons.pruning.calibrated import TIE_BREAKS, layer_mask, parse_sparsity, prune_causal_lm
from nlpprune_lessons.pruning.masks import nm_mask
from nlpprune_lessons.pruning.params import default_params, is_pruned, transformer_blocks
from nlpprune_lessons.pruning.report import SparsityReport, sparsity_report
from nlpprune_lessons.training.causal_lm import fine_tune_causal_lm

#: Test text: a novel by an author not used for calibration. Both Chesterton books are read from the
#: heading of their first chapter on (one rule for every book: front matter such as a title page or a
#: dedication is not the prose the lesson measures).
EVAL_BOOK = "chesterton-thursday.txt"
EVAL_START = "CHAPTER I\n"
#: Validation text: another novel by the same author, never used for calibration; every choice reads it.
VALIDATION_BOOK = "chesterton-ball.txt"
VALIDATION_START = "I. A DISCUSSION SOMEWHAT IN THE AIR\n"
#: The two splits a run can be measured on (:func:`measure`).
SPLITS = ("validation", "test")
#: Calibration text: four authors and styles (Wanda calibrates on C4 web text; we have no web text offline).
CALIBRATION_BOOKS = ("austen-emma.txt", "carroll-alice.txt", "melville-moby_dick.txt", "edgeworth-parents.txt")

#: FULL: 8,192 test and 8,192 validation tokens in 512-token windows; Wanda's 128 calibration
#: sequences, but of 128 tokens rather than 2,048 (a CPU budget: calibration runs the decoder twice,
#: block by block). ``recovery``: (method, sparsity) pairs recovered without training: ``"wanda"`` and
#: ``"magnitude"`` keep their mask and get the OBS weight update, ``"sparsegpt"`` chooses its own mask
#: during the update. ``fine_tune["lrs"]``: the learning rates each fine-tune tries, chosen on validation.
LM_SETTINGS = dict(eval_tokens=8192, window=512, calibration_sequences=128, calibration_length=128,
                   sparsities=(0.3, 0.5, 0.7, "2:4"), calibration_sizes=(8, 32, 128), batch_size=8,
                   max_new_tokens=40, tie_sparsity=0.5,
                   recovery=(("wanda", 0.5), ("magnitude", 0.5), ("wanda", "2:4"), ("sparsegpt", 0.5),
                             ("sparsegpt", "2:4")),
                   fine_tune=dict(sequences=384, length=128, batch_size=8, lrs=(3e-5, 1e-4, 3e-4, 1e-3), seed=1,
                                  kd_temperature=1.0, kd_weight=0.5))
#: FAST: the same code path on 512 test and 512 validation tokens (in 128-token windows), 8 calibration sequences, three
#: sparsities, and recovery at 50% only (Wanda's mask + update, and SparseGPT: each adds an OBS solve per
#: matrix, slow on 2 cores); two-step fine-tunes at two learning rates (the benchmark's smoke run:
#: notebook 09 does not fine-tune, see its section 9).
LM_FAST = dict(eval_tokens=512, window=128, calibration_sequences=8, sparsities=(0.5, 0.7, "2:4"),
               calibration_sizes=(2, 8), max_new_tokens=24, recovery=(("wanda", 0.5), ("sparsegpt", 0.5)),
               fine_tune=LM_SETTINGS["fine_tune"] | dict(sequences=8, length=64, batch_size=4, lrs=(3e-5, 1e-4)))
#: Prompt of the generated continuations (the first words of the evaluation book's second paragraph
#: are not used: a memorised continuation would say nothing about the model).
PROMPT = "The old man looked out of the window and said"


def lm_settings() -> dict:
    """:data:`LM_SETTINGS`, with :data:`LM_FAST` applied in FAST mode."""
    return LM_SETTINGS | (LM_FAST if config.is_fast() else {})


def _book_prose(tokenizer, tokens: int, book: str, start: str) -> str:
    """The first ``tokens`` tokens of ``book``'s prose, from its first occurrence of ``start``, as text."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"tokens must be an int >= 2, got {tokens!r}")
    if not callable(tokenizer) or not callable(getattr(tokenizer, "decode", None)):
        raise TypeError(f"tokenizer must be callable and have .decode (a transformers tokenizer), "
                        f"got {type(tokenizer).__name__}")
    text = book_text(book)
    ids = tokenizer(text[text.index(start):])["input_ids"]
    if len(ids) < tokens:
        raise ValueError(f"{book} has only {len(ids)} tokens, fewer than the {tokens} asked for")
    return tokenizer.decode(ids[:tokens])


def heldout_text(tokenizer, tokens: int) -> str:
    """The test text: the first ``tokens`` tokens of :data:`EVAL_BOOK`'s prose (from :data:`EVAL_START`)."""
    return _book_prose(tokenizer, tokens, EVAL_BOOK, EVAL_START)


def validation_text(tokenizer, tokens: int) -> str:
    """The validation text: the first ``tokens`` tokens of :data:`VALIDATION_BOOK`'s prose (from
    :data:`VALIDATION_START`); every choice of the lesson reads it, never :func:`heldout_text`."""
    return _book_prose(tokenizer, tokens, VALIDATION_BOOK, VALIDATION_START)


def lesson_texts(tokenizer, settings: dict) -> dict[str, str]:
    """``{"validation": ..., "test": ...}``, each ``settings["eval_tokens"]`` tokens long."""
    return {"validation": validation_text(tokenizer, settings["eval_tokens"]),
            "test": heldout_text(tokenizer, settings["eval_tokens"])}


def calibration_ids(tokenizer, sequences: int, length: int, seed: int = 0,
                    books: Sequence[str] = CALIBRATION_BOOKS) -> torch.Tensor:
    """``sequences`` x ``length`` token ids cut at seeded random places of ``books`` (as Wanda samples C4).

    The same seed gives the same sequences, and a smaller set is a prefix of a larger one: the
    calibration-size study adds data instead of drawing a new sample.
    """
    for value, name in ((sequences, "sequences"), (length, "length")):
        check_positive_int(value, name)
    if isinstance(books, str) or not books:
        raise ValueError("books must be a non-empty list of file names, e.g. ['austen-emma.txt']")
    for book, split in ((EVAL_BOOK, "test"), (VALIDATION_BOOK, "validation")):
        if book in books:
            raise ValueError(f"{book} is the {split} text: calibrating on it would leak the {split} set")
    ids = torch.as_tensor([i for book in books for i in tokenizer(book_text(book))["input_ids"]], dtype=torch.long)
    if ids.numel() <= length:
        raise ValueError(f"the calibration books hold {ids.numel()} tokens: too few for sequences of {length}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length, (sequences,), generator=generator)
    return torch.stack([ids[s:s + length] for s in starts.tolist()])


def check_texts(texts: Mapping[str, str]) -> Mapping[str, str]:
    """``texts`` itself, or ValueError unless it maps some of :data:`SPLITS` to non-empty strings."""
    if not isinstance(texts, Mapping) or not texts or any(k not in SPLITS for k in texts):
        raise ValueError(f"texts must map some of {SPLITS} to text (see lesson_texts), got "
                         f"{sorted(texts) if isinstance(texts, Mapping) else type(texts).__name__}")
    if any(not isinstance(t, str) or not t.strip() for t in texts.values()):
        raise ValueError("every text must be a non-empty string")
    return texts


def repetition(text: str) -> float:
    """Distinct-2 of ``text``'s words (distinct word pairs / all word pairs): 1 when no pair of words
    repeats, low when the text loops; 0 for fewer than two words."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    words = text.split()
    return distinct_n([words], 2) if len(words) >= 2 else 0.0


def measure(model: torch.nn.Module, tokenizer, texts: Mapping[str, str], settings: dict) -> dict:
    """``model``'s loss and perplexity with their noise on each of ``texts`` (keys prefixed by the split:
    ``validation_perplexity``, ``test_loss_se``, ...), its greedy continuation of :data:`PROMPT` and
    the continuation's distinct-2 (:func:`repetition`)."""
    record = {}
    for split, text in check_texts(texts).items():
        scores = perplexity_scores(model, tokenizer, text, window=settings["window"])
        record.update({f"{split}_{key}": value for key, value in scores.items()})
    record["continuation"] = generate(model, tokenizer, PROMPT, settings["max_new_tokens"])
    record["distinct2"] = repetition(record["continuation"])
    return record


def fine_tune_ids(tokenizer, settings: dict) -> torch.Tensor:
    """The recovery fine-tune's training sequences: ``settings["fine_tune"]``'s sequences x length tokens
    from :data:`CALIBRATION_BOOKS` (never the evaluation book), drawn with their own seed."""
    tune = settings["fine_tune"]
    return calibration_ids(tokenizer, tune["sequences"], tune["length"], seed=tune["seed"])


def run_label(method: str, sparsity: float | str, update: bool = False, tie_break: str = "position") -> str:
    """The name of a run in the lesson's tables: ``"dense"``, ``"magnitude"``, ``"wanda"``, ``"sparsegpt"``,
    ``"wanda mask + OBS update"`` (a fixed mask, then SparseGPT's weight update), ``"magnitude, ties random"``."""
    fraction, _ = parse_sparsity(sparsity)
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {', '.join(TIE_BREAKS)}")
    label = "dense" if fraction == 0 else method
    if tie_break != "position":
        label += f", ties {'by activation norm' if tie_break == 'activation' else tie_break}"
    return label + (" mask + OBS update" if update else "")


def pruned_model(method: str, sparsity: float | str, calibration: torch.Tensor | None, settings: dict,
                 *, update: bool = False, tie_break: str = "position", train_ids: torch.Tensor | None = None,
                 distill: bool = False, lr: float | None = None,
                 progress: Callable | None = None) -> tuple[torch.nn.Module, object, dict]:
    """A fresh SmolLM2 pruned one-shot (and fine-tuned with ``train_ids``), its tokenizer and its record
    (method, sparsity, times), not yet measured: :func:`pruned_run` measures and frees it.

    ``lr`` is the fine-tune's learning rate (default: the first of ``settings["fine_tune"]["lrs"]``).
    """
    fraction, pattern = parse_sparsity(sparsity)
    if distill and train_ids is None:
        raise ValueError("distill=True distils during the fine-tune: pass train_ids")
    if lr is not None and train_ids is None:
        raise ValueError("lr is the fine-tune's learning rate: pass train_ids too")
    model, tokenizer = load_causal_lm()
    start = time.perf_counter()
    report = prune_causal_lm(model, sparsity, method, calibration, update=update, batch_size=settings["batch_size"],
                             tie_break=tie_break, progress=progress)
    seconds = time.perf_counter() - start
    record = {"method": run_label(method, sparsity, update, tie_break), "sparsity": str(sparsity),
              "pattern": "n:m" if pattern else "unstructured", "target_sparsity": fraction,
              "calibration_sequences": 0 if calibration is None else int(calibration.shape[0]),
              "prunable_sparsity": report.prunable_sparsity, "overall_sparsity": report.overall_sparsity,
              "prune_seconds": seconds}
    if train_ids is not None:
        tune = settings["fine_tune"]
        teacher = load_causal_lm()[0] if distill else None
        tuned = fine_tune_causal_lm(model, train_ids, lr=tune["lrs"][0] if lr is None else lr,
                                    batch_size=tune["batch_size"], teacher=teacher,
                                    kd_temperature=tune["kd_temperature"], kd_weight=tune["kd_weight"],
                                    progress=progress is not None)
        del teacher
        record["method"] += " + distilled fine-tune" if distill else " + fine-tune"
        record.update({f"fine_tune_{key}": value for key, value in tuned.items()})
        record["prunable_sparsity"] = sparsity_report(model).prunable_sparsity
    return model, tokenizer, record


def pruned_run(method: str, sparsity: float | str, calibration: torch.Tensor | None, texts: Mapping[str, str],
               settings: dict, *, update: bool = False, tie_break: str = "position",
               train_ids: torch.Tensor | None = None, distill: bool = False, lr: float | None = None,
               progress: Callable | None = None) -> dict:
    """Load a fresh SmolLM2, prune it one-shot, measure it on ``texts`` (:func:`measure`), free it; one
    record of the lesson's table. Pass the test text only for a configuration that is reported, never
    for one among which a choice is made.

    With ``train_ids`` (see :func:`fine_tune_ids`) the pruned model is then fine-tuned with its zeros
    kept (:func:`~nlpprune_lessons.training.causal_lm.fine_tune_causal_lm`, settings from
    ``settings["fine_tune"]``), distilled from a second, dense copy when ``distill``. Sparsity 0 is the
    dense model (a fine-tuned dense model is the control of that recovery).
    A fresh copy each time (quick to load from the cache) instead of a deep copy of a dense model kept
    aside: two 135M-parameter models would not fit beside everything else in Binder's 2 GB.
    """
    check_texts(texts)
    model, tokenizer, record = pruned_model(method, sparsity, calibration, settings, update=update,
                                            tie_break=tie_break, train_ids=train_ids, distill=distill, lr=lr,
                                            progress=progress)
    record.update(measure(model, tokenizer, texts, settings))
    del model
    release_memory()
    return record


def tuned_run(method: str, sparsity: float | str, calibration: torch.Tensor | None, texts: Mapping[str, str],
              settings: dict, *, train_ids: torch.Tensor, update: bool = False, distill: bool = False,
              earlier: Mapping | None = None, progress: Callable | None = None) -> dict:
    """:func:`pruned_run` with a fine-tune at each of ``settings["fine_tune"]["lrs"]``: the learning rate
    with the lowest validation perplexity is kept (its weights held aside meanwhile), and only that model
    is measured on ``texts["test"]``. The record lists every tried rate and its validation perplexity
    (``fine_tune_lrs``, ``fine_tune_lr_validation_perplexity``).

    ``earlier`` is a finished record of the same run on a smaller grid (a subset of the rates, measured
    on the same texts): its rates are not fine-tuned again, so extending a grid costs only the new rates.
    When its rate stays the best, its record (test included) is kept; else the new best is measured."""
    check_texts(texts)
    if "validation" not in texts:
        raise ValueError("the learning rate is chosen on validation: texts needs a 'validation' text")
    if train_ids is None:
        raise ValueError("tuned_run fine-tunes: pass train_ids (see fine_tune_ids)")
    lrs = tuple(settings["fine_tune"]["lrs"])
    if not lrs or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0 for r in lrs):
        raise ValueError(f"settings['fine_tune']['lrs'] must be positive learning rates, got {lrs!r}")
    known = {}
    if earlier is not None:
        earlier_lrs = earlier.get("fine_tune_lrs")
        if not earlier_lrs or not set(earlier_lrs) <= set(lrs) or not all(f"{s}_perplexity" in earlier for s in texts):
            raise ValueError(f"earlier must be a tuned_run record on a subset of the rates {lrs} measured on "
                             f"{sorted(texts)}, got rates {earlier_lrs!r} and keys {sorted(earlier)}")
        known = dict(zip(earlier_lrs, earlier["fine_tune_lr_validation_perplexity"]))
    best = (None, dict(earlier)) if earlier is not None else None
    tried = []
    for lr in lrs:
        if lr in known:
            tried.append(known[lr])
            continue
        model, tokenizer, record = pruned_model(method, sparsity, calibration, settings, update=update,
                                                train_ids=train_ids, distill=distill, lr=lr, progress=progress)
        record.update(measure(model, tokenizer, {"validation": texts["validation"]}, settings))
        tried.append(record["validation_perplexity"])
        if best is None or record["validation_perplexity"] < best[1]["validation_perplexity"]:
            best = ({k: v.detach().clone() for k, v in model.state_dict().items()}, record)
        del model
        release_memory()
    state, record = best
    record.update({"fine_tune_lrs": list(lrs), "fine_tune_lr_validation_perplexity": tried})
    if "test" in texts and state is not None:
        model, tokenizer = load_causal_lm()
        model.load_state_dict(state)
        del state
        record.update(measure(model, tokenizer, {"test": texts["test"]}, settings))
        del model
        release_memory()
    return record


def lr_edge_note(record: Mapping) -> str:
    """For a :func:`tuned_run` record: a warning when validation chose the smallest or the largest of the
    learning rates tried (the best rate may lie beyond the grid), else an empty string."""
    lrs, chosen = record.get("fine_tune_lrs"), record.get("fine_tune_lr")
    if not lrs or chosen is None or len(lrs) < 2:
        return ""
    if chosen == max(lrs):
        return f" (the largest rate tried, of {', '.join(f'{r:g}' for r in lrs)}: a larger one might do better)"
    if chosen == min(lrs):
        return f" (the smallest rate tried, of {', '.join(f'{r:g}' for r in lrs)}: a smaller one might do better)"
    return ""


def magnitude_per_row(model: torch.nn.Module, sparsity: float | str) -> SparsityReport:
    """Zero the lowest ``|W|`` of every output row (or the N:M pattern) of every prunable Linear of
    ``model`` (:func:`~nlpprune_lessons.pruning.params.default_params`: inside the blocks), in place:
    the scope of :func:`~nlpprune_lessons.pruning.calibrated.prune_causal_lm`'s magnitude, for any
    transformers model (an encoder classifier too). Sparsity is absolute: 0.5 then 0.7 gives 70%."""
    if any(is_pruned(m, "weight") for m in model.modules()):
        raise ValueError("the model carries torch.nn.utils.prune masks: call pruning.make_permanent(model) first")
    parse_sparsity(sparsity)
    with torch.no_grad():
        for module, name in default_params(model):
            weight = getattr(module, name)
            weight.mul_(layer_mask(weight.abs(), sparsity))
    return sparsity_report(model)


def classifier_cross_entropy(model: torch.nn.Module, loader, seed: int = 0) -> dict:
    """Mean cross-entropy (nats per example) of a classifier on ``loader`` with its bootstrap standard
    error over examples (``loss_se``), and its ``accuracy`` with ``accuracy_se`` and ``n``."""
    logits, preds, labels = predict(model, loader)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    spread = bootstrap_mean(losses, seed=seed)
    acc = accuracy(preds, labels)
    return {"loss": spread["mean"], "loss_se": spread["se"], "accuracy": acc,
            "accuracy_se": binomial_standard_error(acc, labels.numel()), "n": labels.numel()}


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


def loss_increase(dense: Mapping[str, float], pruned: Mapping[str, float], prefix: str = "") -> dict:
    """How much ``pruned``'s mean cross-entropy (``prefix + "loss"``, nats) exceeds ``dense``'s, and the
    standard error of that increase from both ``loss_se`` (added in quadrature: conservative when both
    were measured on the same examples, whose errors move together)."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    keys = (prefix + "loss", prefix + "loss_se")
    missing = sorted({k for k in keys for d in (dense, pruned) if not isinstance(d, Mapping) or k not in d})
    if missing:
        raise ValueError(f"scores lack {missing}: pass score dicts with {keys[0]!r} and {keys[1]!r}")
    return {"increase": pruned[keys[0]] - dense[keys[0]], "se": math.hypot(dense[keys[1]], pruned[keys[1]])}


def plot_feature_norms(ax, norms: torch.Tensor, title: str = "") -> dict[str, float]:
    """Section 5's figure on ``ax``: a histogram (log counts) of the input-feature norms ``||X_j||_2``
    that Wanda multiplies each column of ``|W|`` by (``norms``: one per input feature, e.g.
    ``InputStats(linear).sq_sum.sqrt()``), with the median and five times the median marked. Returns
    the median, the largest norm over the median and the share of features above five times it."""
    if not isinstance(norms, torch.Tensor) or norms.ndim != 1 or norms.numel() == 0 or not norms.is_floating_point():
        raise ValueError("norms must be a non-empty 1-D floating-point tensor, one norm per input feature")
    if bool((norms < 0).any()) or not bool(norms.isfinite().all()):
        raise ValueError("norms must be finite and non-negative (square roots of sums of squares)")
    values = norms.detach().double().cpu()
    median = values.median().item()
    ax.hist(values.numpy(), bins=60, log=True, color="tab:blue")
    for x, style, label in ((median, "--", "median"), (5 * median, ":", "5 x median")):
        ax.axvline(x, color="black", linestyle=style, label=f"{label} ({x:.3g})")
    ax.set(xlabel="input-feature norm ||X_j||_2 over the calibration tokens", ylabel="features (log)", title=title)
    ax.legend(fontsize=8)
    ratio = values.max().item() / median if median > 0 else math.inf
    return {"median": median, "max_over_median": ratio, "share_above_5x": (values > 5 * median).double().mean().item()}
