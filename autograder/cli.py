"""`autograder release | grade SUBMISSIONS | check NOTEBOOK | export`: the instructor's and
student's commands. Each works on a course folder: `--course DIR`, else the nearest folder upwards
holding nbgrader_config.py, else the checkout the package runs from."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from autograder import GradingError, __version__
from autograder.course import DEFAULT_TIMEOUT, find_course, read_course, using

EXTRA = "autograder needs the grading extra: pip install 'casestudy[grading]'"
GRADING_MODULES = ("traitlets", "nbgrader", "nbformat", "nbclient", "jupyter_client", "zmq", "bleach")
FORMATS = ("plain", "canvas", "moodle")


def require_grading() -> None:
    """One line naming the extra to install when nbgrader or its companions are missing."""
    for name in GRADING_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            raise GradingError(f"{EXTRA} (missing: {name})") from None


def sandbox_defaults() -> tuple[int | None, int | None]:
    """The sandbox's memory and CPU defaults, for --help (None without the grading extra)."""
    try:
        from autograder.sandbox import Sandbox
    except ImportError:
        return None, None
    box = Sandbox()
    return box.memory_mb, box.cpu_seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    parser.add_argument("--version", action="version", version=f"autograder {__version__}")
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", type=Path, metavar="DIR",
                        help="the course folder: nbgrader_config.py with the solutions and exercises "
                             "folders it names (default: found upwards from the current folder)")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", parents=[course],
                         help="regenerate exercises/ from solutions/ (each solution checked first)")
    rel.add_argument("--out", type=Path, help="where to write (default: the course's exercises/)")
    rel.add_argument("--no-check", action="store_true", help="skip running the solutions first")
    rel.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    gra = sub.add_parser("grade", parents=[course],
                         help="autograde a folder of submissions into grades.csv and feedback")
    gra.add_argument("submissions", type=Path,
                     help="one folder or zip per student: <student>/<assignment>/*.ipynb (as "
                          "`nbgrader collect` leaves them in submitted/), <student>/<assignment>.ipynb "
                          "or <student>.zip")
    gra.add_argument("--out", type=Path, default=Path("grading"),
                     help="nbgrader's course folder: gradebook.db, grades.csv, feedback/ (default: grading)")
    gra.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    gra.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    memory_mb, cpu_seconds = sandbox_defaults()
    gra.add_argument("--require-sandbox", action="store_true",
                     help="refuse to grade where bubblewrap cannot sandbox the students' code "
                          "(default: grade unsandboxed, with a warning)")
    gra.add_argument("--memory-mb", type=int, default=memory_mb,
                     help=f"memory of each student's sandbox, all its processes together, MB "
                          f"(default {memory_mb})")
    gra.add_argument("--cpu-seconds", type=int, default=cpu_seconds,
                     help=f"CPU time of each student's kernel (default {cpu_seconds})")
    gra.add_argument("--max-output-mb", type=float, default=2,
                     help="output kept per cell, MB; more is cut (default 2)")
    gra.add_argument("--max-notebook-output-mb", type=float, default=10,
                     help="output kept per notebook, MB; more is cut (default 10)")
    chk = sub.add_parser("check", parents=[course], help="run a notebook and show its visible-test score")
    chk.add_argument("notebook", type=Path)
    for p in (rel, gra, chk):
        p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                       help=f"seconds a cell may run before it is interrupted (default {DEFAULT_TIMEOUT})")
    exp = sub.add_parser("export", parents=[course],
                         help="final grades (autograded + graded by hand) as one CSV for an LMS")
    exp.add_argument("--out", type=Path, default=Path("grading"),
                     help="the grading folder holding gradebook.db (default: grading)")
    exp.add_argument("--format", choices=FORMATS, default="plain",
                     help="plain: a row per student and assignment, a column per part; canvas or "
                          "moodle: a row per student, a column per assignment (default plain)")
    exp.add_argument("--to", type=Path, metavar="FILE",
                     help="the CSV to write (default: OUT/final_grades-FORMAT.csv)")
    edi = sub.add_parser("student-edition", parents=[course],
                         help="write what students get (exercises, package, book without solutions) "
                              "into a new folder, checked to hold no solution or hidden test")
    edi.add_argument("out", type=Path, help="the new folder (or a clone of the students' repository)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "release":
        with using(args.course) as course:
            from autograder.release import release  # after `using`: its defaults name the course's folders

            release(args.out or course.exercises, check=not args.no_check, timeout=args.timeout,
                    solutions=course.solutions, only=args.assignment)
    elif args.command == "grade":
        with using(args.course):
            from autograder.grade import grade  # after `using`: it reads the course's SOLUTIONS
            from autograder.sandbox import Sandbox

            box = Sandbox(memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds)
            grade(args.submissions, args.out, args.timeout, max(1, args.jobs), only=args.assignment,
                  box=box, require_sandbox=args.require_sandbox, max_output_mb=args.max_output_mb,
                  max_notebook_output_mb=args.max_notebook_output_mb)
    elif args.command == "check":
        from autograder.check import check

        if args.course is not None:  # a student's notebook runs beside itself: no course needed
            read_course(args.course)
        if not args.notebook.is_file():
            raise GradingError(f"{args.notebook}: no such notebook")
        got, total = check(args.notebook, args.timeout)
        return 0 if got == total else 1
    elif args.command == "student-edition":
        from autograder.edition import export_student_edition

        course = read_course(args.course) if args.course is not None else find_course()
        out = export_student_edition(course.root, course.solutions, args.out)
        print(f"student edition: {out}")
    else:
        from autograder.export import export

        if args.course is not None:  # the gradebook is all it reads
            read_course(args.course)
        export(args.out, args.format, args.to)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        require_grading()
        return run(args)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
