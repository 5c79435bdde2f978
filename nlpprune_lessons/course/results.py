"""Measured numbers written as ``results/<name>.json``, read by notebook 11 and ``nlpprune report``."""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from nlpprune_lessons.core import config


def _plain(value):
    """JSON-ready: NaN (a column a record does not have, in a DataFrame) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return _plain(value.item())
    return value


def save_results(
    name: str, records: Iterable[Mapping], *, seed: int | None = None, directory: Path | None = None,
    mode: str | None = None,
) -> Path:
    """Write ``records`` (one dict per measured configuration) with the run's context.

    The file holds the mode (FAST/FULL: this process's, unless ``mode`` says otherwise, e.g. for a run
    whose records each name their own), seed, torch version, device, thread count and time, so a
    number is never read without knowing how it was made. Missing values (NaN) are written as null.
    """
    if not name or any(ch in name for ch in "/\\"):
        raise ValueError(f"name must be a plain file stem like '01_text_preprocessing', got {name!r}")
    rows = [{key: _plain(value) for key, value in r.items()} for r in records]
    if not rows:
        raise ValueError("no records to save")
    payload = {
        "name": name,
        "mode": mode if mode is not None else config.mode(),
        "seed": seed,
        "torch": torch.__version__,
        "device": str(config.get_device()),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "records": rows,
    }
    path = (directory or config.results_dir()) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_results(path: str | Path) -> dict:
    """Read one results file, checking it has the fields :func:`save_results` writes."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = {"name", "mode", "records"} - payload.keys()
    if missing:
        raise ValueError(f"{path} is not a results file (missing {sorted(missing)})")
    return payload


def reference_records(name: str) -> list[dict] | None:
    """The records of ``results/reference/<name>.json`` (the committed FULL run), or None where the
    course checkout is absent (an installed package has no reference files)."""
    root = config.PROJECT_ROOT
    path = root / "results" / "reference" / f"{name}.json" if root is not None else None
    if path is None or not path.exists():
        return None
    return load_results(path)["records"]


class RunJournal:
    """Finished runs of a long benchmark, one JSON line each in ``path``, keyed by everything that decides
    their result: a benchmark that is interrupted resumes where it stopped instead of starting over.
    ``fresh=True`` deletes the journal first."""

    def __init__(self, path: str | Path, fresh: bool = False):
        self.path = Path(path)
        if fresh:
            self.path.unlink(missing_ok=True)
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        try:
            self.runs: dict[str, dict] = {entry["key"]: entry["record"] for entry in map(json.loads, lines)}
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{self.path} is not a run journal ({err}); delete it or pass fresh=True") from err

    def add(self, key: str, record: Mapping) -> None:
        """Remember ``record`` under ``key`` (a string naming the run's settings) and append it to the file."""
        if not isinstance(key, str) or not key:
            raise TypeError(f"a journal key is a non-empty string naming the run's settings, got {key!r}")
        plain = {name: _plain(value) for name, value in record.items()}
        self.runs[key] = plain
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "record": plain}, default=float) + "\n")
