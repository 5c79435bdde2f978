"""Lesson 07's settings: the pruning runs' steps and sparsities by mode, the learning rates chosen on
validation by ``benchmarks/bert_sparse.py``, the loaders, and the reference numbers of Sanh et al. (2020)."""

from __future__ import annotations

from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.data.splits import stratified_subsample
from nlpprune_lessons.lessons.l06_bert import ENCODER_RECIPE, EncoderData
from nlpprune_lessons.models.transformers import encoder_loader

#: Lesson 07's pruning runs by mode: encoder sparsities of the method comparison and of the one-shot
#: study without fine-tuning, the sparsities that also get a distilled run, fine-tuning epochs per run, the training reviews the runs read (FAST:
#: 320, i.e. 10 steps, so that the runs fit in the notebook's time budget on 2 CPU cores (each run
#: records its seconds); so few steps only show the method) and the learning rates of the "learning rate
#: after pruning" study.
SPARSE_SETTINGS = dict(
    fast=dict(sparsities=[0.9], oneshot_sparsities=[0.5, 0.9], kd_sparsities=[0.9], epochs=1, train_examples=320,
              lr_study=[5e-5, 1e-3]),
    full=dict(sparsities=[0.5, 0.8, 0.9, 0.95], oneshot_sparsities=[0.5, 0.8, 0.9, 0.95], kd_sparsities=[0.9, 0.95],
              epochs=1, train_examples=None, lr_study=[5e-5, 1e-4, 3e-4, 1e-3]),
)
#: Learning rate of each method at each sparsity after pruning, as chosen on validation by
#: benchmarks/bert_sparse.py (candidates 3e-4 and 1e-3; results/reference/bert_sparse.json, embeddings
#: trained): a light cut prefers the small step, a heavy cut needs the large one. The 80% rates come
#: from the frozen-embedding run (results/reference/bert_sparse_frozen_embeddings.json; the default
#: set does not run 80%). Movement pruning ends at the majority class at every rate tried there, so it
#: keeps 1e-4 (``LR_CANDIDATES`` in the benchmark).
SPARSE_LRS = {
    ("one-shot", 0.5): 3e-4, ("one-shot", 0.8): 1e-3, ("one-shot", 0.9): 1e-3, ("one-shot", 0.95): 1e-3,
    ("gradual", 0.5): 3e-4, ("gradual", 0.8): 1e-3, ("gradual", 0.9): 1e-3, ("gradual", 0.95): 1e-3,
    "movement": 1e-4,
}


def sparse_settings() -> dict:
    """:data:`SPARSE_SETTINGS` of the current mode."""
    return SPARSE_SETTINGS["fast" if config.is_fast() else "full"]


def sparse_loaders(data: EncoderData, seed: int = 0) -> dict[str, DataLoader]:
    """Loaders for lessons 07-08's pruning runs: the training loader (a seeded, stratified subset of
    ``train_examples`` reviews in FAST mode) and the validation and test loaders of ``data``."""
    n = sparse_settings()["train_examples"]
    if n is None or n >= len(data.labels["train"]):
        return dict(data.loaders)
    keep = stratified_subsample(data.labels["train"], n / len(data.labels["train"]), seed)
    train = encoder_loader([data.ids["train"][i] for i in keep], [data.labels["train"][i] for i in keep],
                           pad_id=data.tokenizer.pad_token_id, batch_size=ENCODER_RECIPE["batch_size"], shuffle=True,
                           seed=seed)
    return {**data.loaders, "train": train}


#: Sanh et al. (2020), Table 2 (fine-pruning with distillation, teacher = BERT-base fine-tuned): MNLI
#: matched dev accuracy. A different model (BERT-base, 85M encoder weights), task (3-way entailment)
#: and budget (several epochs on 393k pairs): reference points, not targets for MiniLM on RT.
MOVEMENT_PAPER_MNLI = {"dense": 84.5, "magnitude": {0.90: 78.3, 0.97: 69.4}, "movement": {0.90: 80.1, 0.97: 76.5},
                       "soft movement": {0.90: 81.2, 0.97: 79.5}}
