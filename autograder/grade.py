"""Autograde a class's submissions with nbgrader: grades.csv and HTML feedback per student."""

from __future__ import annotations

import csv
import ctypes
import html
import json
import os
import re
import shutil
import signal
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import nbformat
from tqdm import tqdm

from autograder import GradingError
from autograder.batch import prepare_batch, uses_run
from autograder.colab import is_setup
from autograder.course import SOLUTIONS, api, assignments, first_line, nbgrader_config
from autograder.execute import guard
from autograder.hidden import Verdict
from autograder.notebooks import failed_cells, incidents, normalise, read_notebook, read_submission, tampered
from autograder.reference import reference_uses, scoring_cell
from autograder.sandbox import Sandbox, claim_slot, empty_group, memory_group, unavailable
from autograder.sanitise import protect_page
from autograder.submissions import Student, collect
from autograder.warm import cold_kernels, warm_kernels
from autograder.workdir import INCIDENTS, VERDICTS

FIXED = ["student", "assignment", "status"]


@dataclass
class Outcome:
    """What happened to one student's notebook for one assignment."""

    student: str
    assignment: str
    status: str  # graded | missing | not graded: reason | failed: reason
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the instructor should know


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


def quiet() -> None:
    """nbgrader's SQLAlchemy warns several times per notebook: not the instructor's business."""
    try:
        from sqlalchemy.exc import SAWarning
    except ImportError:
        return
    warnings.filterwarnings("ignore", category=SAWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(nbgrader|sqlalchemy|alembic)")


def stage(student: Student, name: str, out: Path) -> tuple[str | None, list[str]]:
    """Put one notebook, rebuilt on the release, into submitted/; return why it cannot be graded
    (or None) and what was found on the way."""
    notes = student.notes.get("*", []) + student.notes.get(name, [])
    if name in student.problems:
        return student.problems[name], notes
    if "*" in student.problems:
        return student.problems["*"], notes
    path = student.notebooks.get(name)
    if path is None:
        return "missing", notes
    try:
        theirs = read_submission(path)
    except GradingError as err:
        return str(err), notes
    theirs.cells = [c for c in theirs.cells if not is_setup(c)]  # Colab's set-up: not the student's
    released = read_notebook(out / "release" / name / f"{name}.ipynb")
    try:
        restored = tampered(theirs, released, read_notebook(out / "source" / name / f"{name}.ipynb"))
    except (KeyError, TypeError, AttributeError):  # metadata too odd to compare: normalise() repairs it
        restored = []
    folder = out / "submitted" / student.student / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        nb, repaired = normalise(theirs, released)
        nbformat.validate(nb)
        nbformat.write(nb, folder / f"{name}.ipynb")
    except Exception as err:  # a notebook beyond repair: its reason, never the class's crash
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        return f"{path.name} cannot be repaired ({reason})", notes
    return None, notes + ([f"tests restored: {', '.join(restored)}"] if restored else []) + repaired


SLOT = 0  # this worker's claim: its kernels run as their own uid (sandbox.UID + SLOT)


def start_worker() -> None:
    """In each worker: claim a sandbox uid no other grader here holds, and die with the grading
    process (even on SIGKILL)."""
    global SLOT
    SLOT = claim_slot()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    quiet()


def autograde_some(out: str, timeout: int, student: str, names: list[str], box: Sandbox,
                   limits: dict) -> list[tuple[str, float]]:
    """Autograde some of one student's notebooks in turn (in a worker process), their kernels
    forked from one warm sandbox (warm.py) when there are several; return (status, s) for each."""
    box = replace(box, uid=box.uid + SLOT)
    done = []
    with warm_kernels(box, scratch=str(Path(out) / ".work")) if len(names) > 1 else nullcontext() as zygote:
        for name in names:
            status = try_one(out, timeout, student, name, box, limits)
            if zygote is not None and status[0].startswith("failed"):  # never the warm sandbox's fault
                with cold_kernels():
                    status = try_one(out, timeout, student, name, box, limits)
            done.append(status)
    return done


def try_one(out: str, timeout: int, student: str, name: str, box: Sandbox, limits: dict) -> tuple[str, float]:
    try:
        return autograde_one(out, timeout, student, name, box, limits)
    except Exception as err:  # a crash is that notebook's failure only
        return failure(err), 0.0


def failure(err: Exception) -> str:
    return f"failed: {type(err).__name__}: {err}"[:300]


def autograde_one(out: str, timeout: int, student: str, name: str, box: Sandbox,
                  limits: dict) -> tuple[str, float]:
    """Autograde and write feedback for one notebook; return (status, s)."""
    start = time.perf_counter()
    config = nbgrader_config(Path(out), timeout)
    guard(config, box, scratch=str(Path(out) / ".work"), solutions=str(Path(out) / "source"), **limits)
    grader = api(config)
    result = grader.autograde(name, student, force=True, create=True)
    if not result["success"]:
        return f"failed: {first_line(result.get('log'), result.get('error'))}", time.perf_counter() - start
    notes, students = report(Path(out), student, name)
    notes += [] if box.enabled else ["not sandboxed"]
    feedback = grader.generate_feedback(name, student, force=True)
    page = Path(out) / "feedback" / student / name / f"{name}.html"
    if not feedback["success"]:
        notes.append("no feedback: " + first_line(feedback.get("log"), feedback.get("error")))
    elif page.is_file():
        protect_page(page)
        note_on_page(page, students)
    return "; ".join(["graded", *notes]), time.perf_counter() - start


def report(out: Path, student: str, name: str) -> tuple[list[str], list[str]]:
    """What the sandbox and the grader stopped in a graded notebook, which cells raised, and which
    parts scored 0 for using the package's answer (zeroed in the gradebook here); return (all
    notes, those the student's feedback shows)."""
    folder = out / "autograded" / student / name
    try:
        graded = read_notebook(folder / f"{name}.ipynb")
    except GradingError as err:
        return [str(err)], []
    try:
        noted = json.loads((folder / INCIDENTS).read_text())
        (folder / INCIDENTS).unlink()
    except (OSError, ValueError):
        noted = []
    judged = apply_verdicts(out, student, name, folder / VERDICTS)
    stopped = incidents(graded)
    failed = failed_cells(graded, tests=False)
    raised = [f"cell {i} {what}" for i, what in failed
              if what.startswith("raised") and "KernelDied" not in what  # incidents() names those
              and not any(s.startswith(f"cell {i} ") and "truncated" not in s for s in stopped)]
    cells = stopped + raised
    if failed:
        cells.append(f"results after cell {failed[0][0]} may be incomplete")
    borrowed = zero_borrowed(out, student, name, graded)
    return borrowed + judged + cells + [str(n) for n in noted], borrowed + judged + cells


def apply_verdicts(out: Path, student: str, name: str, path: Path) -> list[str]:
    """Score each test cell by its hidden test's verdict, judged outside the kernel (hidden.py),
    whatever nbgrader read from the cell's output; return a line per part that lost points."""
    from nbgrader.api import Gradebook, MissingEntry

    try:
        verdicts = [Verdict(**v) for v in json.loads(path.read_text())]
        path.unlink()
    except (OSError, ValueError, TypeError):
        return []
    lost = []
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for verdict in verdicts:
            try:
                gb.find_grade(verdict.grade_id, name, name, student).auto_score = verdict.points
            except MissingEntry:
                continue
            if not verdict.passed:
                lost.append(verdict.line())
        gb.db.commit()
    return lost


def zero_borrowed(out: Path, student: str, name: str, graded) -> list[str]:
    """Score 0 (nbgrader's manual score, so formgrader shows it) each part whose solution uses
    the package's answer; return the reasons."""
    from nbgrader.api import Gradebook, MissingEntry

    found = reference_uses(name, graded)
    if not found:
        return []
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for use in found:
            test = scoring_cell(graded, use.grade_id)
            try:
                gb.find_grade(test, name, name, student).manual_score = 0
            except MissingEntry:
                continue
        gb.db.commit()
    return [use.reason() for use in found]


def note_on_page(page: Path, notes: list[str]) -> None:
    """Put what the student should know first (cells that raised, parts scored 0) at the top of
    a feedback page, escaped."""
    if not notes:
        return
    text = page.read_text(encoding="utf-8", errors="replace")
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    note = (f'<div id="autograder-notes" style="border:2px solid #c00;padding:0.5em 1em;margin:1em">'
            f"<strong>Autograder notes</strong><ul>{items}</ul></div>")
    body = re.search(r"<body[^>]*>", text, flags=re.I)
    at = body.end() if body else 0
    tmp = page.with_name(page.name + ".tmp")
    tmp.write_text(text[:at] + note + text[at:], encoding="utf-8")
    tmp.replace(page)


def add_students(out: Path, students: list[str]) -> None:
    """Enter every student in the gradebook before the workers start: two workers autograding
    the same student's notebooks at once would otherwise both create them (a UNIQUE error)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for student in students:
            gb.update_or_create_student(student)


def run_all(out: Path, timeout: int, jobs: int, todo: list[tuple[str, str]], box: Sandbox,
            limits: dict) -> dict:
    """Autograde every (student, assignment), a student's notebooks together where there are
    enough students to keep every job busy; one failure never stops the rest."""
    done = {}
    if jobs > 1:  # kernels share the cores: more threads each would only fight (OpenMP spins)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=start_worker) as pool:
        futures = {pool.submit(autograde_some, str(out), timeout, s, names, box, limits): (s, names)
                   for s, names in per_student(todo, jobs)}
        with tqdm(total=len(todo), desc="autograde", unit="notebook", disable=not todo) as bar:
            for future in as_completed(futures):
                student, names = futures[future]
                try:
                    results = future.result()
                except Exception as err:  # a crashed worker is that submission's failure only
                    results = [(failure(err), 0.0)] * len(names)
                for name, result in zip(names, results):
                    done[(student, name)] = result
                    if result[0].startswith("failed"):
                        tqdm.write(f"{student} {name}: {result[0]}", file=sys.stderr)
                bar.update(len(names))
    return done


def per_student(todo: list[tuple[str, str]], jobs: int) -> list[tuple[str, list[str]]]:
    """Each student's notebooks, in order, as one batch (they share a warm sandbox); split in
    parts when there are fewer students than jobs."""
    by_student: dict[str, list[str]] = {}
    for student, name in todo:
        by_student.setdefault(student, []).append(name)
    parts = max(1, -(-jobs // max(1, len(by_student))))
    return [(student, names[i::parts]) for student, names in by_student.items()
            for i in range(min(parts, len(names)))]


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
    if not reason and box.memory_mb > 0:
        probe = memory_group(f"ag-{os.getpid()}-probe", box.memory_mb * 2**20)
        empty_group(probe)
        if probe is None:
            print(f"WARNING: no memory cgroup here (grade as root on Linux for one): "
                  f"{box.memory_mb} MB is each process's limit, not each student's", file=sys.stderr)
    return replace(box, enabled=not reason, hidden=[str(out.resolve()), str(submissions.resolve())])


def shared_batch(out: Path, timeout: int, names: set[str]) -> str:
    """Make the data and the exercise run the notebooks would each make (batch.py), when one of
    names uses them; return its folder, or "" (with a note) when there is none."""
    if not any(uses_run(out / "source" / name / f"{name}.ipynb") for name in names):
        return ""
    folder, note = prepare_batch(out, timeout)
    if folder is None:
        print(f"NOTE: {note}", file=sys.stderr)
    return str(folder or "")


def grade(submissions: Path, out: Path, timeout: int, jobs: int = 1,
          only: list[str] | None = None, box: Sandbox | None = None, require_sandbox: bool = False,
          max_output_mb: float = 2, max_notebook_output_mb: float = 10) -> Path:
    """Grade every submission in SUBMISSIONS into OUT; return the path of grades.csv."""
    quiet()
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder: give the folder of the class's submissions")
    out = out.resolve()  # nbgrader's gradebook URL and its course root must not depend on the cwd
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
            problem, notes = stage(student, name, out)
            outcomes.append(Outcome(student.student, name, problem or "pending", notes=notes))
            if problem is None:
                todo.append((student.student, name))
            elif problem != "missing":
                print(f"not graded: {student.student} {name}: {problem}", file=sys.stderr)
    shutil.rmtree(out / ".work", ignore_errors=True)
    add_students(out, sorted({s for s, _ in todo}))
    limits = {"max_output_mb": max_output_mb, "max_notebook_output_mb": max_notebook_output_mb,
              "batch": shared_batch(out, timeout, {a for _, a in todo})}
    done = run_all(out, timeout, jobs, todo, box, limits)
    shutil.rmtree(out / ".work", ignore_errors=True)
    for o in outcomes:
        if (o.student, o.assignment) in done:
            o.status, o.seconds = done[(o.student, o.assignment)]
            head, _, rest = o.status.partition("; ")
            o.status = "; ".join(filter(None, [head, *o.notes, rest]))
        else:
            if o.status != "missing":
                o.status = f"not graded: {o.status}"
            o.status = "; ".join([o.status, *o.notes])
    rows, parts = scores(out, outcomes)
    path = write_csv(rows, parts, out / "grades.csv")
    graded = sum(o.status.startswith("graded") for o in outcomes)
    print(f"graded {graded} notebook(s) of {len(students)} student(s); grades: {path}; "
          f"feedback: {out / 'feedback'}/<student>/<assignment>/")
    return path
