"""Wall time and peak kernel memory of each notebook in FAST and FULL mode.

Targets: every notebook under 4 minutes in FAST mode on 2 CPU cores and under 2 GB
(Binder); notebook 01 under 10 minutes in FULL mode. Writes results/notebook_runtime.json.

    python benchmarks/notebook_runtime.py [NOTEBOOK ...] [--modes fast full] [--out build/bench] [--merge]

``--merge`` keeps the records of an earlier results/notebook_runtime.json for the notebooks and modes
this run does not measure (e.g. FAST for every notebook, then FULL for a few).
"""

from __future__ import annotations

import argparse

from nlpprune_lessons.course.notebooks import execute_notebook, notebook_paths
from nlpprune_lessons.course.report import markdown_table
from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import load_results, save_results

LIMITS_S = {"FAST": 240, "FULL": 600}
MEMORY_LIMIT_MB = 2048


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: all")
    parser.add_argument("--modes", nargs="+", choices=["fast", "full"], default=["fast", "full"])
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--merge", action="store_true",
                        help="keep the earlier results file's records of the notebooks and modes not run now")
    args = parser.parse_args()
    rows = []
    for path in notebook_paths(args.notebooks or None):
        for mode in args.modes:
            run = execute_notebook(path, args.out, fast=(mode == "fast"), progress=False)
            rows.append({"notebook": run.notebook, "notebook_mode": run.mode, "seconds": round(run.seconds, 1),
                         "peak_rss_mb": run.peak_rss_mb, "ok": run.ok,
                         "within_time": run.seconds <= LIMITS_S[run.mode],
                         "within_memory": run.peak_rss_mb is None or run.peak_rss_mb <= MEMORY_LIMIT_MB})
            print(rows[-1], flush=True)
    print(markdown_table(list(rows[0]), [list(r.values()) for r in rows]))
    earlier = config.results_dir() / "notebook_runtime.json"
    if args.merge and earlier.exists():
        measured = {(r["notebook"], r["notebook_mode"]) for r in rows}
        kept = [r for r in load_results(earlier)["records"] if (r["notebook"], r["notebook_mode"]) not in measured]
        rows = sorted(kept + rows, key=lambda r: (r["notebook"], r["notebook_mode"] != "FAST"))
    modes = sorted({r["notebook_mode"] for r in rows})
    print(save_results("notebook_runtime", rows, mode=" and ".join(modes) + " (per record)"))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
