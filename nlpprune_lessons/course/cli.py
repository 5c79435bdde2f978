"""The ``nlpprune`` command: ``doctor``, ``run``, ``report``, ``student`` and ``expected``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nlpprune_lessons.core import config
from nlpprune_lessons.course.doctor import failed, format_report, run_checks
from nlpprune_lessons.course.expected import expected_path, record_expected, write_nbval_copy
from nlpprune_lessons.course.notebooks import execute_notebook, notebook_paths, write_student_copies
from nlpprune_lessons.course.report import (
    PAGE_COMMAND,
    check_generated,
    collect,
    generated_files,
    markdown_table,
    results_table,
    write_generated,
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of seconds, got {text!r}")
    return value


def _doctor(args: argparse.Namespace) -> int:
    checks = run_checks()
    print(format_report(checks))
    return 1 if failed(checks) else 0


def _run(args: argparse.Namespace) -> int:
    try:
        paths = notebook_paths(args.notebooks or None)
    except ValueError as err:
        args.subparser.error(str(err))
    if not paths:
        print("no notebooks to run", file=sys.stderr)
        return 1
    records = []
    for path in paths:
        record = execute_notebook(path, args.out, fast=args.fast, timeout=args.timeout)
        peak = "?" if record.peak_rss_mb is None else f"{record.peak_rss_mb:.0f} MB"
        status = "ok" if record.ok else f"FAILED\n{record.error}"
        print(f"{record.notebook}: {record.seconds:.1f} s, peak {peak}, {status}", flush=True)
        records.append(record)
    print()
    print(markdown_table(
        ["notebook", "mode", "seconds", "peak MB", "ok"],
        [[r.notebook, r.mode, r.seconds, r.peak_rss_mb, "yes" if r.ok else "NO"] for r in records],
    ))
    written = sorted({p for r in records for p in r.results})
    print()
    print(results_table(written) if written else "(the notebooks wrote no results files)")
    return 0 if all(r.ok for r in records) else 1


def _report_error(args: argparse.Namespace, message: str) -> None:
    """Exit with status 2 and one line on stderr: a bad argument of ``nlpprune report``."""
    args.subparser.exit(2, f"{args.subparser.prog}: error: {message}\n")


def _report(args: argparse.Namespace) -> int:
    if args.reference and args.dir is not None:
        _report_error(args, "give either DIR or --reference, not both")
    if args.pages is None and (args.check or args.readme is not None):
        _report_error(args, f"{'--check' if args.check else '--readme'} needs --pages DIR")
    if args.reference or (args.pages is not None and args.dir is None):
        if config.PROJECT_ROOT is None:
            _report_error(args, "the reference results need a checkout of the course repository; give DIR")
        directory = config.PROJECT_ROOT / "results" / "reference"
    else:
        directory = args.dir if args.dir is not None else config.results_dir()
    try:
        paths = collect(directory)
    except NotADirectoryError as err:
        _report_error(args, str(err))
    if not paths:
        print(f"no results files (*.json) in {directory}", file=sys.stderr)
        return 1
    if args.pages is not None:
        return _pages(args, directory)
    try:
        print(results_table(paths))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _pages(args: argparse.Namespace, directory: Path) -> int:
    """``nlpprune report --pages``: write (or, with --check, compare) the results pages and README times."""
    pages = Path(args.pages)
    if args.check and not pages.is_dir():
        _report_error(args, f"{pages} is not a directory; nothing to check")
    readme = args.readme
    if readme is None and args.dir is None and config.PROJECT_ROOT is not None:
        readme = config.PROJECT_ROOT / "README.md"
    if readme is not None and not Path(readme).is_file():
        _report_error(args, f"{readme} is not a file; give the README with --readme")
    try:
        files = generated_files(directory, pages, readme)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check:
        problems = check_generated(files, pages)
        for line in problems:
            print(line)
        if problems:
            print(f"regenerate with: {PAGE_COMMAND}", file=sys.stderr)
            return 1
        print(f"{len(files)} generated file(s) up to date")
        return 0
    written = write_generated(files)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} of {len(files)} generated file(s) changed")
    return 0


def _student(args: argparse.Namespace) -> int:
    try:
        counts = write_student_copies(args.out_dir, overwrite=args.overwrite)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not counts:
        print("no course notebooks found", file=sys.stderr)
        return 1
    for name, count in counts.items():
        print(f"{name}: " + ("kept your copy (delete it, or pass --overwrite, for the course's current version)"
                             if count is None else f"{count} exercise cell(s) stubbed"))
    written = sum(count is not None for count in counts.values())
    print(f"wrote {written} student notebook(s) to {args.out_dir}, kept {len(counts) - written}")
    return 0


def _expected(args: argparse.Namespace) -> int:
    try:
        paths = notebook_paths(args.notebooks or None)
    except ValueError as err:
        args.subparser.error(str(err))
    if args.action == "prepare":
        try:
            for path in paths:
                count = write_nbval_copy(path, expected_path(path), Path(args.out) / path.name)
                print(f"{path.name}: {count} checked cells")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    status = 0
    for path in paths:
        record = execute_notebook(path, args.out, fast=True)
        if not record.ok:
            print(f"{path.name}: FAILED, nothing recorded\n{record.error}", file=sys.stderr)
            status = 1
            continue
        count = record_expected(record.executed_path, expected_path(path))
        print(f"{path.name}: recorded the FAST outputs of {count} checked cells")
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nlpprune``."""
    parser = argparse.ArgumentParser(prog="nlpprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = sub.add_parser("doctor", help="check packages, device, mode, directories and assets")
    doctor.set_defaults(handler=_doctor, subparser=doctor)

    run = sub.add_parser("run", help="execute notebooks headless; report time, memory and results")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                     help="number (01), stem (01_text_preprocessing) or path; default: all")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--fast", dest="fast", action="store_const", const=True,
                      help="run in FAST mode (NLPPRUNE_FAST=1)")
    mode.add_argument("--full", dest="fast", action="store_const", const=False,
                      help="run in FULL mode (NLPPRUNE_FAST=0)")
    run.add_argument("--out", default="build",
                     help="folder for executed .ipynb and .html (default: build)")
    run.add_argument("--timeout", type=_positive_int, default=1800, metavar="SECONDS",
                     help="time limit per cell (default: 1800)")
    run.set_defaults(handler=_run, subparser=run)

    report = sub.add_parser("report", help="Markdown table of results files, or the results pages")
    report.add_argument("dir", nargs="?", metavar="DIR",
                        help="folder of *.json (default: results/; with --pages: results/reference/)")
    report.add_argument("--reference", action="store_true", help="show results/reference instead")
    report.add_argument("--pages", metavar="OUT_DIR",
                        help="write one Markdown page per lesson (and index.md) to OUT_DIR, and the "
                             "lesson times of the README, from the reference results")
    report.add_argument("--check", action="store_true",
                        help="with --pages: write nothing; exit 1 naming every page (or README) that "
                             "differs from what would be generated")
    report.add_argument("--readme", metavar="FILE",
                        help="with --pages: the README whose lesson times to fill (default: the "
                             "checkout's README.md, unless DIR is given)")
    report.set_defaults(handler=_report, subparser=report)

    student = sub.add_parser("student", help="write notebooks with solutions stubbed out")
    student.add_argument("out_dir", metavar="OUT_DIR")
    student.add_argument("--overwrite", action="store_true",
                         help="replace copies that exist (by default a learner's copy is never overwritten)")
    student.set_defaults(handler=_student, subparser=student)
    expected = sub.add_parser(
        "expected", help="record the FAST outputs of '# NBVAL_CHECK_OUTPUT' cells, or prepare nbval copies")
    expected.add_argument("action", choices=["record", "prepare"],
                          help="record: run FAST and store tests/expected_outputs/*.json; "
                               "prepare: write notebooks with those outputs to --out for nbval")
    expected.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="default: all")
    expected.add_argument("--out", default="build/nbval", help="output folder (default: build/nbval)")
    expected.set_defaults(handler=_expected, subparser=expected)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nlpprune`` with ``argv`` (default: the command line); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
