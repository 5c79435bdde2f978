"""The course's standard data pipelines and trained models for lessons 02-05 (defined once, cached).

``trained_classifier()`` and ``trained_language_model()`` return the models lesson 02 trains; a
later lesson calling them gets the cached weights, or trains them with the same seed if absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch.utils.data import DataLoader

from . import config
from .checkpoints import cached_model
from .data import SPLITS, gutenberg_sentences, load_rotten_tomatoes
from .models import RNNClassifier, RNNLanguageModel
from .sweeps import Train
from .textgan import SentenceData, mle_fine_tune_steps, sentence_perplexity, short_sentences, train_steps
from .text import Vocab, batchify, make_loader, normalise, num_bptt_windows, word_tokenize
from .train import evaluate_classifier, evaluate_language_model, train_classifier, train_language_model

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


def build_classifier(vocab_size: int, cell: str = "lstm", pad_id: int = 0) -> RNNClassifier:
    """An untrained classifier with the course's standard sizes."""
    r = CLASSIFIER_RECIPE
    return RNNClassifier(vocab_size, 2, embed_dim=r["embed_dim"], hidden_size=r["hidden_size"],
                         num_layers=r["num_layers"], cell=cell, dropout=r["dropout"], pad_id=pad_id)


def build_language_model(vocab_size: int, cell: str = "lstm") -> RNNLanguageModel:
    """An untrained language model with the course's standard sizes."""
    r = LM_RECIPE
    return RNNLanguageModel(vocab_size, embed_dim=r["embed_dim"], hidden_size=r["hidden_size"],
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
    """``(train(model, on_step), total_steps)`` for :func:`nlpprune_lessons.sweeps.gradual`: the standard
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


#: Lesson 05's text GAN: sentences of 3-19 words (+ <eos>); the generator is lesson 02's language
#: model fine-tuned on them by MLE, sentence by sentence. In FULL mode one epoch: validation
#: perplexity was lowest after about one epoch and rose after (8 epochs: test 55.7 -> 56.6).
GAN_RECIPE = dict(max_len=20, min_words=3, batch_size=64, mle_lr=1e-3, mle_epochs_fast=3, mle_epochs_full=1)

#: Steps and sample counts of lesson 05 by mode: discriminator pre-training, adversarial fine-tuning
#: (generator lr ``adv_lr``), the pruning comparison (mask learning, then recovery) and the samples
#: that BLEU / self-BLEU are computed on.
GAN_STEPS = dict(fast=dict(d_steps=30, adv_steps=24, mask_steps=24, recover_steps=12, samples=100),
                 full=dict(d_steps=200, adv_steps=200, mask_steps=150, recover_steps=150, samples=300))
GAN_TRAINING = dict(adv_lr=1e-4, d_lr=1e-3, adv_weight=1.0, mle_weight=1.0, tau=1.0, prune_lr=5e-4)


def gan_steps() -> dict:
    """:data:`GAN_STEPS` of the current mode."""
    return GAN_STEPS["fast" if config.is_fast() else "full"]


@lru_cache(maxsize=2)
def _gan_data(fast: bool, max_len: int, min_words: int) -> SentenceData:
    return short_sentences(language_model_data().vocab, max_len=max_len, min_words=min_words, fast=fast)


def gan_sentence_data() -> SentenceData:
    """Lesson 05's short sentences, encoded with lesson 02's language-model vocabulary."""
    r = GAN_RECIPE
    return _gan_data(config.is_fast(), r["max_len"], r["min_words"])


def mle_generator(seed: int = 0, progress: bool = True):
    """Lesson 05's MLE generator: ``(model, data, meta)``; lesson 02's language model (cached or
    trained) fine-tuned on short sentences; cached after the first training."""
    lm, _, lm_meta = trained_language_model(seed=seed, progress=progress)
    data = gan_sentence_data()
    r = GAN_RECIPE

    def build():
        return build_language_model(len(data.vocab))

    def train(model):
        model.load_state_dict(lm.state_dict())
        model.to(config.get_device())
        config.set_seed(seed)
        steps = mle_fine_tune_steps(data, config.pick(fast=r["mle_epochs_fast"], full=r["mle_epochs_full"]),
                                    r["batch_size"])
        before = sentence_perplexity(model, data)["perplexity"]
        history = train_steps(model, data, steps, lr=r["mle_lr"], batch_size=r["batch_size"], seed=seed,
                              eval_every=max(1, steps // 10), progress=progress, desc="MLE")
        return {"history": vars(history), "steps": steps, "test_perplexity_before": before,
                "test": sentence_perplexity(model, data)}

    recipe = {**r, "seed": seed, "vocab": len(data.vocab), "lm": lm_meta["recipe"], "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model("sentence-generator", recipe, build, train)
    return model.to(config.get_device()).eval(), data, meta
