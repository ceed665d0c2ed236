"""Autograde a class's submissions with nbgrader: grades.csv and HTML feedback per student."""

from __future__ import annotations

import csv
import ctypes
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from autograder import GradingError
from autograder.course import SOLUTIONS, api, assignments, first_line, nbgrader_config
from autograder.notebooks import incidents, read_notebook, tampered
from autograder.sandbox import Sandbox, unavailable
from autograder.submissions import Student, collect

FIXED = ["student", "assignment", "status"]


@dataclass
class Outcome:
    """What happened to one student's notebook for one assignment."""

    student: str
    assignment: str
    status: str  # graded | missing | not graded: reason | failed: reason
    seconds: float = 0.0


def prepare_course(out: Path, names: list[str], timeout: int) -> None:
    """Copy the solutions in as nbgrader's source and record each assignment in the gradebook."""
    source = out / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(SOLUTIONS, source, ignore=shutil.ignore_patterns("data", "runs", ".ipynb_checkpoints"))
    grader = api(nbgrader_config(out, timeout))
    for name in names:
        result = grader.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise GradingError(f"nbgrader could not set up {name}: "
                               f"{first_line(result.get('log'), result.get('error'))}")


def stage(student: Student, name: str, out: Path) -> str | None:
    """Copy one notebook into submitted/; return why it cannot be graded, or None."""
    if name in student.problems:
        return student.problems[name]
    if "*" in student.problems:
        return student.problems["*"]
    path = student.notebooks.get(name)
    if path is None:
        return "missing"
    try:
        read_notebook(path)
    except GradingError as err:
        return str(err)
    folder = out / "submitted" / student.student / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(path, folder / f"{name}.ipynb")
    return None


SLOT = 0  # this worker process's number: its kernels run as their own uid (sandbox.UID + SLOT)


def start_worker(counter) -> None:
    """In each worker: take a slot number, and die with the grading process (even on SIGKILL)."""
    global SLOT
    with counter.get_lock():
        SLOT, counter.value = counter.value, counter.value + 1
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def autograde_one(out: str, timeout: int, student: str, name: str, box: Sandbox,
                  max_output_mb: float) -> tuple[str, float]:
    """Autograde and write feedback for one notebook (in a worker process); return (status, s)."""
    start = time.perf_counter()
    box = replace(box, uid=box.uid + SLOT)
    grader = api(nbgrader_config(Path(out), timeout, sandbox=box, max_output_mb=max_output_mb))
    result = grader.autograde(name, student, force=True, create=True)
    if not result["success"]:
        return f"failed: {first_line(result.get('log'), result.get('error'))}", time.perf_counter() - start
    notes = report(Path(out), student, name) + ([] if box.enabled else ["not sandboxed"])
    feedback = grader.generate_feedback(name, student, force=True)
    if not feedback["success"]:
        notes.append("no feedback: " + first_line(feedback.get("log"), feedback.get("error")))
    return "; ".join(["graded", *notes]), time.perf_counter() - start


def report(out: Path, student: str, name: str) -> list[str]:
    """What the instructor should know about a graded notebook: restored tests, incidents."""
    try:
        submitted = read_notebook(out / "submitted" / student / name / f"{name}.ipynb")
        released = read_notebook(out / "release" / name / f"{name}.ipynb")
        source = read_notebook(out / "source" / name / f"{name}.ipynb")
        graded = read_notebook(out / "autograded" / student / name / f"{name}.ipynb")
    except GradingError as err:
        return [str(err)]
    restored = tampered(submitted, released, source)
    return ([f"tests restored: {', '.join(restored)}"] if restored else []) + incidents(graded)


def run_all(out: Path, timeout: int, jobs: int, todo: list[tuple[str, str]], box: Sandbox,
            max_output_mb: float) -> dict:
    """Autograde every (student, assignment); one failure never stops the rest."""
    done = {}
    if jobs > 1:  # kernels share the cores: more threads each would only fight (OpenMP spins)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=start_worker,
                             initargs=(context.Value("i", 0),)) as pool:
        futures = {pool.submit(autograde_one, str(out), timeout, s, a, box, max_output_mb): (s, a)
                   for s, a in todo}
        for future in tqdm(futures, desc="autograde", unit="notebook", disable=not todo):
            try:
                done[futures[future]] = future.result()
            except Exception as err:  # a crashed worker is that submission's failure only
                done[futures[future]] = (f"failed: {type(err).__name__}: {err}"[:300], 0.0)
    return done


def scores(out: Path, outcomes: list[Outcome]) -> tuple[list[dict], list[str]]:
    """Read each graded notebook's part scores from the gradebook into CSV rows."""
    from nbgrader.api import Gradebook, MissingEntry

    parts: list[str] = []
    rows = []
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for o in outcomes:
            row = {"student": o.student, "assignment": o.assignment, "status": o.status}
            try:
                notebook = gb.find_submission_notebook(o.assignment, o.assignment, o.student)
                grades = notebook.grades if o.status.startswith("graded") else []
            except MissingEntry:
                grades = []
            auto = [g for g in grades if g.cell.cell_type == "code"]
            written = [g for g in grades if g.cell.cell_type == "markdown"]
            for g in auto:
                row[g.name] = g.score
                parts += [g.name] if g.name not in parts else []
            row["total"] = sum(g.score for g in auto)
            row["max"] = autograded_max(gb, o.assignment)
            row["written_max"] = sum(g.max_score for g in written) if written else ""
            row["seconds"] = round(o.seconds, 1)
            rows.append(row)
    return rows, parts


def autograded_max(gb, name: str) -> float:
    notebook = gb.find_notebook(name, name)
    return sum(c.max_score for c in notebook.grade_cells if c.cell_type == "code")


def write_csv(rows: list[dict], parts: list[str], path: Path) -> Path:
    """Write grades.csv atomically: student, assignment, status, a score per part, totals."""
    columns = FIXED + parts + ["total", "max", "written_max", "seconds"]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def sandbox_for(box: Sandbox, require: bool, out: Path, submissions: Path) -> Sandbox:
    """The sandbox to grade in, hiding OUT and SUBMISSIONS; warn, or refuse, where there is none."""
    reason = unavailable()
    if reason and require:
        raise GradingError(f"cannot sandbox the students' code: {reason}; fix that or drop --require-sandbox")
    if reason:
        print(f"WARNING: students' code runs UNSANDBOXED, with your files and network: {reason}; "
              f"--require-sandbox refuses instead", file=sys.stderr)
    return replace(box, enabled=not reason, hidden=[str(out.resolve()), str(submissions.resolve())])


def grade(submissions: Path, out: Path, timeout: int, jobs: int = 1,
          only: list[str] | None = None, box: Sandbox | None = None, require_sandbox: bool = False,
          max_output_mb: float = 2) -> Path:
    """Grade every submission in SUBMISSIONS into OUT; return the path of grades.csv."""
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder: give the folder of the class's submissions")
    box = sandbox_for(box or Sandbox(), require_sandbox, out, submissions)
    names = only or assignments()
    out.mkdir(parents=True, exist_ok=True)
    prepare_course(out, names, timeout)
    scratch = out / "unpacked"
    shutil.rmtree(scratch, ignore_errors=True)
    students = collect(submissions, names, scratch)
    if not students:
        raise GradingError(f"{submissions} holds no student folder or zip")
    outcomes, todo = [], []
    for student in students:
        for name in names:
            problem = stage(student, name, out)
            outcomes.append(Outcome(student.student, name, problem or "pending"))
            if problem is None:
                todo.append((student.student, name))
            elif problem != "missing":
                print(f"not graded: {student.student} {name}: {problem}")
    done = run_all(out, timeout, jobs, todo, box, max_output_mb)
    for o in outcomes:
        if (o.student, o.assignment) in done:
            o.status, o.seconds = done[(o.student, o.assignment)]
            if o.status.startswith("failed"):
                print(f"{o.student} {o.assignment}: {o.status}")
        elif o.status != "missing":
            o.status = f"not graded: {o.status}"
    rows, parts = scores(out, outcomes)
    path = write_csv(rows, parts, out / "grades.csv")
    graded = sum(o.status.startswith("graded") for o in outcomes)
    print(f"graded {graded} notebook(s) of {len(students)} student(s); grades: {path}; "
          f"feedback: {out / 'feedback'}/<student>/<assignment>/")
    return path
