"""The standard data pipeline and fine-tuned MiniLM of lessons 06-08 (defined once, cached).

``fine_tuned_encoder()`` returns lesson 06's sentiment classifier; lessons 07 and 08 call it and get
the cached weights, or train them with the same seed if the cache is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from torch import nn
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checkpoints import cached_model
from nlpprune_lessons.data import SPLITS, load_rotten_tomatoes
from nlpprune_lessons.data.splits import stratified_subsample
from nlpprune_lessons.evaluate import evaluate_classifier
from nlpprune_lessons.models.transformers import encode_for_encoder, encoder_loader, load_encoder_classifier
from nlpprune_lessons.training.loop import train_classifier

#: Bump when a change to the pipeline or the training code changes what the recipe trains.
PIPELINE_VERSION = 1

#: Fine-tuning MiniLM on Rotten Tomatoes (FULL): the usual BERT recipe (AdamW, 10% linear warm-up,
#: then linear decay) at lr 5e-5, batch 32, 2 epochs (lesson 06 measures the accuracy it reaches).
ENCODER_RECIPE = dict(max_length=64, batch_size=32, eval_batch_size=64, lr=5e-5, warmup_ratio=0.1,
                      weight_decay=0.01, max_grad_norm=1.0, epochs=2, train_examples=None)
#: What FAST mode changes: 1 epoch on 1,280 training reviews. In so few steps the FULL settings leave
#: the model at the majority class, so FAST takes
#: more, smaller steps at a higher rate (80 steps of 16 at 1e-4). Reviews are cut at 40
#: WordPiece tokens (about 10% are longer): a training step's activations grow with the longest row,
#: and lesson 07 must stay within Binder's 2 GB.
ENCODER_FAST = dict(max_length=40, batch_size=16, lr=1e-4, epochs=1, train_examples=1280)


def encoder_settings() -> dict:
    """:data:`ENCODER_RECIPE`, with :data:`ENCODER_FAST` applied in FAST mode."""
    return ENCODER_RECIPE | (ENCODER_FAST if config.is_fast() else {})


@dataclass
class EncoderData:
    """Rotten Tomatoes as WordPiece ids, with texts, labels and bucketed loaders per split."""

    tokenizer: object
    texts: dict[str, list[str]]
    ids: dict[str, list[list[int]]]
    labels: dict[str, list[int]]
    loaders: dict[str, DataLoader]


@lru_cache(maxsize=2)
def _encoder_data(fast: bool, seed: int, max_length: int, batch_size: int, eval_batch_size: int,
                  train_examples: int | None) -> EncoderData:
    """``batch_size`` applies to the training loader; evaluation uses ``eval_batch_size``."""
    from nlpprune_lessons.text.tokenize import load_wordpiece_tokenizer

    tokenizer = load_wordpiece_tokenizer()
    rt = load_rotten_tomatoes(seed=seed, fast=fast)
    if train_examples is not None and len(rt["train"]) > train_examples:
        keep = stratified_subsample(rt["train"].label, train_examples / len(rt["train"]), seed)
        rt["train"] = rt["train"].iloc[keep].reset_index(drop=True)
    texts = {s: rt[s].text.tolist() for s in SPLITS}
    labels = {s: rt[s].label.tolist() for s in SPLITS}
    ids = {s: encode_for_encoder(tokenizer, texts[s], max_length) for s in SPLITS}
    loaders = {s: encoder_loader(ids[s], labels[s], pad_id=tokenizer.pad_token_id,
                                 batch_size=batch_size if s == "train" else eval_batch_size,
                                 shuffle=s == "train", seed=seed) for s in SPLITS}
    return EncoderData(tokenizer, texts, ids, labels, loaders)


def encoder_data(seed: int = 0) -> EncoderData:
    """Lessons 06-08's data (FAST or FULL by the current mode)."""
    r = encoder_settings()
    return _encoder_data(config.is_fast(), seed, r["max_length"], r["batch_size"], r["eval_batch_size"],
                         r["train_examples"])


def fine_tune_encoder(model: nn.Module, data: EncoderData, *, epochs: int | None = None, progress: bool = True,
                      **overrides):
    """Fine-tune with :func:`encoder_settings` (``overrides`` go to :func:`~nlpprune_lessons.training.loop.train_classifier`)."""
    r = encoder_settings()
    kwargs = dict(lr=r["lr"], weight_decay=r["weight_decay"], max_grad_norm=r["max_grad_norm"], schedule="linear",
                  warmup_ratio=r["warmup_ratio"]) | overrides
    epochs = r["epochs"] if epochs is None else epochs
    return train_classifier(model, data.loaders["train"], data.loaders["validation"], epochs=epochs,
                            progress=progress, **kwargs)


def fine_tuned_encoder(seed: int = 0, progress: bool = True):
    """Lesson 06's fine-tuned MiniLM sentiment classifier: ``(model, data, meta)`` in eval mode;
    cached (safetensors) after the first training."""
    data = encoder_data(seed)

    def build():
        config.set_seed(seed)  # the new classification head's initialisation
        return load_encoder_classifier(num_labels=2)[0]

    def train(model):
        history = fine_tune_encoder(model, data, progress=progress)
        return {"history": vars(history), "validation": evaluate_classifier(model, data.loaders["validation"]),
                "test": evaluate_classifier(model, data.loaders["test"])}

    recipe = {**encoder_settings(), "seed": seed, "train_examples": len(data.labels["train"]),
              "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model("minilm-rt", recipe, build, train)
    return model.to(config.get_device()).eval(), data, meta
