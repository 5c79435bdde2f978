"""Expected outputs of the notebooks' ``# NBVAL_CHECK_OUTPUT`` cells, kept outside the notebooks.

The notebooks are committed without outputs, but nbval compares a marked cell only when the
notebook holds its expected output (and skips it silently otherwise). So the expected outputs of
the marked cells live in ``tests/expected_outputs/<notebook>.json``, recorded from a FAST run, and
``make test`` runs nbval on copies of the notebooks with those outputs put back.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from nlpprune_lessons.core import config

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def _checked_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(CHECK_MARKER)]


def expected_path(notebook: str | Path) -> Path:
    """Where the expected outputs of ``notebook`` are stored."""
    if config.PROJECT_ROOT is None:
        raise FileNotFoundError("expected outputs live in a checkout of the course repository")
    return config.PROJECT_ROOT / "tests" / "expected_outputs" / f"{Path(notebook).stem}.json"


def record_expected(executed: str | Path, dest: str | Path) -> int:
    """Save the outputs of the marked cells of an executed notebook; returns how many cells."""
    nb = nbformat.read(executed, as_version=4)
    expected = {}
    for cell in _checked_cells(nb):
        if not cell.outputs:
            raise ValueError(f"{executed}: marked cell {cell.id} has no output; was the notebook run?")
        if any(o.output_type == "error" for o in cell.outputs):
            raise ValueError(f"{executed}: marked cell {cell.id} raised an error")
        outputs = [{k: v for k, v in o.items() if k not in ("metadata", "execution_count")}
                   for o in cell.outputs]
        expected[cell.id] = {"source": cell.source, "outputs": outputs}
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(expected)


def write_nbval_copy(src: str | Path, expected: str | Path, dst: str | Path) -> int:
    """Copy ``src`` to ``dst`` with the expected outputs put into its marked cells.

    Raises ``ValueError`` when a marked cell has no recorded output or its source changed since
    the recording (re-record with ``nlpprune expected record``).
    """
    src, dst = Path(src), Path(dst)
    nb = nbformat.read(src, as_version=4)
    cells = _checked_cells(nb)
    recorded = json.loads(Path(expected).read_text(encoding="utf-8")) if cells else {}
    for count, cell in enumerate(cells, start=1):
        entry = recorded.get(cell.id)
        if entry is None or entry["source"] != cell.source:
            state = "has no recorded output" if entry is None else "changed since its output was recorded"
            raise ValueError(
                f"{src.name}: marked cell {cell.id} {state}; run `nlpprune expected record {src.stem}`"
            )
        cell.outputs = [nbformat.from_dict({**o, **({"metadata": {}} if o["output_type"] != "stream" else {})})
                        for o in entry["outputs"]]
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
        cell.execution_count = count
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return len(cells)
