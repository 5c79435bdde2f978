"""Lesson 08's settings: the slimming plan, the recovery recipe, the scoring and latency budgets by
mode, and the vocabulary cut of the fine-tuned MiniLM."""

from __future__ import annotations

from torch import nn
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.structured.transformer import remove_vocabulary, vocabulary_map

#: Lesson 08's runs by mode: the training batches that importance scores read, and the latency timing
#: (alternating rounds x timed repeats after warm-up). Training data and steps are lesson 07's
#: (:func:`sparse_loaders`), the recovery recipe is ``structured.slimming.RECOVERY``.
SLIM_SETTINGS = dict(
    fast=dict(score_batches=4, latency=dict(rounds=1, repeats=3, warmup=1)),
    full=dict(score_batches=16, latency=dict(rounds=3, repeats=10, warmup=2)),
)


def slim_settings() -> dict:
    """:data:`SLIM_SETTINGS` of the current mode."""
    return SLIM_SETTINGS["fast" if config.is_fast() else "full"]
#: What each step removes: ``heads`` a fraction of the model's heads (ranked across layers by Michel
#: et al.'s score, normalised per layer; every layer keeps one), ``ffn`` a fraction of every layer's
#: FFN neurons (Taylor score), ``layers`` a number of whole layers (the ones whose removal raises the
#: loss least). The default plan is the lesson's calibration point: 6 of 12 heads per layer on average,
#: half of the FFN, 2 of 6 layers (lesson 08 and ``benchmarks/bert_structured.py`` measure its speedup).
SLIM_PLAN = (("heads", 0.5), ("ffn", 0.5), ("layers", 2))
#: Recovery after each step: AdamW with 10% warm-up and linear decay, the embeddings frozen,
#: distillation from the dense teacher (temperature 2, half KD, half cross-entropy). lr 3e-4: better
#: on validation than 1e-4 in FAST mode; the FULL reference results (results/reference/bert_structured.json)
#: use it as their one candidate (not searched).
RECOVERY = dict(lr=3e-4, epochs=1, kd_temperature=2.0, kd_weight=0.5, hidden_weight=1.0, warmup_ratio=0.1)


def vocabulary_pruned(model: nn.Module, data, seed: int = 0) -> tuple[nn.Module, dict[str, DataLoader]]:
    """``model`` with its word embeddings cut to the WordPiece ids that occur in the training reviews
    of ``data`` (an :class:`~nlpprune_lessons.lessons.l06_bert.EncoderData`) plus the special tokens
    (:func:`~nlpprune_lessons.structured.transformer.remove_vocabulary`), and loaders of every split
    with the ids translated (an id never seen in training becomes ``[UNK]``)."""
    from nlpprune_lessons.lessons.l06_bert import ENCODER_RECIPE
    from nlpprune_lessons.models.transformers import encoder_loader

    tokenizer = data.tokenizer
    keep = {i for row in data.ids["train"] for i in row} | set(tokenizer.all_special_ids)
    slim = remove_vocabulary(model, keep, tokenizer.unk_token_id)
    mapping = vocabulary_map(slim).tolist()
    loaders = {split: encoder_loader([[mapping[i] for i in row] for row in ids], data.labels[split],
                                     pad_id=slim.config.pad_token_id, shuffle=split == "train", seed=seed,
                                     batch_size=ENCODER_RECIPE["batch_size" if split == "train" else "eval_batch_size"])
               for split, ids in data.ids.items()}
    return slim, loaders
