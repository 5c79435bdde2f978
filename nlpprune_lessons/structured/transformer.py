"""Structured pruning of BERT-family encoders (lesson 08): score and physically remove attention
heads, FFN neurons and whole layers, so the model gets smaller in shape and faster; save and reload
the slim model.

Written for transformers v5 (``BertModel``, ``BertForSequenceClassification``, sdpa or eager
attention). v5 removed ``head_mask`` and ``PreTrainedModel.remove_heads``, so head gates and head
removal are our own code. What makes it work: ``BertSelfAttention`` reshapes its projections with
``view(..., -1, head_size)``, so a layer with fewer query/key/value rows simply has fewer heads; we also
update ``num_attention_heads`` and ``all_head_size`` so the module describes itself truthfully.

Removal functions return a new model and leave their input untouched (as in lesson 04), so each stage
of a pruning run can be kept and measured. Indices are those of the model passed in: after a removal,
the remaining heads/neurons/layers are renumbered from 0.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from nlpprune_lessons.core.batch import to_device
from nlpprune_lessons.core.checkpoints import load_checkpoint, save_checkpoint
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.losses import classification_loss
from nlpprune_lessons.pruning.params import pruned_params
from nlpprune_lessons.structured.indices import as_index, check_indices, kept

#: Model classes this module handles, and the only ones :func:`load_bert_slim` rebuilds (never remote code).
SLIM_CLASSES = ("BertModel", "BertForSequenceClassification")
FFN_CRITERIA = ("taylor", "l2", "activation")
SLIM_FORMAT = "nlpprune-slim-bert"
SLIM_VERSION = 1

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


# --------------------------------------------------------------------------- model access
def _check_model(model) -> None:
    if not isinstance(model, nn.Module) or type(model).__name__ not in SLIM_CLASSES:
        raise TypeError(f"model must be one of {SLIM_CLASSES} (transformers), got {type(model).__name__}")
    if pruned_params(model):
        raise ValueError("model carries unstructured pruning masks; call make_permanent on it first")


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    base = model if type(model).__name__ == "BertModel" else model.bert
    return base.encoder.layer


def layer_shapes(model: nn.Module) -> list[dict[str, int]]:
    """Per encoder layer: ``heads``, ``head_size`` and ``intermediate`` (FFN neurons)."""
    _check_model(model)
    return [{"heads": layer.attention.self.num_attention_heads,
             "head_size": layer.attention.self.attention_head_size,
             "intermediate": layer.intermediate.dense.out_features} for layer in _encoder_layers(model)]


def _check_data(data) -> None:
    if isinstance(data, (dict, str)) or not isinstance(data, Iterable):
        raise TypeError("data must be an iterable of batches (e.g. a DataLoader), not a single batch")


# --------------------------------------------------------------------------- gates and scores
@contextmanager
def head_gates(model: nn.Module, requires_grad: bool = True) -> Iterator[list[torch.Tensor]]:
    """Attach one gate per attention head (Michel et al., 2019): inside the block, each layer's
    self-attention output (the heads' context vectors, before the output projection) is multiplied
    head by head by ``gates[layer]``, a tensor of ones that a caller can change or differentiate.
    The hooks are removed on exit."""
    _check_model(model)
    device = next(model.parameters()).device
    gates, handles = [], []
    for layer in _encoder_layers(model):
        attention = layer.attention.self
        gate = torch.ones(attention.num_attention_heads, device=device, requires_grad=requires_grad)

        def hook(module, args, output, gate=gate):
            context, weights = output
            shape = context.shape
            gated = context.view(*shape[:-1], gate.numel(), -1) * gate[:, None].to(context.dtype)
            return gated.view(shape), weights

        gates.append(gate)
        handles.append(attention.register_forward_hook(hook))
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _ffn_gates(model: nn.Module, record_mask: bool = False) -> Iterator[tuple[list[torch.Tensor], list]]:
    """Gates of ones on every FFN neuron (the intermediate activations) and, per layer, the list of
    ``(activation, mask)`` pairs seen when ``record_mask`` is on."""
    device = next(model.parameters()).device
    gates, seen, handles = [], [], []
    for layer in _encoder_layers(model):
        gate = torch.ones(layer.intermediate.dense.out_features, device=device, requires_grad=True)
        acts: list = []

        def hook(module, args, output, gate=gate, acts=acts):
            if record_mask:
                acts.append(output.detach())
            return output * gate.to(output.dtype)

        gates.append(gate)
        seen.append(acts)
        handles.append(layer.intermediate.register_forward_hook(hook))
    try:
        yield gates, seen
    finally:
        for handle in handles:
            handle.remove()


def _gate_gradients(model: nn.Module, data, loss_fn: LossFn | None, gates_cm, on_batch=None) -> list[torch.Tensor]:
    """Sum over batches of |dL/dgate| for the gates of ``gates_cm`` (model in eval mode, no parameter
    gradients). ``on_batch(batch, extras)`` runs after each batch's forward pass."""
    _check_data(data)
    loss_fn = loss_fn or classification_loss
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals, batches = None, 0
    try:
        with torch.enable_grad(), gates_cm as handles:
            gates = handles[0] if isinstance(handles, tuple) else handles
            for batch in data:
                batch = to_device(batch, device)
                loss = loss_fn(model, batch)
                grads = torch.autograd.grad(loss, gates)
                if on_batch is not None:
                    on_batch(batch, handles)
                grads = [g.detach().abs() for g in grads]
                totals = grads if totals is None else [t + g for t, g in zip(totals, grads)]
                batches += 1
    finally:
        model.train(was_training)
    if not batches:
        raise ValueError("data yielded no batches")
    return [t.cpu() for t in totals]


def _padded(scores: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer score vectors as one ``[layers, max]`` tensor, NaN where a layer has fewer entries."""
    out = torch.full((len(scores), max(s.numel() for s in scores)), float("nan"))
    for row, s in enumerate(scores):
        out[row, : s.numel()] = s
    return out


def head_importance(model: nn.Module, data: Iterable[Batch], loss_fn: LossFn | None = None, *,
                    normalize: bool = False) -> torch.Tensor:
    """Michel et al. (2019) head importance ``[layers, heads]``: |dL/d gate_h| summed over the batches
    of ``data`` (loss: ``loss_fn(model, batch)``, default cross-entropy of the classifier), in eval
    mode. A layer with fewer heads than the widest is padded with NaN. ``normalize`` divides each
    layer's scores by their L2 norm, as the paper's code does before ranking heads across layers."""
    _check_model(model)
    scores = _gate_gradients(model, data, loss_fn, head_gates(model))
    if normalize:
        scores = [s / s.norm().clamp_min(1e-20) for s in scores]
    return _padded(scores)


def ffn_neuron_importance(model: nn.Module, criterion: str = "taylor", data: Iterable[Batch] | None = None,
                          loss_fn: LossFn | None = None) -> list[torch.Tensor]:
    """One score per FFN (intermediate) neuron, per layer; higher means keep. (The same arguments, in
    the same order, as :func:`~nlpprune_lessons.structured.rnn.hidden_unit_importance`.)

    - ``"taylor"``: |dL/d gate_j| summed over batches, with a gate of ones on the neuron's activation:
      the first-order estimate of the loss change when the neuron is removed (as for heads);
    - ``"l2"``: L2 norm of the neuron's weights (its intermediate row and its output column together),
      no data needed;
    - ``"activation"``: mean |activation| (after GELU) over the real, non-padding tokens of ``data``.
    """
    _check_model(model)
    if criterion not in FFN_CRITERIA:
        raise ValueError(f"criterion must be one of {FFN_CRITERIA}, got {criterion!r}")
    layers = _encoder_layers(model)
    if criterion == "l2":
        return [(layer.intermediate.dense.weight.detach().pow(2).sum(1)
                 + layer.output.dense.weight.detach().pow(2).sum(0)).sqrt().cpu() for layer in layers]
    if data is None:
        raise ValueError(f"criterion {criterion!r} needs data (batches with attention_mask)")
    if criterion == "taylor":
        return _gate_gradients(model, data, loss_fn, _ffn_gates(model))
    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    tokens = [0]

    def accumulate(batch, handles):
        _, seen = handles
        mask = batch["attention_mask"].bool()
        for total, acts in zip(sums, seen):
            total += acts.pop()[mask].abs().sum(0).cpu()
        tokens[0] += int(mask.sum())

    _gate_gradients(model, data, loss_fn, _ffn_gates(model, record_mask=True), on_batch=accumulate)
    return [s / tokens[0] for s in sums]


@torch.no_grad()
def layer_importance(model: nn.Module, data: Iterable[Batch], loss_fn: LossFn | None = None) -> torch.Tensor:
    """Per encoder layer: how much the mean loss over ``data`` rises when that layer alone is dropped
    (measured exactly, one pass per layer; higher means keep)."""
    _check_model(model)
    _check_data(data)
    loss_fn = loss_fn or classification_loss
    batches = list(data)

    if not batches:
        raise ValueError("data yielded no batches")

    def mean_loss(m: nn.Module) -> float:
        device = next(m.parameters()).device
        m.eval()
        return sum(loss_fn(m, to_device(b, device)).item() for b in batches) / len(batches)

    was_training = model.training
    try:
        base = mean_loss(model)
    finally:
        model.train(was_training)
    return torch.tensor([mean_loss(remove_layers(model, [i])) - base for i in range(len(_encoder_layers(model)))])


# --------------------------------------------------------------------------- choosing what to remove
# --------------------------------------------------------------------------- removal
def _linear(weight: torch.Tensor, bias: torch.Tensor | None, like: nn.Linear) -> nn.Linear:
    """A Linear holding copies of ``weight``/``bias`` (trainable as ``like`` was)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight.detach().clone(), requires_grad=like.weight.requires_grad)
    if bias is not None:
        linear.bias = nn.Parameter(bias.detach().clone(), requires_grad=like.bias.requires_grad)
    return linear


def _rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    index = index.to(linear.weight.device)
    bias = None if linear.bias is None else linear.bias[index]
    return _linear(linear.weight[index], bias, linear)


def _columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    return _linear(linear.weight[:, index.to(linear.weight.device)], linear.bias, linear)


def _check_plan(plan, sizes: list[int], what: str, whole: str) -> dict[int, list[int]]:
    """``plan`` = {layer: indices} validated against per-layer ``sizes``."""
    if not isinstance(plan, Mapping):
        raise TypeError(f"{whole} must be a dict {{layer: [indices]}}, got {type(plan).__name__}")
    checked = {}
    for layer, indices in plan.items():
        layer = as_index(layer, len(sizes), "layer index")
        checked[layer] = check_indices(indices, sizes[layer], f"layer {layer} {what}", f"{whole} of layer {layer}")
    return checked


def remove_heads(model: nn.Module, heads: Mapping[int, Iterable[int]]) -> nn.Module:
    """A copy of ``model`` without the attention heads ``heads`` = {layer: head indices}.

    Slices the query/key/value output rows and the attention-output dense input columns of each
    removed head and updates the layer's ``num_attention_heads``/``all_head_size``. A layer keeps at
    least one head: removing all of them raises ValueError (to remove a layer, use
    :func:`remove_layers`). Duplicate or out-of-range indices raise ValueError.
    """
    _check_model(model)
    shapes = layer_shapes(model)
    plan = _check_plan(heads, [s["heads"] for s in shapes], "head", "heads")
    slim = copy.deepcopy(model)
    for index, removed in plan.items():
        layer = _encoder_layers(slim)[index]
        attention, size = layer.attention.self, shapes[index]["head_size"]
        keep_heads = kept(shapes[index]["heads"], removed)
        cols = (keep_heads[:, None] * size + torch.arange(size)).reshape(-1)
        attention.query, attention.key, attention.value = (
            _rows(attention.query, cols), _rows(attention.key, cols), _rows(attention.value, cols))
        layer.attention.output.dense = _columns(layer.attention.output.dense, cols)
        attention.num_attention_heads = len(keep_heads)
        attention.all_head_size = len(keep_heads) * size
    return slim


def remove_ffn_neurons(model: nn.Module, neurons: Mapping[int, Iterable[int]]) -> nn.Module:
    """A copy of ``model`` without the FFN neurons ``neurons`` = {layer: neuron indices}: rows of
    ``intermediate.dense`` and columns of ``output.dense``. A layer keeps at least one neuron."""
    _check_model(model)
    plan = _check_plan(neurons, [s["intermediate"] for s in layer_shapes(model)], "neuron", "FFN neurons")
    slim = copy.deepcopy(model)
    for index, removed in plan.items():
        layer = _encoder_layers(slim)[index]
        keep = kept(layer.intermediate.dense.out_features, removed)
        layer.intermediate.dense = _rows(layer.intermediate.dense, keep)
        layer.output.dense = _columns(layer.output.dense, keep)
    return slim


def remove_layers(model: nn.Module, layers: Iterable[int]) -> nn.Module:
    """A copy of ``model`` without the encoder layers ``layers``; ``config.num_hidden_layers`` and each
    remaining layer's ``layer_idx`` follow. At least one layer stays."""
    _check_model(model)
    count = len(_encoder_layers(model))
    removed = set(check_indices(layers, count, "layer", "encoder layers"))
    slim = copy.deepcopy(model)
    base = slim if type(slim).__name__ == "BertModel" else slim.bert
    base.encoder.layer = nn.ModuleList(layer for i, layer in enumerate(base.encoder.layer) if i not in removed)
    for position, layer in enumerate(base.encoder.layer):
        layer.attention.self.layer_idx = position
    slim.config.num_hidden_layers = len(base.encoder.layer)
    return slim


VOCABULARY_KEY = "nlpprune_kept_token_ids"  # config attribute: the original ids of the kept embedding rows


def remove_vocabulary(model: nn.Module, keep_ids: Iterable[int], unk_id: int) -> nn.Module:
    """A copy of ``model`` whose word-embedding table keeps only the rows of ``keep_ids`` (plus
    ``unk_id`` and the padding id), in ascending id order. Input ids must then be translated with
    :func:`vocabulary_map`; a removed id becomes ``unk_id``. The kept ids are recorded in the config
    (``nlpprune_kept_token_ids``), so :func:`save_bert_slim`/:func:`load_bert_slim` carry them. Pruning the
    vocabulary of an already pruned one is refused (its ids are no longer the tokenizer's)."""
    _check_model(model)
    if getattr(model.config, VOCABULARY_KEY, None) is not None:
        raise ValueError("model's vocabulary is already pruned; prune the original model's instead")
    vocab = model.config.vocab_size
    unk_id = as_index(unk_id, vocab, "unk_id")
    if isinstance(keep_ids, (str, bytes)) or not isinstance(keep_ids, Iterable):
        raise ValueError(f"keep_ids must be a sequence of token ids, got {keep_ids!r}")
    special = {unk_id} | ({model.config.pad_token_id} if model.config.pad_token_id is not None else set())
    keep = sorted({as_index(i, vocab, "token id") for i in keep_ids} | special)
    slim = copy.deepcopy(model)
    base = slim if type(slim).__name__ == "BertModel" else slim.bert
    old = base.embeddings.word_embeddings
    index = torch.tensor(keep, device=old.weight.device)
    position = {old_id: new_id for new_id, old_id in enumerate(keep)}
    table = nn.Embedding(len(keep), old.embedding_dim, padding_idx=None if old.padding_idx is None
                         else position[old.padding_idx], device="meta")
    table.weight = nn.Parameter(old.weight.detach()[index].clone(), requires_grad=old.weight.requires_grad)
    base.embeddings.word_embeddings = table
    slim.config.vocab_size = len(keep)
    if slim.config.pad_token_id is not None:
        slim.config.pad_token_id = position[slim.config.pad_token_id]
    setattr(slim.config, VOCABULARY_KEY, keep)
    setattr(slim.config, "nlpprune_unk_id", position[unk_id])
    setattr(slim.config, "nlpprune_original_vocab_size", vocab)
    return slim


def vocabulary_map(model: nn.Module) -> torch.Tensor | None:
    """For a model from :func:`remove_vocabulary`: a LongTensor ``[original vocab]`` giving each
    tokenizer id its row in the pruned table (removed ids -> the unknown token); ``None`` otherwise.
    Translate inputs with ``vocabulary_map(model)[input_ids]``."""
    keep = getattr(model.config, VOCABULARY_KEY, None)
    if keep is None:
        return None
    mapping = torch.full((model.config.nlpprune_original_vocab_size,), model.config.nlpprune_unk_id, dtype=torch.long)
    mapping[torch.tensor(keep)] = torch.arange(len(keep))
    return mapping


# --------------------------------------------------------------------------- size and cost
def encoder_flops(model: nn.Module, seq_len: int) -> int:
    """Floating-point operations (2 per multiply-add) of the encoder layers for one sequence of
    ``seq_len`` tokens: query/key/value and output projections, attention scores and weighted sum, and
    the FFN. Embeddings, layer norms, softmax and the classifier are left out (a few percent)."""
    shapes = layer_shapes(model)
    check_positive_int(seq_len, "seq_len")
    hidden, t = model.config.hidden_size, seq_len
    macs = 0
    for s in shapes:
        width = s["heads"] * s["head_size"]
        macs += 4 * t * hidden * width + 2 * t * t * width + 2 * t * hidden * s["intermediate"]
    return 2 * macs


def slim_summary(model: nn.Module) -> pd.DataFrame:
    """One row per encoder layer: heads, FFN neurons, parameters; then a ``total`` row with the whole
    model's parameters (embeddings included)."""
    rows = []
    for index, (shape, layer) in enumerate(zip(layer_shapes(model), _encoder_layers(model))):
        rows.append({"layer": str(index), "heads": shape["heads"], "ffn_neurons": shape["intermediate"],
                     "parameters": sum(p.numel() for p in layer.parameters())})
    total = {"layer": "total", "heads": sum(r["heads"] for r in rows), "ffn_neurons": sum(r["ffn_neurons"] for r in rows),
             "parameters": sum(p.numel() for p in model.parameters())}
    return pd.DataFrame(rows + [total]).set_index("layer")


# --------------------------------------------------------------------------- saving
def save_bert_slim(model: nn.Module, path: str | Path) -> Path:
    """Write the weights (safetensors) and, in its header metadata, the model class, the config and
    every layer's shape (:func:`layer_shapes`), enough for :func:`load_bert_slim` to rebuild it. Returns the path."""
    _check_model(model)
    meta = {"format": SLIM_FORMAT, "version": SLIM_VERSION, "model_class": type(model).__name__,
            "config": model.config.to_dict(), "layers": layer_shapes(model)}
    return save_checkpoint(model, path, meta)


def _resize(layer: nn.Module, heads: int, head_size: int, intermediate: int) -> None:
    """Give ``layer`` (freshly built) modules of the recorded shapes; the weights are loaded after."""
    attention, hidden = layer.attention.self, layer.attention.output.dense.out_features
    width = heads * head_size
    attention.query, attention.key, attention.value = (nn.Linear(hidden, width) for _ in range(3))
    attention.num_attention_heads, attention.attention_head_size, attention.all_head_size = heads, head_size, width
    layer.attention.output.dense = nn.Linear(width, hidden)
    layer.intermediate.dense = nn.Linear(hidden, intermediate)
    layer.output.dense = nn.Linear(intermediate, hidden)


def load_bert_slim(path: str | Path, *, attn_implementation: str = "sdpa") -> nn.Module:
    """Rebuild a model written by :func:`save_bert_slim` (only :data:`SLIM_CLASSES`) with its per-layer
    shapes and load its weights (strict); returned in eval mode on the CPU."""
    from safetensors import safe_open

    from nlpprune_lessons.models.transformers import ATTENTION_IMPLEMENTATIONS

    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}")
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
    if meta.get("format") != SLIM_FORMAT:
        raise ValueError(f"{path} was not written by save_slim (no {SLIM_FORMAT!r} metadata)")
    if meta.get("version") != SLIM_VERSION:
        raise ValueError(f"{path} has slim format version {meta.get('version')!r}; this code reads {SLIM_VERSION}")
    if meta.get("model_class") not in SLIM_CLASSES:
        raise ValueError(f"{path} names model class {meta.get('model_class')!r}; load_slim rebuilds {SLIM_CLASSES}")
    import transformers

    config = transformers.BertConfig.from_dict(meta["config"])
    config._attn_implementation = attn_implementation
    model = getattr(transformers, meta["model_class"])(config)
    for layer, shape in zip(_encoder_layers(model), meta["layers"]):
        _resize(layer, shape["heads"], shape["head_size"], shape["intermediate"])
    load_checkpoint(model, path)
    return model.eval()
