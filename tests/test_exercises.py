"""Every exercise of every notebook, run in isolation as the learner's copy has it (stubbed) and as the
repository has it (solved): the stub reports "not done yet" without a traceback, the solution passes;
and the course-wide rules: at least three checked exercises per lesson 01-09, each numbered by its
lesson, none used by a later cell, student copies kept once written."""

from __future__ import annotations

import re

import nbformat
import pytest
import torch

from nlpprune_lessons.course import notebooks as course_notebooks
from nlpprune_lessons.course.exercise_cells import notebook_exercises, run_exercise
from nlpprune_lessons.course.notebooks import STUB, notebook_paths, write_student_copies
from nlpprune_lessons.lessons import exercises

EXERCISES = [exercise for path in notebook_paths() for exercise in notebook_exercises(path)]
IDS = [f"{e.notebook[:2]}-{e.check_name}" for e in EXERCISES]


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_the_solution_passes_its_check_and_leaves_the_global_rng_alone(exercise):
    state = torch.random.get_rng_state()
    run = run_exercise(exercise, stubbed=False)
    assert run.status == "passed", f"{exercise.notebook} cell {exercise.solution_index}:\n{run.output}\n{run.error}"
    assert torch.equal(torch.random.get_rng_state(), state), "the check changed what later cells draw"


def test_zero_fraction_check_takes_any_number_and_names_a_tolerance():
    assert exercises.check_zero_fraction(lambda t: (t == 0).float().mean().item()) == exercises.PASSED  # float32 mean
    assert exercises.check_zero_fraction(lambda t: (t == 0).double().mean()) == exercises.PASSED  # a 0-d tensor
    with pytest.raises(exercises.ExerciseError, match=r"for \[-0\.0, 1e-12, 0\.0\] \(float64\), the share of zeros: "
                                                      r"expected 0\.666667, got 1\. Count only the entries exactly"):
        exercises.check_zero_fraction(lambda t: (t.abs() < 1e-6).float().mean().item())


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_the_blank_stub_reports_not_done_yet_without_a_traceback(exercise):
    run = run_exercise(exercise, stubbed=True)
    assert run.status == "not done", f"{exercise.notebook} cell {exercise.solution_index}:\n{run.output}\n{run.error}"
    assert run.error is None and "Traceback" not in run.output
    assert "not done yet" in run.output and len(run.output.strip().splitlines()) == 1


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_each_check_is_numbered_by_its_lesson_and_exported(exercise):
    check = getattr(exercises, exercise.check_name)
    assert check.exercise_number.startswith(exercise.notebook[:2] + ".")
    assert exercise.check_name in exercises.__all__


def test_every_lesson_has_at_least_three_checked_exercises_with_distinct_numbers():
    per_lesson: dict[str, list[str]] = {}
    for exercise in EXERCISES:
        per_lesson.setdefault(exercise.notebook[:2], []).append(getattr(exercises, exercise.check_name).exercise_number)
    short = {lesson: len(per_lesson.get(lesson, [])) for lesson in [f"{n:02d}" for n in range(1, 10)]
             if len(per_lesson.get(lesson, [])) < 3}
    assert not short, f"lessons with fewer than 3 checked exercises: {short}"
    for lesson, numbers in per_lesson.items():
        assert len(set(numbers)) == len(numbers), f"lesson {lesson} repeats an exercise number: {numbers}"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_no_later_cell_uses_a_learners_function(path):
    """A later cell that needs an exercise's result calls the library, so a copy with blank exercises
    runs to the end."""
    nb = nbformat.read(path, as_version=4)
    for exercise in notebook_exercises(path):
        for name in exercise.functions:
            used = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and i > exercise.check_index
                    and re.search(rf"(?<![.\w]){name}\b", cell.source)]  # library.name is not it
            assert not used, f"{path.name}: cells {used} use {name}, which the learner writes in cell {exercise.solution_index}"


def test_student_copies_are_written_once_and_never_overwrite_a_learners_edits(tmp_path):
    counts = write_student_copies(tmp_path)
    assert set(counts) == {p.name for p in notebook_paths()} and all(c is not None for c in counts.values())
    first = tmp_path / "00_welcome_and_setup.ipynb"

    def sources():
        return "\n".join(cell.source for cell in nbformat.read(first, as_version=4).cells)

    assert STUB in sources()
    edited = nbformat.read(first, as_version=4)
    for cell in edited.cells:
        cell.source = cell.source.replace(STUB, "return 0.0")
    nbformat.write(edited, first)
    again = write_student_copies(tmp_path)
    assert all(c is None for c in again.values())  # every copy exists: all kept
    assert "return 0.0" in sources() and STUB not in sources()
    assert write_student_copies(tmp_path, overwrite=True)["00_welcome_and_setup.ipynb"] == 1
    assert STUB in sources()
    with pytest.raises(TypeError, match="overwrite"):
        write_student_copies(tmp_path, overwrite="yes")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["00_welcome_and_setup", "02_rnn_text_models"])
def test_a_student_copy_with_every_exercise_blank_runs_to_the_end(tmp_path, name):
    """The learner's copy, as `make lab` opens it, in FAST mode: Run All does not stop at a blank exercise."""
    source = next(p for p in notebook_paths() if p.stem == name)
    copy = tmp_path / "student" / source.name
    course_notebooks.make_student_copy(source, copy)
    record = course_notebooks.execute_notebook(copy, tmp_path / "run", fast=True, timeout=600, progress=False)
    assert record.ok, record.error
    executed = nbformat.read(record.executed_path, as_version=4)
    for exercise in notebook_exercises(source):  # the student copy has the same cells as the solved notebook
        printed = "".join(o.get("text", "") for o in executed.cells[exercise.check_index].outputs)
        assert "not done yet" in printed and "Traceback" not in printed, (exercise.check_name, printed)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_each_notebook_opens_with_its_measured_time_and_memory(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].cell_type == "code" and f'show_runtime("{path.stem}")' in nb.cells[1].source
