"""Which weights can be pruned, and how to reach them whether or not they carry a mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

Param = tuple[nn.Module, str]

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def is_pruned(module: nn.Module, name: str) -> bool:
    """True when ``module.<name>`` carries a mask (``<name>_orig`` parameter + ``<name>_mask`` buffer)."""
    return f"{name}_orig" in module._parameters and f"{name}_mask" in module._buffers


def check_not_parametrized(module: nn.Module, name: str) -> None:
    """Raise ValueError when ``module.<name>`` is computed by a parametrisation (a movement-pruning
    run in progress): its value is not a stored tensor until the run is finalized."""
    if parametrize.is_parametrized(module, name):
        raise ValueError(f"{type(module).__name__}.{name} is being movement-pruned (a parametrisation); "
                         "call MovementPruner.finalize() first")


def stored_param(module: nn.Module, name: str) -> nn.Parameter:
    """The trainable tensor behind ``module.<name>``: ``<name>_orig`` when pruned, else the parameter."""
    check_not_parametrized(module, name)
    return module._parameters[f"{name}_orig" if is_pruned(module, name) else name]


def effective_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The weight the module computes with: ``<name>_orig * <name>_mask`` when pruned (differentiable)."""
    if is_pruned(module, name):
        return module._parameters[f"{name}_orig"] * module._buffers[f"{name}_mask"]
    check_not_parametrized(module, name)
    return module._parameters[name]


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with every mask folded in: each ``x_orig`` + ``x_mask`` pair becomes one
    entry ``x = x_orig * x_mask`` (detached, where ``x_orig`` was); every other entry is unchanged."""
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("the model has parametrised weights (a movement-pruning run in progress); "
                         "call MovementPruner.finalize() first")
    state = model.state_dict()
    folded = {}
    for key, tensor in state.items():
        base = key[: -len("_orig")]  # "_orig" and "_mask" have the same length
        if key.endswith("_orig") and f"{base}_mask" in state:
            folded[base] = tensor * state[f"{base}_mask"]
        elif not (key.endswith("_mask") and f"{base}_orig" in state):
            folded[key] = tensor
    return folded


def _weight_names(module: nn.Module, include_embeddings: bool) -> list[str]:
    if isinstance(module, nn.Linear) or (include_embeddings and isinstance(module, _EMBEDDINGS)):
        return ["weight"]
    if isinstance(module, nn.RNNBase):  # weight_ih_l{k}, weight_hh_l{k} (+ weight_hr_l{k}), [_reverse]
        return [n for n in module._flat_weights_names if n.startswith("weight_")]
    return []


def _is_transformers_model(model: nn.Module) -> bool:
    return isinstance(getattr(model, "base_model", None), nn.Module) and hasattr(model, "config")


def transformer_blocks(model: nn.Module) -> nn.ModuleList | None:
    """The stack of blocks of a transformers model (BERT ``encoder.layer``, Llama ``layers``), else None."""
    if not _is_transformers_model(model):
        return None
    base = model.base_model
    for path in ("encoder.layer", "layers"):
        found = base
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, nn.ModuleList):
            return found
    return None


def default_params(model: nn.Module, include_embeddings: bool = False) -> list[Param]:
    """The weight matrices worth pruning: every ``nn.Linear.weight`` and every LSTM/GRU/RNN weight matrix.

    On a transformers model only the Linear layers inside its blocks (attention query/key/value/output,
    feed-forward intermediate/output; other architectures raise ValueError rather than guess): the embeddings, the pooler and the classifier or LM head stay
    dense. They are a small share of the compute, the embedding table is a lookup (zeros there save no
    work), and a small head carries every class decision, so zeros there cost accuracy first.

    Biases are never included; embedding tables only with ``include_embeddings=True``. Names are the
    plain attribute names (``"weight"``, ``"weight_hh_l0"``) whether or not the weight is already
    pruned. A weight shared by several modules (tied embeddings) is listed once, for its first owner.
    """
    blocks = transformer_blocks(model)
    if blocks is None and _is_transformers_model(model):
        raise ValueError(f"default_params finds the blocks of BERT-like (encoder.layer) and Llama-like (layers) "
                         f"transformers models, not of {type(model).__name__}: pass params= explicitly")
    if blocks is not None:
        modules = list(blocks.modules())
        if include_embeddings:
            modules += [m for m in model.modules() if isinstance(m, _EMBEDDINGS)]
    else:
        modules = list(model.modules())
    found, seen = [], set()
    for module in modules:
        for name in _weight_names(module, include_embeddings):
            tensor = stored_param(module, name)
            if id(tensor) not in seen:
                seen.add(id(tensor))
                found.append((module, name))
    return found


def pruned_params(model: nn.Module) -> list[Param]:
    """Every (module, name) of ``model`` that currently carries a pruning mask."""
    return [
        (module, hook._tensor_name)
        for module in model.modules()
        for hook in module._forward_pre_hooks.values()
        if isinstance(hook, torch_prune.BasePruningMethod)
    ]


def check_params(model: nn.Module, params: Sequence[Param] | None) -> list[Param]:
    """``params`` as a validated list, or :func:`default_params` when None.

    Raises ValueError unless every entry is a distinct ``(module, attribute)`` pair whose module belongs
    to ``model`` and has that parameter (plain or pruned), and the list is not empty.
    """
    if params is None:
        params = default_params(model)
    modules = {id(m) for m in model.modules()}
    checked = []
    for entry in params:
        pair = isinstance(entry, tuple) and len(entry) == 2
        if not (pair and isinstance(entry[0], nn.Module) and isinstance(entry[1], str)):
            raise ValueError(f"params entries must be (module, attribute name) pairs, got {entry!r}")
        module, name = entry
        check_not_parametrized(module, name)
        if id(module) not in modules:
            raise ValueError(f"module {type(module).__name__} of params entry {name!r} is not part of the model")
        if module._parameters.get(name) is None and not is_pruned(module, name):
            raise ValueError(f"{type(module).__name__} has no parameter {name!r}")
        if any(m is module and n == name for m, n in checked):
            raise ValueError(f"params lists {type(module).__name__}.{name} twice")
        checked.append((module, name))
    if not checked:
        raise ValueError("params is empty: select at least one (module, attribute name) pair to prune")
    return checked


def param_name(model: nn.Module, module: nn.Module, name: str) -> str:
    """Dotted name of ``module.<name>`` inside ``model``, e.g. ``"rnn.weight_hh_l0"`` (never ``_orig``)."""
    for prefix, candidate in model.named_modules():
        if candidate is module:
            return f"{prefix}.{name}" if prefix else name
    raise ValueError(f"module {type(module).__name__} is not part of the model")
