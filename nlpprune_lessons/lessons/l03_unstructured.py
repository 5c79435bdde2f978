"""Lesson 03's recipes on top of lesson 02's models: the fine-tuning after one-shot pruning, the
gradual-pruning trainers (cubic schedule), the robustness probe (typos and dropped words), and the
figures that look inside a pruned model (weight histograms, per-matrix sparsity, a mask)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.metrics import compare_scores
from nlpprune_lessons.lessons.l02_rnn import (
    LM_RECIPE,
    LanguageModelData,
    SentimentData,
    fit_classifier,
    fit_language_model,
    sentiment_loader,
)
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.pruning import default_params, effective_weight, zero_fraction
from nlpprune_lessons.pruning.protocols import Train
from nlpprune_lessons.text.perturb import changed_share, perturb_texts
from nlpprune_lessons.text.streams import batchify, num_bptt_windows, spread_stream


class RobustnessProbe:
    """An ``evaluate(model) -> dict`` for the pruning protocols: test and train accuracy, their gap, and accuracy on
    perturbed copies of the test reviews (:func:`~nlpprune_lessons.text.perturb.add_typos` at ``typo_rate``,
    :func:`~nlpprune_lessons.text.perturb.drop_words` at ``drop_rate``). The perturbed texts are drawn once,
    with ``seed``, so every model is tested on the same inputs; :attr:`perturbations` says how much
    each perturbation changed (share of tokens changed, share of tokens unknown to the vocabulary)."""

    def __init__(self, data: SentimentData, typo_rate: float = 0.2, drop_rate: float = 0.2, seed: int = 0) -> None:
        if not isinstance(data, SentimentData):
            raise TypeError(f"data must be a SentimentData (l02_rnn.sentiment_data()), got {type(data).__name__}")
        test_tokens, test_labels = data.tokens["test"], data.labels["test"]
        perturbed = {kind: perturb_texts(test_tokens, kind, rate, seed)
                     for kind, rate in (("typos", typo_rate), ("dropped words", drop_rate))}
        self.perturbations = {"none": {"rate": 0.0, "changed_share": 0.0,
                                       "unknown_share": data.vocab.oov_rate(test_tokens)}}
        for kind, texts in perturbed.items():
            self.perturbations[kind] = {"rate": typo_rate if kind == "typos" else drop_rate,
                                        "changed_share": changed_share(test_tokens, texts),
                                        "unknown_share": data.vocab.oov_rate(texts)}
        self.loaders = {
            "accuracy": data.loaders["test"],
            "train_accuracy": sentiment_loader(data.vocab, data.tokens["train"], data.labels["train"]),
            **{f"{kind.replace(' ', '_')}_accuracy": sentiment_loader(data.vocab, texts, test_labels)
               for kind, texts in perturbed.items()},
        }

    def __call__(self, model: nn.Module) -> dict[str, float]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        result = {name: evaluate_classifier(model, loader)["accuracy"] for name, loader in self.loaders.items()}
        result["generalisation_gap"] = result["train_accuracy"] - result["accuracy"]
        return result


#: Fine-tuning between pruning steps, "a round": the classifier reads its training set once at a lower
#: learning rate; the language model reads a third of its training stream, taken as one run per batch
#: row spread evenly over the stream (:func:`~nlpprune_lessons.text.streams.spread_stream`): the stream
#: joins the novels one after another, and its first third would be one novel only.
FINE_TUNE = dict(lr=1e-3, lm_share=1 / 3)


def _check_rounds(rounds: object) -> int:
    return check_positive_int(rounds, "rounds", "fine-tuning rounds of the budget")


def fine_tune_classifier(model: RNNClassifier, data: SentimentData) -> None:
    """One round of the standard recovery step after pruning (masks stay on)."""
    fit_classifier(model, data, epochs=1, progress=False, patience=None, lr=FINE_TUNE["lr"], restore_best=False)


def language_model_rounds(data: LanguageModelData, rounds: int = 1) -> LanguageModelData:
    """``data`` with a training stream of ``rounds`` fine-tuning rounds (a third of the stream each, spread)."""
    train = data.ids["train"]
    tokens = round(_check_rounds(rounds) * FINE_TUNE["lm_share"] * train.numel())
    return LanguageModelData(data.vocab, {**data.ids, "train": spread_stream(train, tokens, LM_RECIPE["batch_size"])})


def fine_tune_language_model(model: RNNLanguageModel, data: LanguageModelData) -> None:
    """One round of the standard recovery step after pruning (masks stay on): a third of the training
    stream, spread over it (:func:`language_model_rounds`)."""
    fit_language_model(model, language_model_rounds(data), epochs=1, progress=False, patience=None,
                       lr=FINE_TUNE["lr"], restore_best=False)


#: Gradual pruning (and its dense control): the dense model trains on while a cubic schedule raises the
#: sparsity; the last weights are kept (an earlier step is less sparse). The budget is counted in
#: fine-tuning rounds, so that gradual, iterative and one-shot pruning can be compared at equal steps;
#: ``published_rounds`` is the longer run of Zhu & Gupta's regime (pruning inside a training run of
#: several epochs: 4 classifier epochs, 3 language-model epochs).
GRADUAL = dict(lr=1e-3, prune_until=0.7, pruning_events=20,
               published_rounds=dict(classifier=dict(fast=1, full=4), language_model=dict(fast=3, full=9)))


def published_rounds(model: str) -> int:
    """The budget of :data:`GRADUAL`'s published regime for ``model`` (``"classifier"`` or ``"language_model"``)."""
    if model not in GRADUAL["published_rounds"]:
        raise ValueError(f"model must be one of {list(GRADUAL['published_rounds'])}, got {model!r}")
    budget = GRADUAL["published_rounds"][model]
    return config.pick(fast=budget["fast"], full=budget["full"])


def classifier_trainer(data: SentimentData, rounds: int) -> tuple[Train, int]:
    """``(train(model, on_step), total_steps)`` for :func:`nlpprune_lessons.pruning.protocols.gradual`: ``rounds``
    epochs of the standard recipe at ``GRADUAL["lr"]``, no early stopping, the last weights kept."""
    epochs = _check_rounds(rounds)

    def train(model, on_step):
        fit_classifier(model, data, epochs=epochs, progress=False, patience=None, lr=GRADUAL["lr"],
                       on_step=on_step, restore_best=False)

    return train, epochs * len(data.loaders["train"])


def language_model_trainer(data: LanguageModelData, rounds: int) -> tuple[Train, int]:
    """As :func:`classifier_trainer`, for the language model: ``rounds`` fine-tuning rounds' tokens
    (:func:`language_model_rounds`) read once by TBPTT."""
    budget = language_model_rounds(data, rounds)

    def train(model, on_step):
        fit_language_model(model, budget, epochs=1, progress=False, patience=None, lr=GRADUAL["lr"],
                           on_step=on_step, restore_best=False)

    r = LM_RECIPE
    return train, num_bptt_windows(batchify(budget.ids["train"], r["batch_size"]), r["bptt"])


# --------------------------------------------------------------------------- reading the results
#: The headline number of each of lesson 02's models.
METRIC = {"classifier": "accuracy", "language model": "perplexity"}


def plot_with_noise(ax: Axes, frame: pd.DataFrame, metric: str, prefix: str = "val_", x: str = "sparsity",
                    **style) -> None:
    """Plot ``prefix + metric`` against ``x`` with error bars: two standard errors of an accuracy, or
    the bootstrap 95% interval of a perplexity (``_low`` / ``_high``)."""
    rows = frame.sort_values(x)
    y = rows[prefix + metric]
    if metric == "accuracy":
        spread = 2 * rows[prefix + "accuracy_se"]
        error = [spread, spread]
    elif metric == "perplexity":
        error = [y - rows[prefix + "perplexity_low"], rows[prefix + "perplexity_high"] - y]
    else:
        raise ValueError(f"metric must be 'accuracy' or 'perplexity', got {metric!r}")
    ax.errorbar(rows[x], y, yerr=error, marker=style.pop("marker", "o"), capsize=3, **style)


def verdict_line(model: str, label_a: str, a: Mapping[str, float], label_b: str, b: Mapping[str, float],
                 prefix: str = "val_") -> str:
    """One sentence comparing two measured models of ``model`` (``"classifier"`` or ``"language model"``)
    on ``prefix + metric``: both values, the difference in standard errors, and the verdict for ``a``."""
    if model not in METRIC:
        raise ValueError(f"model must be one of {list(METRIC)}, got {model!r}")
    metric = METRIC[model]
    c = compare_scores(a, b, metric, prefix)
    split = "validation" if prefix == "val_" else "test"
    ses = c["difference"] / c["se"] if c["se"] else math.inf
    word = {"win": "better than", "loss": "worse than", "tie": "a tie with"}[c["verdict"]]
    digits = 3 if metric == "accuracy" else 1
    return (f"{model}: {label_a} {a[prefix + metric]:.{digits}f} vs {label_b} {b[prefix + metric]:.{digits}f} "
            f"({split} {metric}; {ses:+.1f} standard errors): {label_a} is {word} {label_b}")


# --------------------------------------------------------------------------- looking inside a pruned model
def prunable_weights(model: nn.Module) -> torch.Tensor:
    """The effective (masked) values of every prunable weight of ``model`` (:func:`default_params`),
    flattened into one float CPU tensor."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with torch.no_grad():
        return torch.cat([effective_weight(m, n).detach().float().cpu().flatten() for m, n in default_params(model)])


def plot_weight_histograms(ax: Axes, models: Mapping[str, nn.Module], bins: int = 120) -> dict[str, float]:
    """Overlaid histograms (log counts) of the prunable weights of each model in ``models`` (label -> model),
    on shared bins spanning the largest |w|. Exact zeros — the pruned weights — are left out, so a magnitude
    mask shows as an empty band around 0; the legend gives each model's share of zeros, which is returned."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping {label: model}")
    check_positive_int(bins, "bins")
    values = {label: prunable_weights(model) for label, model in models.items()}
    limit = max(float(v.abs().max()) for v in values.values()) or 1.0
    edges = np.linspace(-limit, limit, bins + 1)
    zeros = {}
    for label, v in values.items():
        zeros[label] = zero_fraction(v)
        shown = f"{label} ({zeros[label]:.0%} zeros, not drawn)" if zeros[label] else label
        ax.hist(v[v != 0].numpy(), bins=edges, histtype="step", linewidth=1.4, label=shown)
    ax.set_yscale("log")
    ax.set(xlabel="weight value", ylabel="weights per bin")
    ax.legend(fontsize=8)
    return zeros


def plot_matrix_sparsity(ax: Axes, per_matrix: Mapping[str, float], title: str = "") -> None:
    """Horizontal bars: the sparsity of each weight matrix (the dict :func:`~nlpprune_lessons.pruning.prune`
    returns), with a dotted line at 1 (an empty matrix)."""
    if not isinstance(per_matrix, Mapping) or not per_matrix:
        raise ValueError("per_matrix must be a non-empty mapping {matrix name: sparsity}")
    names = list(per_matrix)
    ax.barh(names, [per_matrix[n] for n in names], color="tab:blue")
    ax.axvline(1.0, color="k", ls=":")
    ax.invert_yaxis()  # the first matrix on top, as in the model
    ax.set(xlim=(0, 1.02), xlabel="sparsity of the matrix", title=title)


def plot_mask(ax: Axes, mask: torch.Tensor, title: str = "", blocks: int = 1) -> None:
    """A 0/1 mask as an image: kept weights white, pruned black, grey where a mask larger than the figure is
    shown averaged; rows are outputs, columns inputs. With ``blocks`` > 1, lines split the rows into that
    many equal blocks: ``blocks=4`` marks the input, forget, cell and output gates of an LSTM weight matrix."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D tensor, got {type(mask).__name__}"
                         f"{f' of shape {tuple(mask.shape)}' if isinstance(mask, torch.Tensor) else ''}")
    check_positive_int(blocks, "blocks")
    if mask.shape[0] % blocks:
        raise ValueError(f"blocks={blocks} does not divide the {mask.shape[0]} rows of the mask")
    # "auto" interpolation: a mask with more rows than the figure has pixels is shown averaged (grey = the
    # share kept there), not by picking one row in every few, which would draw a pattern that is not there.
    ax.imshow(mask.detach().float().cpu().numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto",
              interpolation="auto")
    rows = mask.shape[0] // blocks
    for k in range(1, blocks):
        ax.axhline(k * rows - 0.5, color="tab:red", lw=1)
    ax.set(xlabel="input", ylabel="output", title=title)
