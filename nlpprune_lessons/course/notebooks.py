"""The course notebooks: find them, run them headless with timing and memory, make student copies."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from tqdm.auto import tqdm

from nlpprune_lessons.core import config

PATTERN = "[0-9][0-9]_*.ipynb"
FENCE_OPEN = "# YOUR CODE HERE"
FENCE_CLOSE = "# END YOUR CODE"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'
ERROR_LINES = 5


@dataclass
class RunRecord:
    """How one headless notebook run went."""

    notebook: str
    mode: str
    seconds: float
    peak_rss_mb: float | None
    ok: bool
    error: str | None
    results: list[Path]
    executed_path: Path
    html_path: Path


def _course_notebooks() -> list[Path]:
    if config.PROJECT_ROOT is None:
        raise FileNotFoundError(
            "the course notebooks are not available: nlpprune_lessons is not installed from a "
            "checkout of the course repository (clone it and run `pip install -e .` there)"
        )
    return sorted((config.PROJECT_ROOT / "notebooks").glob(PATTERN))


def notebook_paths(names: Sequence[str | Path] | None = None) -> list[Path]:
    """Course notebooks ``notebooks/NN_*.ipynb`` (all, sorted), or those named.

    A name is a path to an ``.ipynb`` file, a notebook stem (``"01_text_preprocessing"``), a file
    name, or just its number (``"01"``).
    """
    if names is None:
        return _course_notebooks()
    if isinstance(names, (str, Path)) or not all(isinstance(n, (str, Path)) for n in names):
        raise TypeError(
            "names must be a list of notebook names or paths, e.g. ['01', '03_unstructured_pruning']"
        )
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path)
            continue
        available = _course_notebooks()
        matches = [p for p in available if str(name) in (p.stem, p.name, p.stem.split("_")[0])]
        if not matches:
            listing = ", ".join(p.stem for p in available) or "none"
            raise ValueError(f"unknown notebook {str(name)!r}; available notebooks: {listing}")
        chosen.append(matches[0])
    return chosen


@contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    """Set (or leave alone, when ``value`` is None) one environment variable, restoring it after."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _peak_rss_mb(client: NotebookClient) -> float | None:
    """The kernel's peak resident memory (VmHWM) in MB, or None where /proc is unavailable."""
    pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _error_text(err: Exception, index: int | None) -> str:
    text = f"{err.ename}: {err.evalue}" if isinstance(err, CellExecutionError) else str(err).strip()
    where = "" if index is None else f"cell {index}: "
    return "\n".join(f"{where}{text}".splitlines()[:ERROR_LINES])


def execute_notebook(
    path: str | Path,
    out_dir: str | Path,
    fast: bool | None = None,
    timeout: int = 1800,
    progress: bool = True,
) -> RunRecord:
    """Run a notebook with the ``python3`` kernel in its own directory; write ``.ipynb`` and ``.html``.

    ``fast`` sets ``NLPPRUNE_FAST`` for the kernel (None keeps the current environment);
    ``timeout`` is the limit per cell in seconds. A failing cell gives ``ok=False`` and the
    notebook executed up to that cell is still written.
    """
    path = Path(path)
    if not path.is_file() or path.suffix != ".ipynb":
        raise ValueError(f"path must be an existing .ipynb file, got {str(path)!r}")
    if fast is not None and not isinstance(fast, bool):
        raise TypeError(f"fast must be True, False or None, got {fast!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ValueError(f"timeout must be a positive whole number of seconds, got {timeout!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(path.resolve().parent)}},
    )
    code_cells = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    error, peak = None, None
    start = time.time()
    with _environ(config.FAST_ENV, None if fast is None else str(int(fast))):
        mode = config.mode()
        results_dir = config.results_dir()
        bar = tqdm(total=len(code_cells), desc=path.stem, unit="cell", disable=not progress)
        index = None
        try:
            with client.setup_kernel():
                try:
                    for index in code_cells:
                        client.execute_cell(
                            nb.cells[index], index, execution_count=client.code_cells_executed + 1
                        )
                        bar.update()
                    client.set_widgets_metadata()
                finally:
                    peak = _peak_rss_mb(client)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            error = _error_text(err, index)
        finally:
            bar.close()
    seconds = time.time() - start

    executed_path = out_dir / path.name
    nbformat.write(nb, executed_path)
    html_path = executed_path.with_suffix(".html")
    html_path.write_text(HTMLExporter().from_notebook_node(nb)[0], encoding="utf-8")
    written = sorted(p for p in results_dir.glob("*.json") if p.stat().st_mtime >= start)
    return RunRecord(path.stem, mode, seconds, peak, error is None, error, written,
                     executed_path, html_path)


def stub_solution_source(source: str, where: str) -> str:
    """Replace the lines inside each ``# YOUR CODE HERE`` … ``# END YOUR CODE`` fence by a stub."""
    out: list[str] = []
    opened: str | None = None  # the indentation of the open fence
    fences = 0
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == FENCE_OPEN:
            if opened is not None:
                raise ValueError(f"{where}: nested '{FENCE_OPEN}' fences")
            opened = line[: len(line) - len(line.lstrip())]
            if not opened:  # a stub at the top level would stop Run All; inside a function only its call fails
                raise ValueError(f"{where}: '{FENCE_OPEN}' must be inside a function body (indented), so the "
                                 "learner's copy defines the function and its check reports 'not done yet'")
            out += [line, opened + STUB]
        elif stripped == FENCE_CLOSE:
            if opened is None:
                raise ValueError(f"{where}: '{FENCE_CLOSE}' without a '{FENCE_OPEN}' before it")
            opened = None
            fences += 1
            out.append(line)
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise ValueError(f"{where}: '{FENCE_OPEN}' is never closed by '{FENCE_CLOSE}'")
    if not fences:
        raise ValueError(
            f"{where}: a cell tagged 'solution' needs a '{FENCE_OPEN}' ... '{FENCE_CLOSE}' fence"
        )
    return "\n".join(out)


def make_student_copy(src: str | Path, dst: str | Path) -> int:
    """Write ``src`` to ``dst`` without outputs and with every fenced solution stubbed out.

    Only code cells tagged ``solution`` are changed; returns how many were stubbed.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"dst must differ from src; refusing to overwrite the solved notebook {src}")
    nb = nbformat.read(src, as_version=4)
    stubbed = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        if "solution" in cell.metadata.get("tags", []):
            cell.source = stub_solution_source(cell.source, f"{src.name}, cell {index}")
            stubbed += 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return stubbed


def write_student_copies(out_dir: str | Path, overwrite: bool = False) -> dict[str, int | None]:
    """Student copies of all course notebooks in ``out_dir``: {notebook file name: cells stubbed}.

    A copy that already exists is the learner's work and is kept (its count is None) unless
    ``overwrite``; delete a copy to get the course's current version of it."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    out_dir = Path(out_dir)
    counts: dict[str, int | None] = {}
    for path in notebook_paths():
        target = out_dir / path.name
        counts[path.name] = None if target.exists() and not overwrite else make_student_copy(path, target)
    return counts
