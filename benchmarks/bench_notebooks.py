"""Time the solution notebooks as a student runs them: each alone in an empty folder, then all in
order in sibling folders (exercises/01_data, 02_eda, ...) that share one data/ and runs/.

    python benchmarks/bench_notebooks.py [--grading]

--grading sets CASESTUDY_GRADING, as the autograder does. Prints a table of seconds per
notebook and whether any cell raised.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.course import SOLUTIONS, assignments
from autograder.notebooks import failed_lines


def run(name: str, folder: Path) -> tuple[float, list[str]]:
    """Execute one solution notebook in folder; return (seconds, failed cells)."""
    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start, failed_lines(nb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grading", action="store_true", help="set CASESTUDY_GRADING as the grader does")
    args = parser.parse_args()
    if args.grading:
        os.environ["CASESTUDY_GRADING"] = "1"
    names = assignments()
    times: dict[str, dict[str, float]] = {"alone": {}, "in order, shared": {}}
    problems = []
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        for name in names:
            folder = Path(tmp) / "alone" / name
            folder.mkdir(parents=True)
            times["alone"][name], failed = run(name, folder)
            problems += [f"alone {name}: {f}" for f in failed]
            shutil.rmtree(folder)
            print(f"alone {name}: {times['alone'][name]:.1f} s", flush=True)
        for name in names:
            folder = Path(tmp) / "course" / name
            folder.mkdir(parents=True)
            times["in order, shared"][name], failed = run(name, folder)
            problems += [f"shared {name}: {f}" for f in failed]
            print(f"shared {name}: {times['in order, shared'][name]:.1f} s", flush=True)
    print(f"\n| notebooks ({'grading' if args.grading else 'student'}) | "
          + " | ".join(n[:2] for n in names) + " | all |")
    print("| --- |" + " ---: |" * (len(names) + 1))
    for mode, row in times.items():
        print(f"| {mode} | " + " | ".join(f"{row[n]:.1f}" for n in names) + f" | {sum(row.values()):.1f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{os.cpu_count()} cores, load average {load:.1f} at the end; "
          f"cells that raised: {problems or 'none'}")


if __name__ == "__main__":
    main()
