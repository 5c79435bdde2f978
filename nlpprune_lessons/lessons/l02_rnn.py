"""The course's standard data pipelines and trained models for lessons 02-05 (defined once, cached).

``trained_classifier()`` and ``trained_language_model()`` return the models lesson 02 trains; a
later lesson calling them gets the cached weights, or trains them with the same seed if absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checkpoints import cached_model
from nlpprune_lessons.data import SPLITS, gutenberg_sentences, load_rotten_tomatoes
from nlpprune_lessons.evaluate import evaluate_classifier, evaluate_language_model
from nlpprune_lessons.models import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.text.batching import make_loader
from nlpprune_lessons.text.tokenize import normalise, word_tokenize
from nlpprune_lessons.text.vocab import Vocab
from nlpprune_lessons.training.loop import train_classifier, train_language_model

#: Part of every cache key: bump it when a change to the data pipeline or the training code changes
#: what a recipe trains, so that caches made by older code are not reused.
PIPELINE_VERSION = 2

CLASSIFIER_RECIPE = dict(min_freq=2, batch_size=32, embed_dim=128, hidden_size=256, num_layers=1,
                         dropout=0.5, lr=2e-3, weight_decay=1e-4, max_epochs=10, patience=2)
LM_RECIPE = dict(min_freq=3, batch_size=32, bptt=35, embed_dim=256, hidden_size=256, num_layers=2,
                 dropout=0.3, lr=2e-3, weight_decay=0.0, max_epochs=6, patience=2)


@dataclass
class SentimentData:
    """Rotten Tomatoes, lower-cased Treebank tokens, a train-split vocabulary and padded loaders."""

    vocab: Vocab
    tokens: dict[str, list[list[str]]]
    labels: dict[str, list[int]]
    loaders: dict[str, DataLoader]


@dataclass
class LanguageModelData:
    """Gutenberg (Austen) as token-id streams, sentences ended by ``<eos>``."""

    vocab: Vocab
    ids: dict[str, torch.Tensor]


@lru_cache(maxsize=4)
def _sentiment_data(fast: bool, seed: int, min_freq: int, batch_size: int) -> SentimentData:
    rt = load_rotten_tomatoes(seed=seed, fast=fast)
    tokens = {s: [normalise(word_tokenize(t)) for t in rt[s].text] for s in SPLITS}
    labels = {s: rt[s].label.tolist() for s in SPLITS}
    vocab = Vocab.build(tokens["train"], min_freq=min_freq)
    loaders = {s: sentiment_loader(vocab, tokens[s], labels[s], batch_size=batch_size, shuffle=True, seed=seed)
               if s == "train" else sentiment_loader(vocab, tokens[s], labels[s]) for s in SPLITS}
    return SentimentData(vocab, tokens, labels, loaders)


def sentiment_loader(vocab: Vocab, tokens: list[list[str]], labels: list[int], batch_size: int = 256,
                     shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Padded, length-bucketed batches of tokenised reviews (``<bos>`` first), as the classifier reads them;
    e.g. for evaluating on perturbed copies of the test texts."""
    encoded = [vocab.encode(t, add_bos=True) for t in tokens]
    return make_loader(encoded, labels, batch_size=batch_size, shuffle=shuffle, bucket=True, pad_id=vocab.pad_id,
                       seed=seed)


def sentiment_data(seed: int = 0) -> SentimentData:
    """The sentiment data of lessons 02-04 (FAST or FULL by the current mode)."""
    r = CLASSIFIER_RECIPE
    return _sentiment_data(config.is_fast(), seed, r["min_freq"], r["batch_size"])


@lru_cache(maxsize=2)
def _lm_data(fast: bool, min_freq: int) -> LanguageModelData:
    tokens = {s: list(gutenberg_sentences(s, fast=fast, lowercase=True)) for s in SPLITS}
    vocab = Vocab.build(tokens["train"], min_freq=min_freq)
    ids = {s: torch.tensor([i for sent in tokens[s] for i in vocab.encode(sent, add_eos=True)])
           for s in SPLITS}
    return LanguageModelData(vocab, ids)


def language_model_data() -> LanguageModelData:
    """The language-modelling data of lessons 02-04 (FAST or FULL by the current mode)."""
    return _lm_data(config.is_fast(), LM_RECIPE["min_freq"])


def build_classifier(vocab_size: int, cell: str = "lstm", pad_id: int = 0,
                     hidden_size: int | None = None) -> RNNClassifier:
    """An untrained classifier with the course's standard sizes (``hidden_size`` overrides the recipe's)."""
    r = CLASSIFIER_RECIPE
    return RNNClassifier(vocab_size, 2, embed_dim=r["embed_dim"], hidden_size=hidden_size or r["hidden_size"],
                         num_layers=r["num_layers"], cell=cell, dropout=r["dropout"], pad_id=pad_id)


def build_language_model(vocab_size: int, cell: str = "lstm", hidden_size: int | None = None) -> RNNLanguageModel:
    """An untrained language model with the course's standard sizes (``hidden_size`` overrides the recipe's)."""
    r = LM_RECIPE
    return RNNLanguageModel(vocab_size, embed_dim=r["embed_dim"], hidden_size=hidden_size or r["hidden_size"],
                            num_layers=r["num_layers"], cell=cell, dropout=r["dropout"])


def fit_classifier(model: RNNClassifier, data: SentimentData, epochs: int | None = None,
                   progress: bool = True, **overrides):
    """Train with the standard recipe (``overrides`` go to :func:`train_classifier`)."""
    r = CLASSIFIER_RECIPE
    kwargs = dict(lr=r["lr"], weight_decay=r["weight_decay"], patience=r["patience"]) | overrides
    epochs = epochs or config.pick(fast=3, full=r["max_epochs"])
    return train_classifier(model, data.loaders["train"], data.loaders["validation"], epochs=epochs,
                            progress=progress, **kwargs)


def fit_language_model(model: RNNLanguageModel, data: LanguageModelData, epochs: int | None = None,
                       progress: bool = True, **overrides):
    """Train with the standard TBPTT recipe (``overrides`` go to :func:`train_language_model`)."""
    r = LM_RECIPE
    kwargs = dict(lr=r["lr"], batch_size=r["batch_size"], bptt=r["bptt"], weight_decay=r["weight_decay"],
                  patience=r["patience"]) | overrides
    epochs = epochs or config.pick(fast=2, full=r["max_epochs"])
    return train_language_model(model, data.ids["train"], data.ids["validation"], epochs=epochs,
                                progress=progress, **kwargs)


def classifier_scores(data: SentimentData):
    """``evaluate(model) -> dict`` for the protocols of lessons 03-05: validation accuracy (choices
    are made on it) and test accuracy (read once per reported model), each with its binomial
    standard error (``*_se``)."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        val = evaluate_classifier(model, data.loaders["validation"])
        test = evaluate_classifier(model, data.loaders["test"])
        return {"val_accuracy": val["accuracy"], "val_accuracy_se": val["accuracy_se"],
                "accuracy": test["accuracy"], "accuracy_se": test["accuracy_se"]}

    return evaluate


def language_model_scores(data: LanguageModelData):
    """As :func:`classifier_scores`: validation and test perplexity, each with its bootstrap 95%
    interval (``*_low`` / ``*_high``) and the standard error of its log (``loss_se``)."""
    keys = ("perplexity", "perplexity_low", "perplexity_high", "loss_se")

    def evaluate(model: nn.Module) -> dict[str, float]:
        val = evaluate_language_model(model, data.ids["validation"])
        test = evaluate_language_model(model, data.ids["test"])
        return {**{f"val_{k}": val[k] for k in keys}, **{k: test[k] for k in keys}}

    return evaluate


def trained_classifier(cell: str = "lstm", seed: int = 0, progress: bool = True):
    """Lesson 02's sentiment classifier: ``(model, data, meta)``; cached after the first training."""
    data = sentiment_data(seed)

    def build():
        config.set_seed(seed)
        return build_classifier(len(data.vocab), cell, data.vocab.pad_id)

    def train(model):
        history = fit_classifier(model, data, progress=progress)
        return {"history": vars(history), "test": evaluate_classifier(model, data.loaders["test"])}

    recipe = {**CLASSIFIER_RECIPE, "cell": cell, "seed": seed, "vocab": len(data.vocab), "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model("rt-classifier", recipe, build, train)
    return model.to(config.get_device()), data, meta


def trained_language_model(cell: str = "lstm", seed: int = 0, progress: bool = True):
    """Lesson 02's Gutenberg language model: ``(model, data, meta)``; cached after the first training."""
    data = language_model_data()

    def build():
        config.set_seed(seed)
        return build_language_model(len(data.vocab), cell)

    def train(model):
        history = fit_language_model(model, data, progress=progress)
        return {"history": vars(history), "test": evaluate_language_model(model, data.ids["test"])}

    recipe = {**LM_RECIPE, "cell": cell, "seed": seed, "vocab": len(data.vocab), "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model("gutenberg-lm", recipe, build, train)
    return model.to(config.get_device()), data, meta
