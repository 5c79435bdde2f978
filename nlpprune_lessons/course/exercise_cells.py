"""The exercises of a notebook as cells that run on their own: find them, run them solved or stubbed.

An exercise is a code cell tagged ``solution`` (imports, then a function whose body holds the fenced
solution) and the next code cell, which calls a ``check_*`` function (see
:mod:`nlpprune_lessons.lessons.exercises.protocol`). Running the pair in a fresh namespace, with the
solution and with the student copy's stub, tests every exercise without running whole notebooks.
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nlpprune_lessons.course.notebooks import stub_solution_source
from nlpprune_lessons.lessons.exercises.protocol import NOT_DONE_MARK, PASS_MARK

CHECK_CALL = re.compile(r"^\s*(check_\w+)\(", re.MULTILINE)
FUNCTION = re.compile(r"^def (\w+)\(", re.MULTILINE)


@dataclass(frozen=True)
class ExerciseCells:
    """One exercise of ``notebook``: the solution cell's and the check cell's index and source."""

    notebook: str
    solution_index: int
    check_index: int
    solution: str
    check: str

    @property
    def check_name(self) -> str:
        return CHECK_CALL.search(self.check).group(1)

    @property
    def functions(self) -> list[str]:
        """The functions the solution cell defines (the learner writes their bodies)."""
        return FUNCTION.findall(self.solution)


@dataclass(frozen=True)
class ExerciseRun:
    """What running an exercise's two cells printed: ``status`` is ``"passed"``, ``"not done"`` or
    ``"failed"`` (an exception, whose text is in ``error``, or no result line)."""

    status: str
    output: str
    error: str | None


def notebook_exercises(path: str | Path) -> list[ExerciseCells]:
    """The exercises of a notebook, in order; ``ValueError`` if a solution cell is not followed by a
    code cell that calls a ``check_*`` function."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "solution" not in cell.metadata.get("tags", []):
            continue
        following = next((j for j in range(index + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        if following is None or not CHECK_CALL.search(nb.cells[following].source):
            raise ValueError(f"{path.name}, cell {index}: a solution cell must be followed by a code cell that "
                             "calls its check_* function")
        found.append(ExerciseCells(path.name, index, following, cell.source, nb.cells[following].source))
    return found


def run_exercise(exercise: ExerciseCells, *, stubbed: bool) -> ExerciseRun:
    """Run the exercise's solution cell (or its stub, as the learner's copy has it) and check cell in a
    fresh namespace of this process, capturing what they print."""
    source = stub_solution_source(exercise.solution, exercise.notebook) if stubbed else exercise.solution
    namespace: dict = {"__name__": "__exercise__"}
    printed = io.StringIO()
    error = None
    with contextlib.redirect_stdout(printed):
        try:
            exec(compile(source, f"<{exercise.notebook} cell {exercise.solution_index}>", "exec"), namespace)
            exec(compile(exercise.check, f"<{exercise.notebook} cell {exercise.check_index}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - any failure is the run's result
            error = traceback.format_exc()
    output = printed.getvalue()
    lines = output.strip().splitlines()
    if error is None and lines and lines[-1].startswith(PASS_MARK):
        status = "passed"
    elif error is None and lines and lines[-1].startswith(NOT_DONE_MARK):
        status = "not done"
    else:
        status = "failed"
    return ExerciseRun(status, output, error)
