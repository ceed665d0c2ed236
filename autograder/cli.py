"""`autograder release | grade SUBMISSIONS | check NOTEBOOK`: the instructor's and student's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder import GradingError
from autograder.course import DEFAULT_TIMEOUT, EXERCISES
from autograder.sandbox import Sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release",
                         help="regenerate exercises/ from solutions/ (each solution checked first)")
    rel.add_argument("--out", type=Path, default=EXERCISES, help="where to write (default: exercises/)")
    rel.add_argument("--no-check", action="store_true", help="skip running the solutions first")
    rel.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    gra = sub.add_parser("grade", help="autograde a folder of submissions into grades.csv and feedback")
    gra.add_argument("submissions", type=Path,
                     help="one folder or zip per student: <student>/<assignment>/*.ipynb, "
                          "<student>/<assignment>.ipynb or <student>.zip")
    gra.add_argument("--out", type=Path, default=Path("grading"),
                     help="nbgrader's course folder: gradebook.db, grades.csv, feedback/ (default: grading)")
    gra.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    gra.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    box = Sandbox()
    gra.add_argument("--require-sandbox", action="store_true",
                     help="refuse to grade where bubblewrap cannot sandbox the students' code "
                          "(default: grade unsandboxed, with a warning)")
    gra.add_argument("--memory-mb", type=int, default=box.memory_mb,
                     help=f"memory of each student's sandbox, all its processes together, MB "
                          f"(default {box.memory_mb})")
    gra.add_argument("--cpu-seconds", type=int, default=box.cpu_seconds,
                     help=f"CPU time of each student's kernel (default {box.cpu_seconds})")
    gra.add_argument("--max-output-mb", type=float, default=2,
                     help="output kept per cell, MB; more is cut (default 2)")
    gra.add_argument("--max-notebook-output-mb", type=float, default=10,
                     help="output kept per notebook, MB; more is cut (default 10)")
    chk = sub.add_parser("check", help="run a notebook and show its visible-test score")
    chk.add_argument("notebook", type=Path)
    for p in (rel, gra, chk):
        p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                       help=f"seconds a cell may run before it is interrupted (default {DEFAULT_TIMEOUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "release":
            from autograder.release import release

            release(args.out, check=not args.no_check, timeout=args.timeout, only=args.assignment)
        elif args.command == "grade":
            from autograder.grade import grade

            box = Sandbox(memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds)
            grade(args.submissions, args.out, args.timeout, max(1, args.jobs), only=args.assignment,
                  box=box, require_sandbox=args.require_sandbox, max_output_mb=args.max_output_mb,
                  max_notebook_output_mb=args.max_notebook_output_mb)
        else:
            from autograder.check import check

            if not args.notebook.is_file():
                raise GradingError(f"{args.notebook}: no such notebook")
            got, total = check(args.notebook, args.timeout)
            return 0 if got == total else 1
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
