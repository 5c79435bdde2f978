"""Expected outputs for nbval, and the committed notebooks' hygiene."""

import json

import nbformat
import pytest

from nlpprune_lessons.course.expected import CHECK_MARKER, expected_path, record_expected, write_nbval_copy
from nlpprune_lessons.course.notebooks import make_student_copy, notebook_paths


def _executed_notebook(path, text="42\n"):
    checked = nbformat.v4.new_code_cell(f"{CHECK_MARKER}\nprint(42)", id="checked")
    checked.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    checked.execution_count = 1
    plain = nbformat.v4.new_code_cell("print('timing 3.2 s')", id="plain")
    plain.outputs = [nbformat.v4.new_output("stream", name="stdout", text="timing 3.2 s\n")]
    nb = nbformat.v4.new_notebook(cells=[checked, plain])
    nbformat.write(nb, path)
    return nb


def test_record_then_prepare_puts_back_only_the_checked_outputs(tmp_path):
    _executed_notebook(tmp_path / "run.ipynb")
    assert record_expected(tmp_path / "run.ipynb", tmp_path / "expected.json") == 1
    clean = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    for cell in clean.cells:
        cell.outputs, cell.execution_count = [], None
    nbformat.write(clean, tmp_path / "clean.ipynb")

    assert write_nbval_copy(tmp_path / "clean.ipynb", tmp_path / "expected.json", tmp_path / "copy.ipynb") == 1
    copy = nbformat.read(tmp_path / "copy.ipynb", as_version=4)
    assert copy.cells[0].outputs[0]["text"] == "42\n"
    assert copy.cells[0].execution_count == 1
    assert copy.cells[1].outputs == [] and copy.cells[1].execution_count is None
    nbformat.validate(copy)


def test_prepare_refuses_a_cell_edited_since_recording(tmp_path):
    nb = _executed_notebook(tmp_path / "run.ipynb")
    record_expected(tmp_path / "run.ipynb", tmp_path / "expected.json")
    nb.cells[0].source = f"{CHECK_MARKER}\nprint(43)"
    nbformat.write(nb, tmp_path / "edited.ipynb")
    with pytest.raises(ValueError, match="changed since its output was recorded"):
        write_nbval_copy(tmp_path / "edited.ipynb", tmp_path / "expected.json", tmp_path / "copy.ipynb")


def test_prepare_refuses_a_checked_cell_without_recording(tmp_path):
    _executed_notebook(tmp_path / "run.ipynb")
    (tmp_path / "expected.json").write_text("{}")
    with pytest.raises(ValueError, match="has no recorded output"):
        write_nbval_copy(tmp_path / "run.ipynb", tmp_path / "expected.json", tmp_path / "copy.ipynb")


def test_record_refuses_an_unexecuted_checked_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"{CHECK_MARKER}\nprint(1)")])
    nbformat.write(nb, tmp_path / "clean.ipynb")
    with pytest.raises(ValueError, match="has no output"):
        record_expected(tmp_path / "clean.ipynb", tmp_path / "expected.json")


COURSE_NOTEBOOKS = notebook_paths()


def test_the_course_has_its_first_notebooks():
    names = [p.name for p in COURSE_NOTEBOOKS]
    assert names[:2] == ["00_welcome_and_setup.ipynb", "01_text_preprocessing.ipynb"]


@pytest.mark.parametrize("path", COURSE_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean_and_fully_checked(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert nb.cells[0].cell_type == "markdown" and "Learning goals" in nb.cells[0].source
    assert any("## Summary" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert any("## Exercises" in c.source for c in nb.cells if c.cell_type == "markdown")
    # Every checked cell has a recorded output for its current source.
    checked = write_nbval_copy(path, expected_path(path), tmp_path / path.name)
    recorded = json.loads(expected_path(path).read_text()) if checked else {}
    assert checked == len(recorded), "tests/expected_outputs holds outputs of cells that no longer exist"
    # Solution cells are fenced, so the student copy can stub them.
    assert make_student_copy(path, tmp_path / f"student_{path.name}") >= 1
