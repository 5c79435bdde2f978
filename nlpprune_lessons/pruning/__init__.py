"""Unstructured pruning (lesson 03, 07): importance scores, masks on top of ``torch.nn.utils.prune``,
gradual schedules, L1 regularisation, lottery-ticket rewinding and sparsity reports."""

from .importance import magnitude_scores, random_scores, taylor_scores
from .masks import METHODS, SCOPES, l1_penalty, make_permanent, prune
from .params import check_params, default_params, effective_weight, is_pruned, param_name, pruned_params
from .report import SparsityReport, sparsity_report
from .schedule import GradualPruner, cubic_sparsity, rewind, weights_snapshot

__all__ = [
    "METHODS",
    "SCOPES",
    "GradualPruner",
    "SparsityReport",
    "check_params",
    "cubic_sparsity",
    "default_params",
    "effective_weight",
    "is_pruned",
    "l1_penalty",
    "magnitude_scores",
    "make_permanent",
    "param_name",
    "prune",
    "pruned_params",
    "random_scores",
    "rewind",
    "sparsity_report",
    "taylor_scores",
    "weights_snapshot",
]
