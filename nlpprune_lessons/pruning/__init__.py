"""Unstructured pruning (lesson 03, 07): importance scores, masks on top of ``torch.nn.utils.prune``,
gradual schedules, movement pruning, L1 regularisation, lottery-ticket rewinding, sparsity reports
and compact sparse storage (bitmask + values in safetensors); one-shot pruning of a causal LM with
calibration data (magnitude, Wanda, N:M, the OBS update under a fixed mask, SparseGPT) for lesson 09.
Pruning during fine-tuning of lesson 07 is in :mod:`nlpprune_lessons.pruning.finetune`."""

from __future__ import annotations

from nlpprune_lessons.pruning.calibrated import (
    PRUNE_METHODS,
    TIE_BREAKS,
    InputStats,
    inverse_hessian_factor,
    layer_mask,
    obs_column_update,
    parse_sparsity,
    prune_causal_lm,
    sparsegpt_prune,
    sparsegpt_update,
    tie_broken_scores,
)
from nlpprune_lessons.pruning.importance import (
    magnitude_scores,
    movement_scores,
    random_scores,
    taylor_scores,
    wanda_scores,
)
from nlpprune_lessons.pruning.masks import (
    METHODS,
    SCOPES,
    install_mask,
    l1_penalty,
    make_permanent,
    nm_mask,
    prune,
    row_mask,
    topk_mask,
)
from nlpprune_lessons.pruning.movement import MovementPruner, SoftMovementPruner, straight_through
from nlpprune_lessons.pruning.params import (
    check_params,
    default_params,
    effective_state_dict,
    effective_weight,
    is_pruned,
    param_name,
    pruned_params,
    transformer_blocks,
)
from nlpprune_lessons.pruning.report import SparsityReport, block_sparsity, sparsity_report, zero_fraction
from nlpprune_lessons.pruning.schedule import GradualPruner, cubic_sparsity, rewind, weights_snapshot
from nlpprune_lessons.pruning.storage import (
    bitmask_nbytes,
    decode_bitmask,
    encode_bitmask,
    load_sparse,
    save_sparse,
    sparse_storage_report,
)

__all__ = [
    "GradualPruner",
    "InputStats",
    "METHODS",
    "MovementPruner",
    "PRUNE_METHODS",
    "SCOPES",
    "SoftMovementPruner",
    "TIE_BREAKS",
    "SparsityReport",
    "bitmask_nbytes",
    "block_sparsity",
    "check_params",
    "cubic_sparsity",
    "decode_bitmask",
    "default_params",
    "effective_state_dict",
    "effective_weight",
    "encode_bitmask",
    "install_mask",
    "inverse_hessian_factor",
    "is_pruned",
    "l1_penalty",
    "layer_mask",
    "load_sparse",
    "magnitude_scores",
    "make_permanent",
    "movement_scores",
    "nm_mask",
    "obs_column_update",
    "param_name",
    "parse_sparsity",
    "prune",
    "prune_causal_lm",
    "pruned_params",
    "random_scores",
    "rewind",
    "row_mask",
    "save_sparse",
    "sparse_storage_report",
    "sparsegpt_prune",
    "sparsegpt_update",
    "sparsity_report",
    "straight_through",
    "taylor_scores",
    "tie_broken_scores",
    "topk_mask",
    "transformer_blocks",
    "wanda_scores",
    "zero_fraction",
    "weights_snapshot",
]
