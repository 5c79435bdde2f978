"""Lesson 03's recipes on top of lesson 02's models: the fine-tuning after one-shot pruning, the
gradual-pruning trainers (cubic schedule) and the robustness probe (typos and dropped words)."""

from __future__ import annotations

from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.lessons.l02_rnn import (
    LM_RECIPE,
    LanguageModelData,
    SentimentData,
    fit_classifier,
    fit_language_model,
    sentiment_loader,
)
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.pruning.protocols import Train
from nlpprune_lessons.text.perturb import changed_share, perturb_texts
from nlpprune_lessons.text.streams import batchify, num_bptt_windows


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


#: Fine-tuning between pruning steps: one epoch at a lower learning rate; the language model reads
#: only the first tokens of its training stream in FULL mode (the whole stream takes minutes).
FINE_TUNE = dict(epochs=1, lr=1e-3, lm_tokens_full=120_000)


def fine_tune_classifier(model: RNNClassifier, data: SentimentData) -> None:
    """The standard recovery step after pruning (masks stay on)."""
    fit_classifier(model, data, epochs=FINE_TUNE["epochs"], progress=False, patience=None, lr=FINE_TUNE["lr"])


def fine_tune_language_model(model: RNNLanguageModel, data: LanguageModelData) -> None:
    """The standard recovery step after pruning (masks stay on)."""
    tokens = config.pick(fast=None, full=FINE_TUNE["lm_tokens_full"])
    subset = LanguageModelData(data.vocab, {**data.ids, "train": data.ids["train"][:tokens]})
    fit_language_model(model, subset, epochs=FINE_TUNE["epochs"], progress=False, patience=None, lr=FINE_TUNE["lr"])


#: Gradual pruning (and its dense control): the dense model trains on for a few more epochs while a
#: cubic schedule raises the sparsity; the last weights are kept (an earlier epoch is less sparse).
GRADUAL = dict(lr=1e-3, prune_until=0.7, pruning_events=20, classifier_epochs_full=4, lm_epochs_full=3,
               classifier_epochs_fast=1, lm_epochs_fast=1)


def _gradual_epochs(epochs: int | None, fast: int, full: int) -> int:
    if epochs is None:
        return config.pick(fast=fast, full=full)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be None (the recipe's) or an int >= 1, got {epochs!r}")
    return epochs


def classifier_trainer(data: SentimentData, epochs: int | None = None) -> tuple[Train, int]:
    """``(train(model, on_step), total_steps)`` for :func:`nlpprune_lessons.pruning.protocols.gradual`: the standard
    recipe at ``GRADUAL["lr"]``, no early stopping, the last epoch's weights kept."""
    epochs = _gradual_epochs(epochs, GRADUAL["classifier_epochs_fast"], GRADUAL["classifier_epochs_full"])

    def train(model, on_step):
        fit_classifier(model, data, epochs=epochs, progress=False, patience=None, lr=GRADUAL["lr"],
                       on_step=on_step, restore_best=False)

    return train, epochs * len(data.loaders["train"])


def language_model_trainer(data: LanguageModelData, epochs: int | None = None) -> tuple[Train, int]:
    """As :func:`classifier_trainer`, for the language model (whole training stream, TBPTT)."""
    epochs = _gradual_epochs(epochs, GRADUAL["lm_epochs_fast"], GRADUAL["lm_epochs_full"])
    r = LM_RECIPE

    def train(model, on_step):
        fit_language_model(model, data, epochs=epochs, progress=False, patience=None, lr=GRADUAL["lr"],
                           on_step=on_step, restore_best=False)

    return train, epochs * num_bptt_windows(batchify(data.ids["train"], r["batch_size"]), r["bptt"])
