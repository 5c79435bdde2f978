"""Lesson 04's control for cutting hidden units: the small dense model trained from scratch at the cut
model's size with the same total steps (Zhu & Gupta's "large-sparse or small-dense?", Liu et al.
2019's "rethinking the value of network pruning"); and the figure of what one hidden unit owns."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.core.checkpoints import cached_model
from nlpprune_lessons.lessons.l02_rnn import (
    CLASSIFIER_RECIPE,
    LM_RECIPE,
    PIPELINE_VERSION,
    LanguageModelData,
    SentimentData,
    build_classifier,
    build_language_model,
    fit_classifier,
    fit_language_model,
)
from nlpprune_lessons.lessons.l03_unstructured import FINE_TUNE, fine_tune_classifier, fine_tune_language_model
from nlpprune_lessons.structured.indices import as_index
from nlpprune_lessons.structured.rnn import GATES, gate_rows


def small_dense(kind: str, data: SentimentData | LanguageModelData, hidden_size: int, dense_epochs: int,
                rounds: int, seed: int = 0) -> tuple[nn.Module, dict]:
    """A ``kind`` (``"classifier"`` or ``"language model"``) with ``hidden_size`` units per layer, trained
    from scratch with exactly the budget of a model cut from lesson 02's: the lesson 02 recipe for
    ``dense_epochs`` epochs (the epochs the dense model trained; the best epoch on validation kept),
    then ``rounds`` fine-tuning rounds of lesson 03. Cached; returns ``(model, meta)``."""
    if kind not in ("classifier", "language model"):
        raise ValueError(f"kind must be 'classifier' or 'language model', got {kind!r}")
    for value, name in ((hidden_size, "hidden_size"), (dense_epochs, "dense_epochs"), (rounds, "rounds")):
        check_positive_int(value, name)
    classifier = kind == "classifier"
    if classifier and not isinstance(data, SentimentData) or not classifier and not isinstance(data, LanguageModelData):
        raise TypeError(f"data for a {kind} must be a {'SentimentData' if classifier else 'LanguageModelData'}")

    def build() -> nn.Module:
        config.set_seed(seed)
        if classifier:
            return build_classifier(len(data.vocab), pad_id=data.vocab.pad_id, hidden_size=hidden_size)
        return build_language_model(len(data.vocab), hidden_size=hidden_size)

    def train(model: nn.Module) -> dict:
        fit = fit_classifier if classifier else fit_language_model
        history = fit(model, data, epochs=dense_epochs, progress=False, patience=None)
        for _ in range(rounds):
            (fine_tune_classifier if classifier else fine_tune_language_model)(model, data)
        return {"history": vars(history)}

    recipe = {**(CLASSIFIER_RECIPE if classifier else LM_RECIPE), "hidden_size": hidden_size, "seed": seed,
              "dense_epochs": dense_epochs, "rounds": rounds, "fine_tune": FINE_TUNE, "vocab": len(data.vocab),
              "pipeline": PIPELINE_VERSION}
    model, meta, _ = cached_model(f"small-dense-{'rt' if classifier else 'lm'}", recipe, build, train)
    return model.to(config.get_device()), meta


def plot_unit_weights(lstm: nn.LSTM, unit: int, consumer: nn.Linear | nn.LSTM) -> Figure:
    """Draw what hidden ``unit`` of a one-layer, unidirectional ``lstm`` owns: its row in each gate block
    (i, f, g, o) of ``weight_ih``, ``weight_hh`` and both biases (red), its column of ``weight_hh`` and
    of the ``consumer`` that reads the layer (blue): a Linear's ``weight`` or the next LSTM's
    ``weight_ih``. The images show |weight|; the title counts the entries the unit owns. Returns the figure."""
    if not isinstance(lstm, nn.LSTM) or lstm.num_layers != 1 or lstm.bidirectional:
        raise TypeError("lstm must be a one-layer, unidirectional nn.LSTM")
    if isinstance(consumer, nn.Linear):
        reader, reader_name = consumer.weight, "next layer: Linear.weight"
    elif isinstance(consumer, nn.LSTM):
        reader, reader_name = consumer.weight_ih_l0, "next layer: LSTM.weight_ih"
    else:
        raise TypeError(f"consumer must be an nn.Linear or an nn.LSTM, got {type(consumer).__name__}")
    hidden, inputs = lstm.hidden_size, lstm.input_size
    if reader.shape[1] != hidden:
        raise ValueError(f"consumer reads {reader.shape[1]} features, the LSTM has {hidden} hidden units")
    unit = as_index(unit, hidden, "unit")
    rows = gate_rows(torch.tensor([unit]), hidden, GATES["lstm"]).tolist()
    parts = [("weight_ih", lstm.weight_ih_l0), ("weight_hh", lstm.weight_hh_l0),
             ("bias_ih", lstm.bias_ih_l0[:, None]), ("bias_hh", lstm.bias_hh_l0[:, None])]
    stacked = torch.cat([w.detach().abs().cpu() for _, w in parts], dim=1)
    hh_start = inputs  # first column of weight_hh in the stacked image
    owned = len(rows) * stacked.shape[1] + GATES["lstm"] * (hidden - 1) + reader.shape[0]
    total = stacked.numel() + reader.numel()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [stacked.shape[1] + 2, hidden + 2]})
    left.imshow(stacked.numpy(), cmap="Greys", aspect="auto")
    for r in rows:  # the unit's rows: one per gate block, across every parameter of the layer
        left.add_patch(Rectangle((-0.5, r - 0.5), stacked.shape[1], 1, facecolor="tab:red", alpha=0.45, edgecolor="tab:red"))
    left.add_patch(Rectangle((hh_start + unit - 0.5, -0.5), 1, stacked.shape[0], facecolor="tab:blue", alpha=0.35,
                             edgecolor="tab:blue"))
    edge = 0
    for name, w in parts:  # separators and names of the four parameters
        left.axvline(edge - 0.5, color="k", lw=1.5)
        left.text(edge + w.shape[1] / 2 - 0.5, -1.0, name, ha="center", va="bottom", fontsize=8)
        edge += w.shape[1]
    for g, gate in enumerate("ifgo"):
        if g:
            left.axhline(g * hidden - 0.5, color="k", lw=1.5)
        left.text(stacked.shape[1] - 0.2, g * hidden + hidden / 2 - 0.5, gate, ha="left", va="center", fontsize=11,
                  fontweight="bold")
    left.set(xticks=[], ylim=(stacked.shape[0] - 0.5, -1.8), ylabel="row")
    left.set_yticks(rows, [str(r) for r in rows])
    left.set_xlabel(f"LSTM layer, gate blocks i, f, g, o stacked ({4 * hidden} rows = 4 x {hidden} units)")
    right.imshow(reader.detach().abs().cpu().numpy(), cmap="Greys", aspect="auto")
    right.add_patch(Rectangle((unit - 0.5, -0.5), 1, reader.shape[0], facecolor="tab:blue", alpha=0.35, edgecolor="tab:blue"))
    right.set(xticks=range(hidden), yticks=[], xlabel="input feature = hidden unit of the LSTM")
    right.set_title(reader_name, fontsize=9)
    fig.suptitle(f"hidden unit {unit}: red rows (its gates), blue columns (what reads it) -- "
                 f"{owned:,} of {total:,} weights")
    fig.tight_layout()
    return fig
