"""The time and memory banner at the top of each notebook, read from the measured runs
(``results/reference/notebook_runtime.json``, written by ``benchmarks/notebook_runtime.py``)."""

from __future__ import annotations

import re

from nlpprune_lessons.course.report import format_duration
from nlpprune_lessons.course.results import reference_records

RUNTIME_NAME = "notebook_runtime"
SMALL_MACHINE_MB = 2048  # Binder's limit, and many classroom laptops' free memory
_STEM = re.compile(r"^\d\d_[a-z0-9_]+$")


def _measured(record: dict | None) -> str:
    if record is None:
        return "not measured"
    peak = record.get("peak_rss_mb")
    memory = f", peak memory {peak / 1024:.1f} GB" if peak is not None else ""
    return f"about {format_duration(record['seconds'])}{memory}"


def runtime_banner(notebook: str) -> str:
    """One Markdown paragraph: how long ``notebook`` (a stem like ``"03_unstructured_pruning"``) takes in
    FAST and FULL mode and its peak memory, as measured on 2 CPU cores, with the advice for 2 GB machines."""
    if not isinstance(notebook, str) or not _STEM.match(notebook):
        raise ValueError(f"notebook must be a stem like '03_unstructured_pruning', got {notebook!r}")
    records = reference_records(RUNTIME_NAME) or []
    runs = {r["notebook_mode"]: r for r in records
            if r.get("notebook") == notebook and r.get("ok", True) and r.get("seconds") is not None}
    fast, full = runs.get("FAST"), runs.get("FULL")
    text = (f"**Run time** (measured headless on 2 CPU cores, `benchmarks/notebook_runtime.py`): "
            f"FAST mode {_measured(fast)}; FULL mode {_measured(full)}.")
    peaks = [r["peak_rss_mb"] for r in (fast, full) if r is not None and r.get("peak_rss_mb") is not None]
    if peaks and max(peaks) > SMALL_MACHINE_MB / 2:
        text += (" On a machine with 2 GB of memory (Binder, many laptops), shut down the other notebooks' "
                 "kernels first (*Kernel › Shut Down All Kernels*, then restart this one).")
    else:
        text += " On a 2 GB machine (Binder), run one notebook at a time: shut down the kernels you are done with."
    return text


def show_runtime(notebook: str) -> None:
    """Display :func:`runtime_banner` as Markdown in a notebook (plain text elsewhere)."""
    text = runtime_banner(notebook)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # outside IPython: plain text
        print(text)
        return
    display(Markdown(text))
