"""Lesson 08's settings: the slimming plan, the recovery recipe, the scoring and latency budgets by
mode, and the vocabulary cut of the fine-tuned MiniLM; and its readings: random draws against a score,
slim models against the dense control trained as long, each training budget as a label, and lesson
07's runs (collapsed ones marked) beside the slim stages."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import cycle

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from nlpprune_lessons.core import config
from nlpprune_lessons.core.checks import check_positive_int
from nlpprune_lessons.measure.latency import inside_iqr_noise
from nlpprune_lessons.metrics import VERDICT_SES, collapsed_to_majority, compare_scores, mean_and_spread
from nlpprune_lessons.structured.indices import as_index
from nlpprune_lessons.structured.transformer import remove_vocabulary, vocabulary_map

#: Lesson 08's runs by mode: the training batches that importance scores read, the random draws of
#: each random baseline (heads, FFN neurons), and the latency timing (alternating rounds x timed
#: repeats after warm-up, at these batch sizes and sequence lengths; three rounds give an
#: interquartile range). Training data and steps are lesson 07's (``l07_sparse_bert.sparse_loaders``),
#: the recovery recipe is :data:`RECOVERY`.
SLIM_SETTINGS = dict(
    fast=dict(score_batches=4, random_draws=5,
              latency=dict(rounds=3, repeats=3, warmup=1, batch_sizes=(1, 32), seq_lens=(64,))),
    full=dict(score_batches=16, random_draws=5,
              latency=dict(rounds=3, repeats=10, warmup=2, batch_sizes=(1, 32), seq_lens=(64, 128))),
)


def slim_settings() -> dict:
    """:data:`SLIM_SETTINGS` of the current mode."""
    return SLIM_SETTINGS["fast" if config.is_fast() else "full"]
#: What each step removes: ``heads`` a fraction of the model's heads (ranked across layers by Michel
#: et al.'s score, normalised per layer; every layer keeps one), ``ffn`` a fraction of every layer's
#: FFN neurons (Taylor score), ``layers`` a number of whole layers (the ones whose removal raises the
#: loss least). The default plan is the lesson's calibration point: 6 of 12 heads per layer on average,
#: half of the FFN, 2 of 6 layers (lesson 08 and ``benchmarks/bert_structured.py`` measure its speedup).
SLIM_PLAN = (("heads", 0.5), ("ffn", 0.5), ("layers", 2))
#: Recovery after each step: AdamW with 10% warm-up and linear decay, the embeddings frozen,
#: distillation from the dense teacher (temperature 2, half KD, half cross-entropy). lr 3e-4: better
#: on validation than 1e-4 in FAST mode; the FULL reference results (results/reference/bert_structured.json)
#: use it as their one candidate (not searched).
RECOVERY = dict(lr=3e-4, epochs=1, kd_temperature=2.0, kd_weight=0.5, hidden_weight=1.0, warmup_ratio=0.1)


def vocabulary_pruned(model: nn.Module, data, seed: int = 0) -> tuple[nn.Module, dict[str, DataLoader]]:
    """``model`` with its word embeddings cut to the WordPiece ids that occur in the training reviews
    of ``data`` (an :class:`~nlpprune_lessons.lessons.l06_bert.EncoderData`) plus the special tokens
    (:func:`~nlpprune_lessons.structured.transformer.remove_vocabulary`), and loaders of every split
    with the ids translated (an id never seen in training becomes ``[UNK]``)."""
    from nlpprune_lessons.lessons.l06_bert import ENCODER_RECIPE
    from nlpprune_lessons.models.transformers import encoder_loader

    tokenizer = data.tokenizer
    keep = {i for row in data.ids["train"] for i in row} | set(tokenizer.all_special_ids)
    slim = remove_vocabulary(model, keep, tokenizer.unk_token_id)
    mapping = vocabulary_map(slim).tolist()
    loaders = {split: encoder_loader([[mapping[i] for i in row] for row in ids], data.labels[split],
                                     pad_id=slim.config.pad_token_id, shuffle=split == "train", seed=seed,
                                     batch_size=ENCODER_RECIPE["batch_size" if split == "train" else "eval_batch_size"])
               for split, ids in data.ids.items()}
    return slim, loaders


# --------------------------------------------------------------------------- readings
def random_scores(shapes: Sequence[int | tuple[int, ...]], draws: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """``draws`` random scorings (uniform in [0, 1), seeded by ``seed``): each a list with one tensor of
    each shape in ``shapes`` (e.g. ``[(layers, heads)]`` for heads, one FFN width per layer for
    neurons). Ranking by them removes a random choice; several draws show its spread."""
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence) or not shapes:
        raise TypeError(f"shapes must be a non-empty list of ints or tuples of ints, got {shapes!r}")
    check_positive_int(draws, "draws")
    generator = torch.Generator().manual_seed(seed)
    return [[torch.rand(shape, generator=generator) for shape in shapes] for _ in range(draws)]


def versus_random(score: float, draws: Sequence[float]) -> dict:
    """A scored choice's accuracy against the accuracies of random draws: the draws' ``mean``, ``sd``,
    ``se`` and ``n`` (:func:`~nlpprune_lessons.metrics.mean_and_spread`), the distance ``sds`` from
    their mean in their standard deviations (NaN if the draws do not vary) and whether the score beats
    every draw (``above_all``)."""
    spread = mean_and_spread(list(draws))
    sds = (score - spread["mean"]) / spread["sd"] if spread["sd"] else math.nan
    return {"score": score, **spread, "sds": sds, "above_all": score > max(draws)}


TEACHERS = ("none", "logits", "logits + hidden states")


def budget_label(steps: Sequence[int], epochs: int, embeddings_frozen: bool, teacher: str) -> str:
    """A training budget as a legend or table label, e.g. ``3 x 319 steps (1 epoch each), embeddings
    frozen, KD on logits``: ``steps`` per training round, ``epochs`` per round, and the ``teacher``
    (:data:`TEACHERS`)."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in steps):
        raise ValueError(f"steps must be a non-empty list of step counts per round, got {steps!r}")
    check_positive_int(epochs, "epochs")
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, got {teacher!r}")
    rounds = (f"{steps[0]} steps" if len(steps) == 1 else f"{len(steps)} x {steps[0]} steps"
              if len(set(steps)) == 1 else f"{' + '.join(map(str, steps))} = {sum(steps)} steps")
    each = f"{epochs} epoch{'s' if epochs > 1 else ''}{' each' if len(steps) > 1 else ''}"
    kd = "no KD" if teacher == "none" else f"KD on {teacher}"
    return f"{rounds} ({each}), embeddings {'frozen' if embeddings_frozen else 'trained'}, {kd}"


def against_control(models: Mapping[str, Mapping[str, float]], control: Mapping[str, float],
                    control_name: str = "dense control", split: str = "test") -> pd.DataFrame:
    """Each of ``models`` (name: a record with ``{split}_accuracy`` and ``{split}_accuracy_se``) against
    ``control`` on ``split``: both accuracies, the difference, its standard error, the difference in
    standard errors (NaN if both errors are 0) and the verdict (:func:`~nlpprune_lessons.metrics.compare_scores`:
    inside :data:`~nlpprune_lessons.metrics.VERDICT_SES` standard errors is a tie), and one sentence."""
    if split not in ("validation", "test"):
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: record}")
    rows = []
    for name, record in models.items():
        c = compare_scores(record, control, "accuracy", f"{split}_")
        ses = c["difference"] / c["se"] if c["se"] else math.nan
        a, b = record[f"{split}_accuracy"], control[f"{split}_accuracy"]
        rows.append({"model": name, "against": control_name, "split": split, "accuracy": a, "against_accuracy": b,
                     "difference": c["difference"], "se": c["se"], "ses": ses, "verdict": c["verdict"],
                     "text": f"{name} {a:.3f} vs {control_name} {b:.3f} ({split}): {c['difference']:+.3f} "
                             f"± {c['se']:.3f}, {ses:+.1f} standard errors: {c['verdict']}"})
    return pd.DataFrame(rows)


def reference_test_set(seed: int = 0) -> tuple[int, float]:
    """Size and majority-class share of the FULL test split (the one the committed FULL runs of
    lessons 06-08 were scored on), whatever the current mode."""
    from nlpprune_lessons.data.rotten_tomatoes import load_rotten_tomatoes
    from nlpprune_lessons.metrics import majority_share

    labels = load_rotten_tomatoes("test", seed=seed, fast=False).label.tolist()
    return len(labels), majority_share(labels)


def sparse_reference_points(records: Sequence[Mapping], n_test: int, majority: float) -> tuple[pd.DataFrame, float]:
    """Lesson 07's comparison runs from its FULL results records (``results/reference/bert_sparse.json``;
    the learning-rate search left out) with their training ``budget`` (:func:`budget_label`) and
    ``collapsed`` (test accuracy within :data:`~nlpprune_lessons.metrics.VERDICT_SES` standard errors of
    the majority class, :func:`~nlpprune_lessons.metrics.collapsed_to_majority`, on ``n_test`` examples
    with majority share ``majority``), and the speedup of its masked model over dense at batch 32 x 64
    tokens (the same for every sparsity: zeros are not skipped)."""
    frame = pd.DataFrame(list(records))
    if "method" not in frame or "experiment" not in frame:
        raise ValueError("records must be lesson 07's results records (runs with 'method', and 'experiment' rows)")
    timing = frame[frame.experiment == "latency_b32_s64_ms"]
    if timing.empty:
        raise ValueError("records hold no 'latency_b32_s64_ms' experiment (lesson 07's masked timing)")
    speedup = float(timing.iloc[0]["dense"] / timing.iloc[0]["masked"])
    search = frame["search"].eq(True) if "search" in frame else pd.Series(False, index=frame.index)
    runs = frame[frame.method.notna() & ~search].copy()

    def teacher(row) -> str:  # a missing value (NaN) is not True
        if row.get("distill") not in (True, 1):
            return "none"
        weight = row.get("kd_hidden_weight")
        return "logits + hidden states" if isinstance(weight, (int, float)) and weight > 0 else "logits"

    runs["budget"] = [budget_label([int(r["steps"])], int(r["epochs"]), r.get("freeze_embeddings") in (True, 1),
                                   teacher(r)) for r in runs.to_dict("records")]
    runs["collapsed"] = [collapsed_to_majority(float(a), n_test, majority) for a in runs.test_accuracy]
    return runs.reset_index(drop=True), speedup


def plot_speed_accuracy(ax, slim: pd.DataFrame, slim_budget: str, *, floor: float, mode: str,
                        control: Mapping | None = None, control_speedup: float | None = None,
                        control_budget: str = "", sparse: pd.DataFrame | None = None,
                        sparse_speedup: float | None = None, sparse_floor: float | None = None) -> None:
    """Section 8's figure on ``ax``: test accuracy against measured speedup (batch 32 x 64 tokens) of
    the slim stages (``slim``: :func:`~nlpprune_lessons.structured.slimming.speed_accuracy`), the dense
    control trained as long, and lesson 07's sparse runs (:func:`sparse_reference_points`; collapsed
    runs hollow; ``sparse_floor``: the majority share of the FULL test set they were scored on), each
    series labelled with its training budget; error bars are two standard errors."""
    err = VERDICT_SES * slim["test_accuracy_se"] if "test_accuracy_se" in slim else None
    ax.errorbar(slim.speedup, slim.test_accuracy, yerr=err, marker="o", capsize=3,
                label=f"slim stages (this run, {mode}): {slim_budget}")
    for row in slim.itertuples():
        ax.annotate(row.stage.split(" + ")[-1], (row.speedup, row.test_accuracy), fontsize=8)
    if control is not None and control_speedup is not None:
        ax.errorbar([control_speedup], [control["test_accuracy"]], yerr=[VERDICT_SES * control["test_accuracy_se"]],
                    marker="D", color="tab:green", capsize=3, linestyle="none",
                    label=f"dense control (this run, {mode}): {control_budget}")
    if sparse is not None and sparse_speedup is not None:
        colors = cycle(["tab:red", "tab:purple", "tab:brown", "tab:olive"])
        for color, (budget, group) in zip(colors, sparse.groupby("budget", sort=False)):
            label = f"lesson 07 sparse, masked (FULL): {budget}"
            kept, gone = group[~group.collapsed], group[group.collapsed]
            if not kept.empty:
                ax.scatter([sparse_speedup] * len(kept), kept.test_accuracy, marker="s", color=color, label=label)
            if not gone.empty:  # the series' label goes on its hollow points when none is filled
                ax.scatter([sparse_speedup] * len(gone), gone.test_accuracy, marker="s", facecolors="none",
                           edgecolors=color, label=label if kept.empty else None)
        if sparse.collapsed.any():
            share = "" if sparse_floor is None else f" {sparse_floor:.3f}"
            ax.scatter([], [], marker="s", facecolors="none", edgecolors="black",
                       label=f"hollow: collapsed (within {VERDICT_SES:g} SE of the majority class{share})")
    ax.axhline(floor, color="grey", linestyle=":", label=f"majority class of this run's test set ({floor:.3f})")
    ax.set_xlabel("speedup over dense (batch 32, 64 tokens)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)


def plot_layer_anatomy(layer: nn.Module, head: int = 0, neuron: int = 0):
    """Section 2's figure: the six weight matrices of one BERT encoder layer (``layer``, e.g.
    ``model.encoder.layer[0]``) drawn to scale, one square per weight (rows = outputs, columns =
    inputs, as ``nn.Linear`` stores them), with attention head ``head`` (its rows of query, key and
    value, its column block of the attention-output dense) and FFN neuron ``neuron`` (its row of the
    intermediate dense, its column of the output dense) coloured. Returns the figure."""
    import matplotlib.pyplot as plt  # lazily: the rest of this module needs no plotting
    from matplotlib.colors import ListedColormap

    try:
        attention, ffn_in, ffn_out = layer.attention, layer.intermediate.dense, layer.output.dense
        heads, size = attention.self.num_attention_heads, attention.self.attention_head_size
    except AttributeError as err:
        raise TypeError(f"layer must be a BERT encoder layer (model.encoder.layer[i]), got {type(layer).__name__}") from err
    head = as_index(head, heads, "head")
    neuron = as_index(neuron, ffn_in.out_features, "neuron")
    block = slice(head * size, (head + 1) * size)
    panels = []  # (title, weight shape, marked rows, marked columns, colour code)
    for name in ("query", "key", "value"):
        panels.append((f"attention.self.{name}", getattr(attention.self, name).weight.shape, block, None, 1))
    panels.append(("attention.output.dense", attention.output.dense.weight.shape, None, block, 1))
    panels.append(("intermediate.dense", ffn_in.weight.shape, slice(neuron, neuron + 1), None, 2))
    panels.append(("output.dense", ffn_out.weight.shape, None, slice(neuron, neuron + 1), 2))
    widths = [shape[1] for _, shape, *_ in panels]
    tallest = max(shape[0] for _, shape, *_ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(min(16, 0.09 * sum(widths) + 3), 0.06 * tallest + 2.5),
                             gridspec_kw={"width_ratios": widths})
    colours = ListedColormap(["#dddddd", "tab:blue", "tab:orange"])
    for ax, (title, shape, rows, columns, code) in zip(axes, panels):
        grid = torch.zeros(tuple(shape))
        if rows is not None:
            grid[rows, :] = code
        if columns is not None:
            grid[:, columns] = code
        ax.pcolormesh(grid.numpy(), cmap=colours, vmin=0, vmax=2, edgecolors="white", linewidth=0.3)
        ax.set_xlim(0, shape[1])
        ax.set_ylim(shape[0], 0)  # row 0 at the top, as the matrix is printed
        ax.set_aspect("equal")  # every panel on one scale: one square per weight
        ax.set_anchor("N")
        ax.set_title(f"{title}\n{shape[0]} x {shape[1]}", fontsize=8)
        ax.set_xlabel("inputs (columns)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel("outputs (rows)", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(1)), plt.Rectangle((0, 0), 1, 1, color=colours(2))]
    fig.legend(handles, [f"attention head {head} ({size} rows of q, k, v; {size} columns of the output)",
                         f"FFN neuron {neuron} (a row in, a column out)"], loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(f"One BERT layer: {heads} heads of size {size}, hidden {ffn_out.out_features}, "
                 f"{ffn_in.out_features} FFN neurons", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


def latency_view(latency: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables of a :func:`~nlpprune_lessons.structured.slimming.latency_table` (models x batch,
    sequence length): ``ms [IQR]`` and ``speedup [q1-q3]``."""
    missing = {"model", "batch", "seq_len", "ms", "ms_iqr", "speedup", "speedup_q1", "speedup_q3"} - set(latency)
    if missing:
        raise ValueError(f"latency lacks the columns {sorted(missing)}: pass a latency_table")
    shown = latency.assign(ms=[f"{m:.1f} [{i:.1f}]" for m, i in zip(latency.ms, latency.ms_iqr)],
                           speedup=[f"{x:.2f} [{a:.2f}-{b:.2f}]" for x, a, b in
                                    zip(latency.speedup, latency.speedup_q1, latency.speedup_q3)])
    return tuple(shown.pivot_table(index="model", columns=["batch", "seq_len"], values=v, sort=False, aggfunc="first")
                 for v in ("ms", "speedup"))


def same_shape_speedup(latency: pd.DataFrame, model: str, batch: int = 32, seq_len: int = 64) -> dict:
    """The speedup over the reference (first) model of ``model``, which has the reference's shapes (e.g.
    the dense control), at ``batch`` x ``seq_len``: its median and quartiles, whether 1.0 lies within
    them (:func:`~nlpprune_lessons.measure.latency.inside_iqr_noise`: then the "speedup" is noise), and
    one sentence."""
    at = latency[(latency.batch == batch) & (latency.seq_len == seq_len) & (latency.model == model)]
    if at.empty:
        raise ValueError(f"latency has no row for model {model!r} at batch {batch} x {seq_len} tokens")
    row = at.iloc[0]
    q1, q3 = float(row.speedup_q1), float(row.speedup_q3)
    inside = inside_iqr_noise((q1, q3), (1.0, 1.0))
    text = (f"{model} (the reference's shapes) at batch {batch} x {seq_len} tokens: speedup {row.speedup:.3f} "
            f"[IQR {q1:.3f}-{q3:.3f}], {'inside' if inside else 'outside'} the noise of 1.0")
    return {"model": model, "batch": batch, "seq_len": seq_len, "speedup": float(row.speedup), "q1": q1, "q3": q3,
            "inside_noise": inside, "text": text}


def figure_reading(curve: pd.DataFrame, slim_budget: str, control: Mapping, control_budget: str,
                   same_shape: Mapping, sparse: pd.DataFrame | None = None, sparse_speedup: float | None = None,
                   full_test: tuple[int, float] | None = None) -> list[str]:
    """What section 8's figure shows, in sentences computed from its numbers: the last slim stage's
    speedup and accuracy against the dense control, lesson 07's collapsed runs (on ``full_test``, the
    FULL test set's size and majority share), whether lesson 07's masked speedup is inside the noise
    of a same-shape model timed here (``same_shape``: :func:`same_shape_speedup`) and whether the
    budgets of the series are equal."""
    last = curve.iloc[-1]
    lines = [f"The last slim stage ({last['stage']}) runs {last['speedup']:.2f}x faster than dense (FLOP ratio "
             f"{last['flop_ratio']:.2f}x) at test accuracy {last['test_accuracy']:.3f}; the dense control, trained "
             f"with the same budget, is at {control['test_accuracy']:.3f}."]
    if sparse is None or sparse_speedup is None:
        return lines + ["Lesson 07's reference file is absent: its runs are left out."]
    gone = sparse[sparse.collapsed]
    names = ", ".join(f"{r.method} {r.sparsity_target:.0%}{' + KD' if r.distill else ''} ({r.test_accuracy:.3f})"
                      for r in gone.itertuples())
    where = f" (majority share {full_test[1]:.3f} of {full_test[0]} test reviews)" if full_test else ""
    lines.append(f"Lesson 07: {len(sparse)} runs, {len(gone)} collapsed to the majority class within "
                 f"{VERDICT_SES:g} standard errors{where}" + (f": {names} (hollow)." if len(gone) else "."))
    inside = inside_iqr_noise((sparse_speedup, sparse_speedup), (same_shape["q1"], same_shape["q3"]))
    lines.append(f"Lesson 07's masked models keep dense shapes; their speedup {sparse_speedup:.3f} (one timing, no "
                 f"spread recorded) is {'inside' if inside else 'outside'} the spread of the same-shape dense control "
                 f"timed here ({same_shape['q1']:.3f}-{same_shape['q3']:.3f}).")
    budgets = sorted(set(sparse.budget))
    equal = budgets == [slim_budget] and control_budget == slim_budget
    lines.append(("All series had the same budget: " + slim_budget) if equal else
                 f"The budgets differ (slim: {slim_budget}; dense control: {control_budget}; lesson 07: "
                 f"{'; '.join(budgets)}), so the vertical gaps between lessons are not a comparison at equal budget.")
    return lines
