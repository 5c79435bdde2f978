"""Markdown tables of measured results (``results/*.json``) for ``nlpprune report`` and ``run``, and the
results pages (``docs/results/*.md``) and README lesson times generated from ``results/reference/``."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nlpprune_lessons.course.results import load_results

CONTEXT_KEYS = ("mode", "seed", "torch", "device", "threads")
LONG_CELL = 240  # a list or dict longer than this, as text, is shown by its size


def collect(directory: str | Path) -> list[Path]:
    """The results files ``*.json`` directly inside ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory; give a folder of results *.json")
    return sorted(directory.glob("*.json"))


def _inner(value: object) -> str:
    """A value inside a list or dict: like :func:`format_cell`, but None is written out."""
    return "None" if value is None else format_cell(value)


def format_cell(value: object) -> str:
    """A value as Markdown cell text: floats to 4 significant digits (whole ones as integers), None as empty.

    Lists and dicts are written item by item the same way; one longer than ``LONG_CELL`` characters is
    shown by its size (the results file holds it in full).
    """
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e9:
            return str(int(value))  # a count that passed through a float column
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_inner(v) for v in value) + "]"
        return text if len(text) <= LONG_CELL else f"[{len(value)} values]"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_inner(v)}" for k, v in value.items()) + "}"
        return text if len(text) <= LONG_CELL else f"{{{len(value)} entries}}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned Markdown table; cells are formatted with :func:`format_cell`."""
    cells = [[format_cell(v) for v in row] for row in rows]
    if any(len(row) != len(header) for row in cells):
        raise ValueError(f"every row must have {len(header)} cells, one per header column")
    widths = [max([len(h), 3, *(len(row[i]) for row in cells)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def run_context(payload: Mapping) -> str:
    """How a results file was made: ``mode FULL, seed 0, torch ..., device cpu, threads 2``."""
    return ", ".join(f"{key} {payload[key]}" for key in CONTEXT_KEYS if payload.get(key) is not None)


# Columns that name a kind of record, for the title of a table split off by shape (``split=True``).
_KIND_COLUMNS = (("target", "targets"), ("stricter_check", "stricter checks"),
                 ("benchmark_seconds", "benchmark run"))


def _shapes(rows: list[dict]) -> list[list[dict]]:
    """``rows`` split by the columns they have a value in: a row whose columns are a subset of another
    row's joins the first row shape that no other contains; groups are ordered by first row."""
    shapes = list(dict.fromkeys(frozenset(k for k, v in row.items() if v is not None) for row in rows))
    maximal = [s for s in shapes if not any(s < t for t in shapes)]
    groups: dict[frozenset, list[dict]] = {}
    for row in rows:
        shape = frozenset(k for k, v in row.items() if v is not None)
        home = next((t for t in maximal if shape <= t), shape)
        groups.setdefault(home, []).append(row)
    return list(groups.values())


def _shape_label(header: Sequence[str], rows: list[dict], others: list[list[dict]]) -> str | None:
    """A title for one shape of records: its kind (``targets``), or the first column that has one value
    in all its rows, a value no other shape has in that column (``model: classifier``)."""
    for column, label in _KIND_COLUMNS:
        if column in header:
            return label
    for column in header:
        values = {format_cell(row.get(column)) for row in rows}
        elsewhere = [format_cell(row[column]) for other in others for row in other if column in row]
        if len(values) == 1 and elsewhere and not values & set(elsewhere):
            return f"{column}: {values.pop()}"
    return None


def record_tables(payload: Mapping, *, omit: Collection[str] = (), split: bool = False
                  ) -> list[tuple[str | None, str]]:
    """``(label, Markdown table)`` for one results file: one table per ``experiment`` (label: its name,
    or None), each with only the columns its records use; ``omit`` leaves columns out.

    With ``split``, an experiment whose records differ in shape (a file's run records, its targets and
    its benchmark summary) gets one table per shape, columns without any value dropped; the label
    adds the shape's kind (``targets``) or the value its first column has in every row.
    """
    experiments: dict[object, list[dict]] = {}
    for record in payload["records"]:
        row = {k: v for k, v in record.items() if k != "experiment" and k not in omit}
        experiments.setdefault(record.get("experiment"), []).append(row)
    tables = []
    for experiment, rows in experiments.items():
        parts = _shapes(rows) if split else [rows]
        for part in parts:
            header = list(dict.fromkeys(
                key for row in part for key, value in row.items() if not split or value is not None))
            labels = [str(experiment)] if experiment is not None else []
            if len(parts) > 1:
                others = [other for other in parts if other is not part]
                labels += [label] if (label := _shape_label(header, part, others)) else []
            table = markdown_table(header, ([row.get(key) for key in header] for row in part))
            tables.append((" — ".join(labels) or None, table))
    return tables


def results_table(paths: Iterable[str | Path]) -> str:
    """Markdown tables of results files: one per file, or per ``experiment`` when records name one.

    Each table is headed by the file name and how it was made (mode, seed, torch, device, threads)
    and has only the columns its records use.
    """
    tables = []
    for path in paths:
        payload = load_results(path)
        context = run_context(payload)
        for label, table in record_tables(payload):
            title = f"**{Path(path).name}**" + (f" — {label}" if label is not None else "")
            tables.append(f"{title} ({context})\n\n{table}")
    if not tables:
        raise ValueError("no results to show; give at least one results file with records")
    return "\n\n".join(tables)


# --- results pages (docs/results/*.md) ---------------------------------------------------------------

PAGE_COMMAND = "nlpprune report --pages docs/results"
# Record fields kept in the JSON but not shown on the pages: when a run was made and notes on how it went.
PAGE_OMIT = ("created", "note")


@dataclass(frozen=True)
class ResultsPage:
    """One results page: its title, the results files it shows, and what they measured (no numbers)."""

    title: str
    files: tuple[str, ...]  # names in results/reference/, shown in this order
    about: str
    variants: str | None = None  # a pattern of further runs of files[0], shown after it


# The one place that says which lesson shows which results files.
RESULTS_PAGES: dict[str, ResultsPage] = {
    "01_text_preprocessing": ResultsPage(
        "Lesson 01: text preprocessing", ("01_text_preprocessing.json",),
        "Whether removing stopwords helps a bag-of-words sentiment classifier on Rotten Tomatoes (accuracy "
        "overall and on reviews with negations, averaged over seeds), the vocabulary size and out-of-"
        "vocabulary rate of each normalisation, word vs WordPiece tokens, and the padding share of random vs "
        "bucketed batches. The notebook writes these numbers itself: `nlpprune run 01 --full`."),
    "02_rnn_text_models": ResultsPage(
        "Lesson 02: RNN text models", ("02_rnn_text_models.json",),
        "The LSTM sentiment classifier and the word-level LSTM language model trained from scratch: "
        "parameters, epochs, test accuracy and F1 against the majority class, test perplexity against a "
        "unigram model. The notebook writes these numbers itself: `nlpprune run 02 --full`."),
    "03_unstructured_pruning": ResultsPage(
        "Lesson 03: unstructured pruning", ("rnn_unstructured.json",),
        "Lesson 02's classifier and language model pruned by magnitude (global and layer-wise), random and "
        "Taylor scores, one-shot, iterative and gradual, at budgets counted in fine-tuning rounds and against "
        "dense controls fine-tuned as long: validation and test accuracy or perplexity with their noise (standard "
        "error, bootstrap interval), sparsity of the prunable weights and of all parameters, train accuracy and "
        "accuracy on perturbed reviews, L1 with its strength chosen on validation against the same round "
        "without the penalty, the lottery ticket rewound to initialisation and late, the verdicts (a difference "
        "under two standard errors is a tie) and the course's targets. The classifier's schedule comparison has "
        "three seeds. `python benchmarks/rnn_unstructured.py` reproduces it; the notebook prints its readings "
        "beside its own."),
    "04_structured_pruning_rnn": ResultsPage(
        "Lesson 04: structured pruning of RNNs", ("rnn_structured.json",),
        "Hidden units removed from lesson 02's LSTM classifier and language model by weight norm, activation and "
        "Taylor score, with a fine-tuning round after each step (three seeds for the classifier), against a dense "
        "control fine-tuned as many rounds and a small dense model of the cut size trained from scratch with the "
        "same budget: validation and test accuracy or perplexity with their noise, parameters, file size, the FLOP "
        "ratio and the measured latency of the recurrent part (median and interquartile range over alternating "
        "rounds, each shape timed once), and the course's targets. `python benchmarks/rnn_structured.py` "
        "reproduces it."),
    "05_text_gan_pruning": ResultsPage(
        "Lesson 05: pruning a text GAN", ("text_gan.json",),
        "The MLE generator, adversarial fine-tuning and the temperature curves (BLEU, self-BLEU, distinct-n and "
        "perplexity on short Gutenberg sentences); then the generator's hidden units removed by weight norm or by "
        "GAL's masks driven to exactly zero (penalty chosen on validation), recovered by MLE, teacher matching or "
        "teacher matching with an adversary, each with the same budget and early stopping on validation, against "
        "a dense control trained as long: test perplexity with its bootstrap interval, the verdicts, size, FLOP "
        "ratio, latency and the course's targets. `python benchmarks/text_gan.py` reproduces it."),
    "06_07_sparse_bert": ResultsPage(
        "Lessons 06 and 07: fine-tuned and sparse BERT", ("bert_sparse.json",),
        "MiniLM fine-tuned for sentiment on Rotten Tomatoes, then pruned to several encoder sparsities by "
        "one-shot magnitude, gradual magnitude and movement pruning, with and without distillation, each "
        "method at the learning rate validation chose: validation and test accuracy, sparse storage, masked "
        "latency and the course's targets. `python benchmarks/bert_sparse.py` reproduces the main run; each "
        "further run after it lists the settings in which it differs.",
        variants="bert_sparse_*.json"),
    "08_slim_bert": ResultsPage(
        "Lesson 08: slim BERT", ("bert_structured.json",),
        "MiniLM slimmed step by step (attention heads, FFN neurons, whole layers), each step recovered by "
        "fine-tuning distilled from the dense teacher, and the same cuts without recovery: accuracy before "
        "and after recovery with its standard error, parameters, FLOPs, file size, a dense control trained "
        "with the same recipe for the same steps and each slim model's verdict against it and against the "
        "untrained dense model (a difference under two standard errors is a tie), measured latency (median "
        "and interquartile range over alternating rounds, the dense control's speedup showing the noise) and "
        "the course's targets. `python benchmarks/bert_structured.py` reproduces it; the run's arguments are "
        "in its benchmark-run table."),
    "09_pruning_for_generation": ResultsPage(
        "Lesson 09: pruning for generation", ("lm_pruning.json",),
        "SmolLM2-135M pruned one-shot by magnitude and Wanda, per row and in the N:M pattern, recovered by "
        "the OBS weight update under a fixed mask, by SparseGPT and by a short fine-tune with the zeros kept: "
        "perplexity on Chesterton (choices on validation, test once per reported configuration with its "
        "standard error), greedy continuations, magnitude's ties, calibration-set size and the latency of a "
        "masked layer. "
        "`python benchmarks/lm_pruning.py` reproduces the default set, `python benchmarks/lm_pruning.py "
        "--experiments fine-tune` the fine-tunes."),
    "notebook_runtime": ResultsPage(
        "Notebook run times", ("notebook_runtime.json",),
        "Wall time and peak memory of each notebook run headless in FAST and FULL mode, against the "
        "course's limits; the README's lesson table takes its times from here. "
        "`python benchmarks/notebook_runtime.py` reproduces it."),
}


def _page_files(page: ResultsPage, names: Collection[str]) -> list[str]:
    """The results files a page shows, in order: its files, then its variants sorted by name."""
    files = [name for name in page.files if name in names]
    if page.variants:
        files += sorted(n for n in names if fnmatch.fnmatchcase(n, page.variants) and n not in page.files)
    return files


def _settings(payload: Mapping) -> tuple[dict, dict]:
    """A benchmark's arguments (its ``args`` record) and the columns with one value in every record
    that has them (and more than one record has them)."""
    args: dict = {}
    values: dict[str, list] = {}
    for record in payload["records"]:
        if isinstance(record.get("args"), dict):
            args.update(record["args"])
        for key, value in record.items():
            if key not in PAGE_OMIT and value is not None and not isinstance(value, (dict, list)):
                values.setdefault(key, []).append(value)
    constant = {k: v[0] for k, v in values.items() if len(v) > 1 and len(set(v)) == 1}
    return args, constant


def _differences(main: Mapping, variant: Mapping) -> list[str]:
    """What a further run set differently from the main run: every argument either recorded, and every
    column with one value in both files; an argument a file did not record is read from that column."""
    (main_args, main_constant), (args, constant) = _settings(main), _settings(variant)
    keys = dict.fromkeys([*main_args, *args, *(k for k in constant if k in main_constant)])
    lines = []
    for key in keys:
        mine = args.get(key, constant.get(key, ...))
        theirs = main_args.get(key, main_constant.get(key, ...))
        if mine != theirs:
            lines.append(f"`{key}` {'not recorded' if mine is ... else _inner(mine)} "
                         f"(main run: {'not recorded' if theirs is ... else _inner(theirs)})")
    return lines


def _file_section(name: str, payload: Mapping, *, main: tuple[str, Mapping] | None = None,
                  has_variants: bool = False) -> str:
    heading = f"## Main run (`{name}`)" if has_variants else f"## `{name}`"
    parts = []
    if main is not None:
        variant = Path(name).stem.removeprefix(Path(main[0]).stem).strip("_").replace("_", " ")
        heading = f"## Further run: {variant} (`{name}`)"
        differences = _differences(main[1], payload)
        parts.append("Differs from the main run in: " + ("; ".join(differences) if differences else
                                                        "nothing recorded") + ".")
    parts.insert(0, f"How it was made: {run_context(payload)}.")
    for label, table in record_tables(payload, omit=PAGE_OMIT, split=True):
        parts.append(f"### {label}\n\n{table}" if label else table)
    return "\n\n".join([heading, *parts])


def render_page(stem: str, directory: str | Path) -> str:
    """The Markdown text of the results page ``stem`` from the results files in ``directory``."""
    page, directory = RESULTS_PAGES[stem], Path(directory)
    files = _page_files(page, {p.name for p in collect(directory)})
    if not files:
        raise FileNotFoundError(f"none of {', '.join(page.files)} is in {directory}")
    payloads = {name: load_results(directory / name) for name in files}
    sources = ", ".join(f"`results/reference/{name}`" for name in files)
    generated = (f"Generated by `{PAGE_COMMAND}` from {sources}: change those files or the code, not this "
                 "page. Lists too long for a table appear as their size; the results files hold them in full.")
    sections = [f"# {page.title}", page.about, generated]
    for name in files:
        is_variant = page.variants is not None and name not in page.files
        sections.append(_file_section(name, payloads[name], main=(files[0], payloads[files[0]]) if is_variant
                                      else None, has_variants=len(files) > len(page.files)))
    return "\n\n".join(sections) + "\n"


def render_index(directory: str | Path) -> str:
    """The Markdown text of ``index.md``: every results page and the files it shows."""
    names = {p.name for p in collect(directory)}
    rows = [[f"[{page.title}]({stem}.md)", ", ".join(_page_files(page, names))]
            for stem, page in RESULTS_PAGES.items() if _page_files(page, names)]
    about = ("The course's reference numbers: FULL-mode runs of the notebooks and of the benchmarks in "
             "`benchmarks/`, committed under `results/reference/`, and the notebooks' run times in both modes. "
             "Every page is generated from those files.")
    regenerate = (f"Regenerate the pages with `{PAGE_COMMAND}`; `{PAGE_COMMAND} --check` exits with status 1 "
                  "when a page differs from what the files give.")
    table = markdown_table(["page", "results files"], rows)
    return "\n\n".join(["# Measured results", about, regenerate, table]) + "\n"


def build_pages(directory: str | Path) -> dict[str, str]:
    """``{file name: Markdown text}`` of every results page and ``index.md`` for the results files in
    ``directory``. Raises ValueError when a results file is on no page."""
    names = {p.name for p in collect(directory)}
    shown = {name for page in RESULTS_PAGES.values() for name in _page_files(page, names)}
    if names - shown:
        raise ValueError(f"{', '.join(sorted(names - shown))} is on no results page; "
                         "add it to RESULTS_PAGES in nlpprune_lessons/course/report.py")
    pages = {f"{stem}.md": render_page(stem, directory)
             for stem, page in RESULTS_PAGES.items() if _page_files(page, names)}
    pages["index.md"] = render_index(directory)
    return pages


# --- the README's lesson times -------------------------------------------------------------------------

TIMES_START, TIMES_END = "<!-- lesson-times:start -->", "<!-- lesson-times:end -->"
RUNTIME_FILE = "notebook_runtime.json"
_NOTEBOOK = re.compile(r"\b(\d\d_[a-z0-9_]+)\b")


def format_duration(seconds: float) -> str:
    """Seconds as ``44 s`` or ``3 min 52 s``, rounded to whole seconds."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def lesson_times(directory: str | Path) -> dict[tuple[str, str], str]:
    """``{(notebook stem, "FAST" or "FULL"): "3 min 52 s"}`` from ``notebook_runtime.json`` in
    ``directory`` (runs that failed are left out; no file, no times)."""
    path = Path(directory) / RUNTIME_FILE
    if not path.is_file():
        return {}
    return {(r["notebook"], r["notebook_mode"]): format_duration(r["seconds"])
            for r in load_results(path)["records"] if r.get("ok", True) and r.get("seconds") is not None}


def fill_lesson_times(text: str, directory: str | Path) -> str:
    """``text`` (the README) with the last two cells (FAST, FULL) of every lesson row between the
    ``lesson-times`` markers set from the reference run times; "—" where none was recorded."""
    start, end = text.find(TIMES_START), text.find(TIMES_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no lesson table between {TIMES_START} and {TIMES_END}")
    times = lesson_times(directory)
    lines = text[start:end].split("\n")
    for i, line in enumerate(lines):
        cells = line.strip().strip("|").split("|")
        match = _NOTEBOOK.search(cells[1]) if line.startswith("|") and len(cells) >= 4 else None
        if match:
            fast, full = (times.get((match.group(1), mode), "—") for mode in ("FAST", "FULL"))
            cells = [c.strip() for c in cells[:-2]] + [fast, full]
            lines[i] = "| " + " | ".join(cells) + " |"
    return text[:start] + "\n".join(lines) + text[end:]


# --- writing and checking ------------------------------------------------------------------------------

def generated_files(directory: str | Path, pages_dir: str | Path, readme: str | Path | None
                    ) -> dict[Path, str]:
    """``{path: text}`` that ``nlpprune report --pages`` writes: the pages, and the README with its
    lesson times when ``readme`` is given."""
    files = {Path(pages_dir) / name: text for name, text in build_pages(directory).items()}
    if readme is not None:
        files[Path(readme)] = fill_lesson_times(Path(readme).read_text(encoding="utf-8"), directory)
    return files


def write_generated(files: Mapping[Path, str]) -> list[Path]:
    """Write the files whose text changed; returns those written."""
    written = []
    for path, text in files.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def check_generated(files: Mapping[Path, str], pages_dir: str | Path) -> list[str]:
    """One line per file that differs from what would be generated, is missing, or is a page in
    ``pages_dir`` that nothing generates; empty when all match."""
    problems = []
    for path, text in files.items():
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the results files give")
    for path in sorted(Path(pages_dir).glob("*.md")):
        if path not in files:
            problems.append(f"{path}: not generated from any results file (delete it)")
    return problems
