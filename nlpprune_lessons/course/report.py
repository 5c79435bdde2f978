"""Markdown tables of measured results (``results/*.json``) for ``nlpprune report`` and ``run``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from nlpprune_lessons.course.results import load_results


def collect(directory: str | Path) -> list[Path]:
    """The results files ``*.json`` directly inside ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory; give a folder of results *.json")
    return sorted(directory.glob("*.json"))


def format_cell(value: object) -> str:
    """A value as Markdown cell text: floats to 4 significant digits (whole ones as integers), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e9:
            return str(int(value))  # a count that passed through a float column
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
    """Markdown tables of results files: one per file, or per ``experiment`` when records name one.

    Each table is headed by the file name and how it was made (mode, seed, torch, device, threads)
    and has only the columns its records use.
    """
    tables = []
    for path in paths:
        payload = load_results(path)
        groups: dict[object, list[dict]] = {}
        for record in payload["records"]:
            groups.setdefault(record.get("experiment"), []).append(record)
        context = ", ".join(f"{key} {payload[key]}" for key in ("mode", "seed", "torch", "device", "threads")
                            if payload.get(key) is not None)
        for experiment, rows in groups.items():
            title = f"**{Path(path).name}**" + (f" — {experiment}" if experiment is not None else "")
            header = list(dict.fromkeys(key for row in rows for key in row if key != "experiment"))
            tables.append(f"{title} ({context})\n\n"
                          + markdown_table(header, ([row.get(key) for key in header] for row in rows)))
    if not tables:
        raise ValueError("no results to show; give at least one results file with records")
    return "\n\n".join(tables)
