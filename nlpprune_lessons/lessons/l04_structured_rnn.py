"""Lesson 04's control for cutting hidden units: the small dense model trained from scratch at the cut
model's size with the same total steps (Zhu & Gupta's "large-sparse or small-dense?", Liu et al.
2019's "rethinking the value of network pruning")."""

from __future__ import annotations

from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.core.checkpoints import cached_model
from nlpprune_lessons.lessons.l02_rnn import (
    CLASSIFIER_RECIPE,
    LM_RECIPE,
    PIPELINE_VERSION,
    LanguageModelData,
    SentimentData,
    build_classifier,
    build_language_model,
    fit_classifier,
    fit_language_model,
)
from nlpprune_lessons.lessons.l03_unstructured import FINE_TUNE, fine_tune_classifier, fine_tune_language_model


def small_dense(kind: str, data: SentimentData | LanguageModelData, hidden_size: int, dense_epochs: int,
                rounds: int, seed: int = 0) -> tuple[nn.Module, dict]:
    """A ``kind`` (``"classifier"`` or ``"language model"``) with ``hidden_size`` units per layer, trained
    from scratch with exactly the budget of a model cut from lesson 02's: the lesson 02 recipe for
    ``dense_epochs`` epochs (the epochs the dense model trained; the best epoch on validation kept),
    then ``rounds`` fine-tuning rounds of lesson 03. Cached; returns ``(model, meta)``."""
    if kind not in ("classifier", "language model"):
        raise ValueError(f"kind must be 'classifier' or 'language model', got {kind!r}")
    for value, name in ((hidden_size, "hidden_size"), (dense_epochs, "dense_epochs"), (rounds, "rounds")):
        check_positive_int(value, name)
    classifier = kind == "classifier"
    if classifier and not isinstance(data, SentimentData) or not classifier and not isinstance(data, LanguageModelData):
        raise TypeError(f"data for a {kind} must be a {'SentimentData' if classifier else 'LanguageModelData'}")

    def build() -> nn.Module:
        config.set_seed(seed)
        if classifier:
            return build_classifier(len(data.vocab), pad_id=data.vocab.pad_id, hidden_size=hidden_size)
        return build_language_model(len(data.vocab), hidden_size=hidden_size)

    def train(model: nn.Module) -> dict:
        fit = fit_classifier if classifier else fit_language_model
        history = fit(model, data, epochs=dense_epochs, progress=False, patience=None)
        for _ in range(rounds):
            (fine_tune_classifier if classifier else fine_tune_language_model)(model, data)
        return {"history": vars(history)}

    recipe = {**(CLASSIFIER_RECIPE if classifier else LM_RECIPE), "hidden_size": hidden_size, "seed": seed,
              "dense_epochs": dense_epochs, "rounds": rounds, "fine_tune": FINE_TUNE, "vocab": len(data.vocab),
              "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model(f"small-dense-{'rt' if classifier else 'lm'}", recipe, build, train)
    return model.to(config.get_device()), meta
