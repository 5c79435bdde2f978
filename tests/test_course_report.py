"""The results pages (``docs/results/*.md``) and the README's lesson times are generated from
``results/reference/*.json`` by ``nlpprune report --pages``, never typed: these tests keep them so."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from nlpprune_lessons.course.cli import main
from nlpprune_lessons.course.report import (
    RESULTS_PAGES,
    TIMES_END,
    TIMES_START,
    check_generated,
    fill_lesson_times,
    generated_files,
)
from nlpprune_lessons.course.results import save_results

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
PAGES = ROOT / "docs" / "results"
README = ROOT / "README.md"
DATE = re.compile(r"\b20\d\d-\d\d-\d\d")


def test_committed_pages_and_readme_times_are_what_the_reference_results_give():
    problems = check_generated(generated_files(REFERENCE, PAGES, README), PAGES)
    assert not problems, "regenerate with `nlpprune report --pages docs/results`:\n" + "\n".join(problems)


def test_every_page_is_listed_and_no_page_carries_a_date():
    names = {p.name for p in PAGES.glob("*.md")}
    assert names == {f"{stem}.md" for stem in RESULTS_PAGES} | {"index.md"}
    index = (PAGES / "index.md").read_text(encoding="utf-8")
    for stem in RESULTS_PAGES:
        assert f"]({stem}.md)" in index
    for path in [*PAGES.glob("*.md"), README]:
        assert not DATE.search(path.read_text(encoding="utf-8")), f"{path.name} carries a date"


@pytest.fixture
def copy(tmp_path):
    """A copy of the reference results, the pages and the README, and the report command on them."""
    shutil.copytree(REFERENCE, tmp_path / "reference")
    shutil.copytree(PAGES, tmp_path / "pages")
    shutil.copy(README, tmp_path / "README.md")

    def report(*extra: str) -> int:
        return main(["report", str(tmp_path / "reference"), "--pages", str(tmp_path / "pages"),
                     "--readme", str(tmp_path / "README.md"), *extra])

    return tmp_path, report


def test_check_fails_on_an_edited_page_and_passes_after_regeneration(copy, capsys):
    tmp_path, report = copy
    assert report("--check") == 0
    page = tmp_path / "pages" / "02_rnn_text_models.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| 7 ", "| 8 ", 1), encoding="utf-8")
    capsys.readouterr()
    assert report("--check") == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{page}: differs from what the results files give"]
    assert report() == 0
    assert str(page) in capsys.readouterr().out
    assert report("--check") == 0


def test_check_fails_on_edited_readme_times_and_on_a_page_nothing_generates(copy, capsys):
    tmp_path, report = copy
    readme = tmp_path / "README.md"
    original = readme.read_text(encoding="utf-8")
    row = next(line for line in original.splitlines() if line.startswith("| 01 |"))
    edited = row.rsplit("|", 2)[0] + "| 3 min |"  # the FULL cell typed by hand
    readme.write_text(original.replace(row, edited, 1), encoding="utf-8")
    (tmp_path / "pages" / "old_lesson.md").write_text("# typed by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert report("--check") == 1
    out = capsys.readouterr().out
    assert f"{readme}: differs" in out and "old_lesson.md: not generated" in out
    assert report() == 0  # rewrites the README; a page nothing generates is left for you to delete
    assert readme.read_text(encoding="utf-8") == original
    (tmp_path / "pages" / "old_lesson.md").unlink()
    assert report("--check") == 0


def test_a_results_file_on_no_page_is_an_error(copy, capsys):
    tmp_path, report = copy
    shutil.copy(REFERENCE / "02_rnn_text_models.json", tmp_path / "reference" / "stray.json")
    assert report("--check") == 1
    assert "stray.json is on no results page" in capsys.readouterr().err


def test_lesson_times_come_from_the_runtime_file_and_missing_ones_show_a_dash(tmp_path):
    text = (f"intro\n{TIMES_START}\n| # | notebook | what | FAST | FULL |\n|---|---|---|---|---|\n"
            "| 00 | [`00_welcome_and_setup`](x.ipynb) | look | ? | ? |\n"
            "| 10 | `10_pruning_a_translator` (planned) | translate | ? | ? |\n"
            f"{TIMES_END}\nend\n")
    runtimes = tmp_path / "runtimes"
    save_results("notebook_runtime", [{"notebook": "00_welcome_and_setup", "notebook_mode": mode, "seconds": seconds}
                                      for mode, seconds in (("FAST", 9.1), ("FULL", 130.0))], directory=runtimes)
    filled = fill_lesson_times(text, runtimes)
    assert "| 00 | [`00_welcome_and_setup`](x.ipynb) | look | 9 s | 2 min 10 s |" in filled
    assert "| 10 | `10_pruning_a_translator` (planned) | translate | — | — |" in filled
    assert filled.startswith("intro\n") and filled.endswith(f"{TIMES_END}\nend\n")
    assert fill_lesson_times(text, tmp_path).count("| — | — |") == 2  # no runtime file: no times
    with pytest.raises(ValueError, match="lesson-times"):
        fill_lesson_times("no markers", REFERENCE)


@pytest.mark.parametrize("argv", [
    ["report", "{tmp}/missing", "--pages", "{tmp}/pages"],
    ["report", "--check"],
    ["report", "--readme", "README.md"],
    ["report", "{tmp}", "--pages", "{tmp}/missing", "--check"],
])
def test_bad_arguments_print_one_line_and_exit_2(argv, tmp_path, capsys):
    (tmp_path / "a.json").write_text('{"name": "a", "mode": "FULL", "records": [{"x": 1}]}', encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main([arg.format(tmp=tmp_path) for arg in argv])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("nlpprune report: error: ")
