"""Unstructured pruning (lesson 03, 07): importance scores, masks on top of ``torch.nn.utils.prune``,
gradual schedules, movement pruning, L1 regularisation, lottery-ticket rewinding, sparsity reports
and compact sparse storage (bitmask + values in safetensors). Pruning during fine-tuning of lesson 07
is in :mod:`nlpprune_lessons.pruning.finetune`."""

from .importance import magnitude_scores, random_scores, taylor_scores
from .masks import METHODS, SCOPES, l1_penalty, make_permanent, prune, topk_mask
from .params import (
    check_params,
    default_params,
    effective_state_dict,
    effective_weight,
    is_pruned,
    param_name,
    pruned_params,
    transformer_blocks,
)
from .movement import MovementPruner
from .report import SparsityReport, block_sparsity, sparsity_report
from .schedule import GradualPruner, cubic_sparsity, rewind, weights_snapshot
from .storage import load_sparse, save_sparse, sparse_storage_report

__all__ = [
    "METHODS",
    "SCOPES",
    "GradualPruner",
    "MovementPruner",
    "SparsityReport",
    "block_sparsity",
    "check_params",
    "cubic_sparsity",
    "default_params",
    "effective_state_dict",
    "effective_weight",
    "is_pruned",
    "l1_penalty",
    "load_sparse",
    "magnitude_scores",
    "make_permanent",
    "param_name",
    "prune",
    "pruned_params",
    "random_scores",
    "rewind",
    "save_sparse",
    "sparse_storage_report",
    "sparsity_report",
    "taylor_scores",
    "topk_mask",
    "transformer_blocks",
    "weights_snapshot",
]
