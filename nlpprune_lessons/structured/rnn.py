"""Structured pruning of the recurrent models: delete whole hidden units, embedding dimensions or
vocabulary rows, so that the weight matrices physically shrink (and the model gets faster).

nn.LSTM / nn.GRU need one hidden size for all their layers, so a model whose layers lose different
numbers of units gets a :class:`StackedRNN` (single-layer LSTMs/GRUs of any size) as its ``rnn``.
RNNClassifier and RNNLanguageModel run with it unchanged. Models carrying pruning masks
(``torch.nn.utils.prune``) are refused: fold the masks first with ``pruning.make_permanent``.

Saved slim models (:func:`save_rnn_slim`) are safetensors files whose header metadata ``"meta"`` holds
the JSON ``{"architecture": {...}}`` that :func:`load_rnn_slim` rebuilds the model from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from nlpprune_lessons.core.batch import to_device
from nlpprune_lessons.core.checkpoints import load_checkpoint, save_checkpoint
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.losses import default_loss
from nlpprune_lessons.models.rnn import CELLS, RNNClassifier, RNNLanguageModel
from nlpprune_lessons.pruning.params import pruned_params
from nlpprune_lessons.structured.indices import as_index, check_indices, kept, lowest
from nlpprune_lessons.text.vocab import Vocab

GATES = {"lstm": 4, "gru": 3}  # gate blocks stacked in weight_ih / weight_hh: i,f,g,o and r,z,n
CRITERIA = ("l2", "activation", "taylor")
_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_MODELS = (RNNClassifier, RNNLanguageModel)

Batch = dict[str, torch.Tensor]
Weights = list[list[dict[str, torch.Tensor]]]  # [layer][direction] -> {weight_ih, weight_hh, bias_ih, bias_hh}


# --------------------------------------------------------------------------- StackedRNN
class StackedRNN(nn.Module):
    """Stacked single-layer LSTMs or GRUs whose layers may differ in hidden size.

    A drop-in for ``nn.LSTM`` / ``nn.GRU`` (``batch_first=True``) inside the course models: input
    ``[B, T, input_size]`` or a PackedSequence, optional ``state``; returns ``(output, state)``.
    Dropout between layers in training mode only, never after the last layer (as nn.LSTM does).

    State format: a list of ``[B, H_l]`` tensors, one per (layer, direction), layer-major and
    direction-minor like nn.LSTM's ``h_n`` (so ``state[-1]`` is the last layer's last direction and,
    bidirectional, ``state[-2]`` its forward direction); for LSTM the tuple ``(h, c)`` of two such
    lists. Pass it back in to continue a sequence.
    """

    def __init__(self, cell: str, input_size: int, hidden_sizes: Sequence[int], bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        sizes = list(hidden_sizes)
        for value in [input_size, *sizes]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"input_size and hidden_sizes must be positive ints, got {input_size!r} and {sizes!r}")
        if not sizes:
            raise ValueError("hidden_sizes must list at least one layer")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.input_size = input_size
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        inputs = [input_size] + [self.num_directions * h for h in sizes[:-1]]
        self.layers = nn.ModuleList(
            CELLS[cell](i, h, 1, batch_first=True, bidirectional=self.bidirectional) for i, h in zip(inputs, sizes)
        )

    @property
    def mode(self) -> str:
        """``"LSTM"`` or ``"GRU"``, as ``nn.RNNBase.mode``."""
        return self.cell.upper()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def hidden_sizes(self) -> list[int]:
        return [layer.hidden_size for layer in self.layers]

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, hidden_sizes={self.hidden_sizes}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}")

    def forward(self, x: torch.Tensor | PackedSequence, state=None):
        """``(output of the last layer, state)``; see the class docstring for the state format."""
        parts: tuple[list, ...] = ([], []) if self.cell == "lstm" else ([],)
        for i, (layer, layer_state) in enumerate(zip(self.layers, self._split(state))):
            if i:
                x = self._between_layers(x)
            x, new = layer(x, layer_state)
            for part, tensor in zip(parts, new if self.cell == "lstm" else (new,)):
                part.extend(tensor.unbind(0))
        return x, (parts if self.cell == "lstm" else parts[0])

    def _between_layers(self, x):
        if isinstance(x, PackedSequence):
            return x._replace(data=F.dropout(x.data, self.dropout, self.training))
        return F.dropout(x, self.dropout, self.training)

    def _split(self, state) -> list:
        """Per-layer states as nn.LSTM/nn.GRU take them: ``[D, B, H_l]`` (LSTM: a pair of them)."""
        if state is None:
            return [None] * self.num_layers
        lstm, d, expected = self.cell == "lstm", self.num_directions, self.num_layers * self.num_directions
        parts = state if lstm else (state,)
        if (lstm and not (isinstance(state, tuple) and len(state) == 2)) or any(
                not isinstance(p, (list, tuple)) or len(p) != expected for p in parts):
            raise ValueError(f"state must be {'a tuple (h, c) of two lists' if lstm else 'a list'} of {expected} "
                             "[batch, hidden] tensors (one per layer and direction), as forward returns it")
        chunks = [[torch.stack(p[k * d:(k + 1) * d]) for p in parts] for k in range(self.num_layers)]
        return [tuple(chunk) if lstm else chunk[0] for chunk in chunks]


# --------------------------------------------------------------------------- reading models
def _check_type(model: nn.Module) -> None:
    if not isinstance(model, _MODELS) or not isinstance(getattr(model, "rnn", None), (nn.LSTM, nn.GRU, StackedRNN)):
        raise TypeError("model must be an RNNClassifier or RNNLanguageModel with an LSTM/GRU (original or "
                        f"slimmed), got {type(model).__name__}")


def _check_model(model: nn.Module) -> None:
    _check_type(model)
    if pruned_params(model):
        raise ValueError("model carries pruning masks (torch.nn.utils.prune); "
                         "call nlpprune_lessons.pruning.make_permanent(model) first")


def cell_type(rnn: nn.Module) -> str:
    """``"lstm"`` or ``"gru"``: the cell of a torch RNN or a :class:`StackedRNN`."""
    return rnn.cell if isinstance(rnn, StackedRNN) else rnn.mode.lower()


def num_directions(rnn: nn.Module) -> int:
    """2 for a bidirectional RNN, else 1."""
    return 2 if rnn.bidirectional else 1


def layer_sizes(rnn: nn.Module) -> list[int]:
    """Hidden size of every layer of a torch RNN or a :class:`StackedRNN` (layers may differ there)."""
    return rnn.hidden_sizes if isinstance(rnn, StackedRNN) else [rnn.hidden_size] * rnn.num_layers


def head_name(model: nn.Module) -> str:
    """Attribute name of the layer that reads the last RNN layer: ``classifier`` or ``decoder``."""
    return "classifier" if isinstance(model, RNNClassifier) else "decoder"


def tied_weights(model: nn.Module) -> bool:
    """True for a language model whose decoder shares the embedding matrix."""
    return isinstance(model, RNNLanguageModel) and model.decoder.weight is model.embedding.weight


def _param_name(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}{'_reverse' if direction else ''}"


def recurrent_weights(rnn: nn.Module) -> Weights:
    """The recurrent parameters themselves (not copies), by layer and direction."""
    out = []
    for layer in range(rnn.num_layers):
        module, k = (rnn.layers[layer], 0) if isinstance(rnn, StackedRNN) else (rnn, layer)
        out.append([{kind: getattr(module, _param_name(kind, k, d)) for kind in _KINDS}
                    for d in range(num_directions(rnn))])
    return out


# --------------------------------------------------------------------------- building slim modules
def _build(cell: str, bidirectional: bool, dropout: float, weights: Weights) -> StackedRNN:
    """A StackedRNN holding copies of ``weights`` (sizes taken from their shapes)."""
    ref = weights[0][0]["weight_ih"]
    rnn = StackedRNN(cell, ref.shape[1], [layer[0]["weight_hh"].shape[1] for layer in weights],
                     bidirectional, dropout).to(ref.device, ref.dtype)
    with torch.no_grad():
        for module, layer in zip(rnn.layers, weights):
            for d, tensors in enumerate(layer):
                for kind, tensor in tensors.items():
                    getattr(module, _param_name(kind, 0, d)).copy_(tensor)
    return rnn


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return linear


def _embedding(old: nn.Embedding, weight: torch.Tensor) -> nn.Embedding:
    """An embedding like ``old`` (padding index, norms, frozen or not) holding a copy of ``weight``."""
    emb = nn.Embedding(weight.shape[0], weight.shape[1], padding_idx=old.padding_idx, max_norm=old.max_norm,
                       norm_type=old.norm_type, scale_grad_by_freq=old.scale_grad_by_freq, sparse=old.sparse,
                       device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        emb.weight.copy_(weight)
    emb.weight.requires_grad_(old.weight.requires_grad)
    return emb


def _rebuilt(model: nn.Module, weights: Weights, **replace: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with a StackedRNN of ``weights`` and the ``replace`` submodules."""
    slim = copy.deepcopy(model)
    slim.rnn = _build(cell_type(model.rnn), model.rnn.bidirectional, model.rnn.dropout, weights)
    for name, module in replace.items():
        setattr(slim, name, module)
    return slim.train(model.training)


def gate_rows(keep: torch.Tensor, size: int, gates: int) -> torch.Tensor:
    """Rows of the kept units in each of the ``gates`` blocks of size ``size``."""
    return torch.cat([keep + g * size for g in range(gates)])


def direction_columns(keep: torch.Tensor, size: int, directions: int) -> torch.Tensor:
    """Columns of the kept units in a layer output laid out as ``[forward | backward]``."""
    return torch.cat([keep + d * size for d in range(directions)])


# --------------------------------------------------------------------------- removal
def remove_hidden_units(model: nn.Module, units: Mapping[int, Sequence[int]]) -> nn.Module:
    """A new model (``model`` is untouched) without the hidden units ``units`` = {layer: indices}.

    Each unit's rows leave every gate block of its layer's ``weight_ih``, ``weight_hh`` and biases
    (both directions), its column leaves ``weight_hh`` and the next layer's ``weight_ih`` (both
    input halves when bidirectional) or the head (``classifier`` / ``decoder``). The result's ``rnn``
    is a :class:`StackedRNN`, even for ``units={}`` (same outputs: a fair latency baseline).
    """
    removed = units_to_delete(model, units)
    sizes = layer_sizes(model.rnn)
    keep = [kept(size, gone) for size, gone in zip(sizes, removed)]
    weights = _sliced_weights(model.rnn, keep)
    if tied_weights(model):
        return _rebuilt(model, weights)
    head = getattr(model, head_name(model))
    cols = direction_columns(keep[-1], sizes[-1], num_directions(model.rnn))
    return _rebuilt(model, weights, **{head_name(model): _linear(head.weight[:, cols], head.bias)})


def _check_units(units, sizes: list[int]) -> list[list[int]]:
    """The validated unit indices to delete, as one list per layer."""
    if not isinstance(units, Mapping):
        raise TypeError(f"units must be a dict {{layer index: unit indices to delete}}, got {type(units).__name__}")
    removed: list[list[int]] = [[] for _ in sizes]
    for layer, indices in units.items():
        layer = as_index(layer, len(sizes), "layer index")
        removed[layer] = check_indices(indices, sizes[layer], f"layer {layer} unit", f"units of layer {layer}")
    return removed


def units_to_delete(model: nn.Module, units: Mapping[int, Sequence[int]]) -> list[list[int]]:
    """``units`` ({layer: indices}) checked against ``model``, as one list of indices per layer.

    Raises ValueError for masks, bad or duplicate indices, a whole layer, or the last layer of a
    language model with tied weights (its units are the embedding's dimensions)."""
    _check_model(model)
    sizes = layer_sizes(model.rnn)
    removed = _check_units(units, sizes)
    if tied_weights(model) and removed[-1]:
        raise ValueError(f"cannot remove units of the last recurrent layer ({len(sizes) - 1}) of a language model "
                         "with tied weights: decoder.weight is embedding.weight, so that layer must keep "
                         f"embed_dim = {model.embedding.embedding_dim} units")
    return removed


def _sliced_weights(rnn: nn.Module, keep: list[torch.Tensor]) -> Weights:
    """Recurrent weights restricted to the ``keep`` units of each layer (rows and columns)."""
    sizes, gates, d = layer_sizes(rnn), GATES[cell_type(rnn)], num_directions(rnn)
    weights = []
    for layer, directions in enumerate(recurrent_weights(rnn)):
        rows = gate_rows(keep[layer], sizes[layer], gates)
        cols = direction_columns(keep[layer - 1], sizes[layer - 1], d) if layer else slice(None)
        weights.append([{"weight_ih": w["weight_ih"][rows][:, cols], "weight_hh": w["weight_hh"][rows][:, keep[layer]],
                         "bias_ih": w["bias_ih"][rows], "bias_hh": w["bias_hh"][rows]} for w in directions])
    return weights


def remove_embedding_dims(model: nn.Module, dims: Sequence[int]) -> nn.Module:
    """A new model without the embedding columns ``dims`` and the matching input columns of the first
    recurrent layer (both directions). Not for a language model with tied weights."""
    _check_model(model)
    if tied_weights(model):
        raise ValueError("cannot remove embedding dims of a language model with tied weights: embedding.weight "
                         "is decoder.weight, whose columns belong to the last layer's hidden units")
    size = model.embedding.embedding_dim
    keep = kept(size, check_indices(dims, size, "embedding dim", "embedding dims"))
    weights = recurrent_weights(model.rnn)
    weights[0] = [{**w, "weight_ih": w["weight_ih"][:, keep]} for w in weights[0]]
    return _rebuilt(model, weights, embedding=_embedding(model.embedding, model.embedding.weight[:, keep]))


def remove_vocabulary(model: nn.Module, vocab: Vocab, keep: int) -> tuple[nn.Module, Vocab]:
    """Keep the first ``keep`` ids of ``vocab`` (specials + most frequent words); the rest become ``<unk>``.

    Returns a new model, whose embedding rows (and, for the language model, decoder rows and bias
    entries: a cheaper softmax) shrink to ``keep``, and the matching new Vocab. The recurrent part is
    copied unchanged; tied weights stay tied.
    """
    _check_model(model)
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
    rows, specials = model.embedding.num_embeddings, len(vocab.specials)
    if len(vocab) != rows:
        raise ValueError(f"vocab has {len(vocab)} tokens but the model's embedding has {rows} rows; "
                         "pass the vocabulary the model was trained with")
    if isinstance(keep, bool) or not isinstance(keep, int) or not specials < keep <= rows:
        raise ValueError(f"keep must be an int with {specials} < keep <= {rows} (the {specials} special tokens "
                         f"plus at least one word, at most the whole vocabulary), got {keep!r}")
    pad = model.embedding.padding_idx
    if pad is not None and pad >= keep:
        raise ValueError(f"the embedding's padding_idx {pad} would be dropped; keep must be > {pad}")
    slim = copy.deepcopy(model)
    slim.embedding = _embedding(model.embedding, model.embedding.weight[:keep])
    if isinstance(model, RNNLanguageModel):
        slim.decoder = _linear(model.decoder.weight[:keep], model.decoder.bias[:keep])
        if tied_weights(model):
            slim.decoder.weight = slim.embedding.weight
    return slim.train(model.training), Vocab(vocab.itos[specials:keep], vocab.specials)


# --------------------------------------------------------------------------- importance
def hidden_unit_importance(
    model: nn.Module,
    criterion: str = "l2",
    data: Iterable[Batch] | None = None,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """One score per hidden unit (a CPU tensor per recurrent layer); low score = removed first.

    Bidirectional: a unit index is the same unit in both directions; its score is the sum of the two.

    - ``"l2"``: L2 norm of the unit's weights: its rows in every gate block of ``weight_ih``,
      ``weight_hh`` and the biases, plus its outgoing columns (``weight_hh``, next layer's
      ``weight_ih`` or the head); each weight counted once.
    - ``"activation"``: mean ``|h_t|`` over every time step of every batch of ``data`` (padding
      skipped when batches carry ``lengths``), model in eval mode.
    - ``"taylor"``: ``|sum of h * dL/dh|`` over the batch's positions, averaged over the batches of
      ``data`` (Molchanov et al., 2017); ``dL/dh`` is taken wherever ``h`` is used (next layer or head,
      and the layer's own next step), i.e. the derivative of the loss with respect to a gate scaling
      the unit's output. Loss ``loss_fn(model, batch)``, default :func:`~nlpprune_lessons.losses.default_loss`;
      eval mode, the model's ``.grad`` fields are left alone.

    ``data`` and ``loss_fn`` are ignored by criteria that do not use them.
    """
    _check_model(model)
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if criterion == "l2":
        return _l2_scores(model)
    if data is None:
        raise ValueError(f"criterion {criterion!r} needs data: an iterable of batches (dicts with input_ids, ...)")
    if criterion == "activation":
        return _activation_scores(model, data)
    return _taylor_scores(model, data, loss_fn or default_loss)


def _own_squares(w: dict[str, torch.Tensor], gates: int, size: int) -> torch.Tensor:
    """Per unit: squared weights of its gate rows and of its ``weight_hh`` column (each weight once)."""
    hh = w["weight_hh"].view(gates, size, size) ** 2  # [gate, row unit, column unit]
    rows = ((w["weight_ih"].view(gates, size, -1) ** 2).sum((0, 2)) + hh.sum((0, 2))
            + (w["bias_ih"].view(gates, size) ** 2).sum(0) + (w["bias_hh"].view(gates, size) ** 2).sum(0))
    return rows + hh.sum((0, 1)) - hh.diagonal(dim1=1, dim2=2).sum(0)


@torch.no_grad()
def _l2_scores(model: nn.Module) -> list[torch.Tensor]:
    gates, sizes, weights = GATES[cell_type(model.rnn)], layer_sizes(model.rnn), recurrent_weights(model.rnn)
    scores = []
    for layer, size in enumerate(sizes):
        consumers = ([w["weight_ih"] for w in weights[layer + 1]] if layer + 1 < len(sizes)
                     else [getattr(model, head_name(model)).weight])
        outgoing = sum((c ** 2).sum(0) for c in consumers)  # [d * size], laid out [forward | backward]
        scores.append(sum((_own_squares(w, gates, size) + outgoing[k * size:(k + 1) * size]).sqrt()
                          for k, w in enumerate(weights[layer])).cpu())
    return scores


@torch.no_grad()
def _activation_scores(model: nn.Module, data: Iterable[Batch]) -> list[torch.Tensor]:
    rnn = _build(cell_type(model.rnn), model.rnn.bidirectional, 0.0, recurrent_weights(model.rnn)).eval()  # layer by layer
    device, sizes, d = model.embedding.weight.device, layer_sizes(model.rnn), num_directions(model.rnn)
    sums, counts, batches = [0.0] * len(sizes), [0] * len(sizes), 0
    for batch in data:
        batch = to_device(batch, device)
        x = model.embedding(batch["input_ids"])
        if batch.get("lengths") is not None:
            x = pack_padded_sequence(x, batch["lengths"].cpu(), batch_first=True, enforce_sorted=False)
        for layer, module in enumerate(rnn.layers):
            x, _ = module(x)
            h = x.data if isinstance(x, PackedSequence) else x.reshape(-1, x.size(-1))
            sums[layer] = sums[layer] + h.abs().sum(0)
            counts[layer] += h.size(0)
        batches += 1
    if batches == 0:
        raise ValueError("data yielded no batches: activation scores need at least one batch")
    return [(s / n).view(d, size).sum(0).cpu() for s, n, size in zip(sums, counts, sizes)]


def _column_products(tensors: list[torch.Tensor], grads) -> list[torch.Tensor]:
    """Per last-dimension index: sum of ``t * dL/dt`` over all other positions (0 without gradient)."""
    return [(t.detach() * g).reshape(-1, t.shape[-1]).sum(0) if g is not None
            else t.new_zeros(t.shape[-1]) for t, g in zip(tensors, grads)]


def _add_taylor(scores: list[torch.Tensor], products: list[torch.Tensor], sizes: list[int], d: int) -> None:
    """Add one batch's ``|sum of h * dL/dh|`` to ``scores``, from the column products of the weight_hh
    matrices (layer-major, direction-minor), the next layers' weight_ih matrices and the head input."""
    hh, ih, head = products[:len(sizes) * d], products[len(sizes) * d:-1], products[-1]
    for layer, size in enumerate(sizes):
        outgoing = sum(ih[layer * d:(layer + 1) * d]) if layer + 1 < len(sizes) else head  # [forward | backward]
        for k in range(d):
            scores[layer] += (hh[layer * d + k] + outgoing[k * size:(k + 1) * size]).abs()


def _taylor_scores(model: nn.Module, data: Iterable[Batch],
                   loss_fn: Callable[[nn.Module, Batch], torch.Tensor]) -> list[torch.Tensor]:
    # A unit's output h is used by (1) its layer's weight_hh column at the next step and (2) the next
    # layer's weight_ih columns or the head's input. Sum of w * dL/dw over the weight columns of (1)
    # and the next layer, and of x * dL/dx over the head's input x, is sum of h * dL/dh over all uses.
    sizes, d, weights = layer_sizes(model.rnn), num_directions(model.rnn), recurrent_weights(model.rnn)
    hh = [w["weight_hh"] for layer in weights for w in layer]
    ih = [w["weight_ih"] for layer in weights[1:] for w in layer]
    flags = [p.requires_grad for p in hh + ih]
    head_inputs: list[torch.Tensor] = []
    hook = getattr(model, head_name(model)).register_forward_hook(lambda m, args, out: head_inputs.append(args[0]))
    scores = [hh[0].new_zeros(size) for size in sizes]
    was_training, batches = model.training, 0
    model.eval()
    try:
        for p in hh + ih:
            p.requires_grad_(True)
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            for batch in data:
                head_inputs.clear()
                loss = loss_fn(model, to_device(batch, hh[0].device))
                if not head_inputs:
                    raise ValueError(f"loss_fn did not run the model's {head_name(model)}")
                tensors = hh + ih + head_inputs[-1:]
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                _add_taylor(scores, _column_products(tensors, grads), sizes, d)
                batches += 1
    finally:
        hook.remove()
        model.train(was_training)
        for p, flag in zip(hh + ih, flags):
            p.requires_grad_(flag)
    if batches == 0:
        raise ValueError("data yielded no batches: Taylor scores need at least one batch")
    return [(s / batches).cpu() for s in scores]


def units_to_remove(scores: Sequence[torch.Tensor], sparsity: float) -> dict[int, list[int]]:
    """Per layer, the ``round(sparsity * H)`` lowest-scoring units (ascending indices; ties by index)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1) (the share of each layer's units to remove), got {sparsity!r}")
    if not isinstance(scores, Sequence) or not scores or any(
            not isinstance(s, torch.Tensor) or s.ndim != 1 or s.numel() == 0 for s in scores):
        raise TypeError("scores must be a non-empty list of non-empty 1-D tensors, one per layer "
                        "(as hidden_unit_importance returns)")
    result = {}
    for layer, s in enumerate(scores):
        k = round(sparsity * s.numel())
        if k == s.numel():
            raise ValueError(f"sparsity {sparsity} would remove all {k} units of layer {layer}; use a smaller one")
        result[layer] = lowest([s], k).get(0, [])
    return result


# --------------------------------------------------------------------------- sizes
def hidden_sizes(model: nn.Module) -> list[int]:
    """Hidden size of each recurrent layer."""
    _check_type(model)
    return list(layer_sizes(model.rnn))


def recurrent_flops(model: nn.Module, seq_len: int) -> int:
    """Floating-point operations (2 per multiply-add, as :func:`~nlpprune_lessons.structured.transformer.encoder_flops`
    counts them) of the recurrent layers for one sequence of ``seq_len`` steps: twice the sum over layers
    and directions of ``gates * H_l * (in_l + H_l) * seq_len`` (gates: 4 LSTM, 3 GRU)."""
    _check_type(model)
    check_positive_int(seq_len, "seq_len")
    rnn, sizes = model.rnn, layer_sizes(model.rnn)
    d, gates = num_directions(rnn), GATES[cell_type(rnn)]
    inputs = [rnn.input_size] + [d * h for h in sizes[:-1]]
    return 2 * d * seq_len * sum(gates * h * (i + h) for i, h in zip(inputs, sizes))


# --------------------------------------------------------------------------- saving
def _architecture(model: nn.Module) -> dict:
    rnn = model.rnn
    arch = {"class": type(model).__name__, "vocab_size": model.embedding.num_embeddings,
            "embed_dim": model.embedding.embedding_dim, "hidden_sizes": layer_sizes(rnn), "cell": cell_type(rnn),
            "bidirectional": rnn.bidirectional, "dropout": model.dropout.p,
            "stacked": isinstance(rnn, StackedRNN)}
    if isinstance(model, RNNClassifier):
        return {**arch, "num_classes": model.classifier.out_features, "pad_id": model.embedding.padding_idx}
    return {**arch, "tie_weights": tied_weights(model)}


def save_rnn_slim(model: nn.Module, path: str | Path) -> Path:
    """Write the weights (safetensors) with the architecture as JSON in the header metadata:
    ``"meta"`` = ``{"architecture": {class, vocab_size, embed_dim, hidden_sizes, cell, bidirectional,
    dropout, stacked, num_classes and pad_id | tie_weights}}``. Returns the path."""
    _check_model(model)
    return save_checkpoint(model, path, {"architecture": _architecture(model)})


def _empty_model(arch: dict, path: str | Path) -> nn.Module:
    names = [c.__name__ for c in _MODELS]
    if arch.get("class") not in names:
        raise ValueError(f"{path}: unknown model class {arch.get('class')!r}; load_slim rebuilds {' or '.join(names)}")
    sizes = arch["hidden_sizes"]
    common = {"embed_dim": arch["embed_dim"], "hidden_size": sizes[-1], "num_layers": len(sizes),
              "cell": arch["cell"], "dropout": arch["dropout"]}
    if arch["class"] == "RNNClassifier":
        model = RNNClassifier(arch["vocab_size"], arch["num_classes"], bidirectional=arch["bidirectional"],
                              pad_id=arch["pad_id"], **common)
    else:
        model = RNNLanguageModel(arch["vocab_size"], tie_weights=arch["tie_weights"], **common)
    if arch["stacked"]:  # between-layer dropout as the models' constructors set it
        model.rnn = StackedRNN(arch["cell"], arch["embed_dim"], sizes, arch["bidirectional"],
                               arch["dropout"] if len(sizes) > 1 else 0.0)
    return model


def load_rnn_slim(path: str | Path) -> nn.Module:
    """Rebuild a model written by :func:`save_rnn_slim` and load its weights; returned in eval mode."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
    if "architecture" not in meta:
        raise ValueError(f"{path} holds no architecture metadata: it was not written by save_slim")
    model = _empty_model(meta["architecture"], path)
    load_checkpoint(model, path)
    return model.eval()
