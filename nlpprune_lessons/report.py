"""Markdown tables of measured results (``results/*.json``) for ``nlpprune report`` and ``run``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .results import load_results


def collect(directory: str | Path) -> list[Path]:
    """The results files ``*.json`` directly inside ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory; give a folder of results *.json")
    return sorted(directory.glob("*.json"))


def format_cell(value: object) -> str:
    """A value as Markdown cell text: floats to 4 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
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


def results_table(paths: Iterable[str | Path]) -> str:
    """One row per record of every results file: ``file``, ``mode``, then all record keys."""
    rows: list[dict] = []
    for path in paths:
        payload = load_results(path)
        rows += [
            {**record, "file": Path(path).name, "mode": payload["mode"]} for record in payload["records"]
        ]
    if not rows:
        raise ValueError("no results to show; give at least one results file with records")
    header = list(dict.fromkeys(["file", "mode", *(key for row in rows for key in row)]))
    return markdown_table(header, ([row.get(key) for key in header] for row in rows))
