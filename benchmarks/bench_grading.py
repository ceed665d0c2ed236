"""Time `autograder grade` on a class of perfect submissions (every assignment each).

    python benchmarks/bench_grading.py --students 1 --jobs 2
    python benchmarks/bench_grading.py --students 30 --jobs 2

Prints a table: students, notebooks, jobs, wall time, time per submission and per notebook, and
the part of the wall time spent once on the batch's shared data and run (autograder/batch.py).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path

from autograder.course import SOLUTIONS, assignments
from autograder.grade import grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args()
    names = assignments()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        subs = Path(tmp) / "submissions"
        for i in range(args.students):
            for name in names:
                folder = subs / f"student{i:03d}" / name
                folder.mkdir(parents=True)
                shutil.copy(SOLUTIONS / name / f"{name}.ipynb", folder / f"{name}.ipynb")
        start = time.perf_counter()
        path = grade(subs, Path(tmp) / "grading", args.timeout, args.jobs)
        wall = time.perf_counter() - start
        with path.open() as f:
            rows = list(csv.DictReader(f))
        made = Path(tmp) / "grading" / "batch" / "seconds"
        batch = f"{float(made.read_text()):.0f}" if made.is_file() else "none"
    full = sum(r["status"] == "graded" and float(r["total"]) == float(r["max"]) for r in rows)
    notebooks = args.students * len(names)
    print("\n| students | notebooks | jobs | cores | wall s | s per submission | s per notebook "
          "| full marks | batch s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.students} | {notebooks} | {args.jobs} | {os.cpu_count()} | {wall:.0f} | "
          f"{wall / args.students:.0f} | {wall / notebooks:.1f} | {full}/{notebooks} | {batch} |")
    mean = {name: sum(float(r["seconds"] or 0) for r in rows if r["assignment"] == name) / args.students
            for name in names}
    print("mean s per notebook to grade: " + ", ".join(f"{name} {s:.0f}" for name, s in mean.items()))
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
