"""Final grades from nbgrader's gradebook (autograded parts and those graded by hand in
formgrader) as one CSV for an LMS.

Formats:
  plain   a row per student and assignment: submitted, one column per part (blank until graded),
          auto_total (the autograded code parts, after any override in formgrader),
          manual_total (written answers and tasks graded by hand), total (with any extra credit),
          max, needs_manual_grading
  canvas  Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then one
          column per assignment with its total, and Canvas's "Points Possible" row first. ID is
          nbgrader's lms_user_id (when set), SIS Login ID the nbgrader student id.
  moodle  Moodle's "Import grades from CSV": ID number (the nbgrader student id), Email address,
          First name, Surname, then one column per assignment with its total; map either of the
          first two to the user, and each assignment column to its grade item.
A missing submission scores 0 in canvas and moodle (nbgrader's convention) and is marked in plain.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder import GradingError
from autograder.course import tools_on_path

PLAIN_TAIL = ["auto_total", "manual_total", "total", "max", "needs_manual_grading"]
CANVAS_HEAD = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_HEAD = ["ID number", "Email address", "First name", "Surname"]
POINTS_POSSIBLE = "    Points Possible"  # how Canvas's own export labels its second row


@dataclass
class Person:
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""

    @property
    def sortable_name(self) -> str:
        """Canvas's "Last, First"; the id where the gradebook has no name."""
        if self.last_name and self.first_name:
            return f"{self.last_name}, {self.first_name}"
        return self.last_name or self.first_name or self.id


@dataclass
class Result:
    """One student's grades for one assignment."""

    student: str
    assignment: str
    submitted: bool
    parts: dict[str, float | None] = field(default_factory=dict)  # None: not graded yet
    auto: float = 0.0
    manual: float = 0.0
    total: float = 0.0
    max: float = 0.0
    needs_manual: bool = False


def number(value: float | None) -> str:
    return "" if value is None else format(round(value, 2), "g")


def read_gradebook(db: Path) -> tuple[list[Person], list[tuple[str, float]], list[Result]]:
    """(students, (assignment, max score) pairs, a result per student and assignment)."""
    from nbgrader.api import Gradebook, MissingEntry

    tools_on_path()
    if not db.is_file():
        raise GradingError(f"no gradebook at {db}: run `autograder grade ... --out {db.parent}` first, "
                           f"or give --out the folder that holds gradebook.db")
    with Gradebook(f"sqlite:///{db.resolve()}") as gb:
        people = [Person(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
                  for s in gb.students]
        tasks = [(a.name, float(a.max_score or 0)) for a in gb.assignments]
        results = []
        for person in people:
            for name, top in tasks:
                try:
                    submission = gb.find_submission(name, person.id)
                except MissingEntry:
                    results.append(Result(person.id, name, False, max=top))
                    continue
                results.append(result_of(submission, person.id, name, top))
    if not people or not tasks:
        raise GradingError(f"the gradebook {db} holds no {'students' if tasks else 'assignments'}: "
                           f"grade the class first")
    return people, tasks, results


def result_of(submission, student: str, name: str, top: float) -> Result:
    """Sum one submission's grades: code cells are autograded, the rest is graded by hand."""
    result = Result(student, name, True, max=top, needs_manual=bool(submission.needs_manual_grade))
    several = len(submission.notebooks) > 1
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            part = f"{notebook.name}/{grade.name}" if several else grade.name
            graded = grade.auto_score is not None or grade.manual_score is not None
            score = float(grade.score or 0) if graded else None
            result.parts[part] = score
            if grade.cell.cell_type == "code":
                result.auto += score or 0.0
            else:
                result.manual += score or 0.0
    result.total = result.auto + result.manual
    return result


def plain_rows(results: list[Result]) -> list[list[str]]:
    parts: list[str] = []
    for r in results:
        parts += [p for p in r.parts if p not in parts]
    rows = [["student", "assignment", "submitted", *parts, *PLAIN_TAIL]]
    for r in results:
        rows.append([r.student, r.assignment, "yes" if r.submitted else "no",
                     *[number(r.parts.get(p)) for p in parts],
                     number(r.auto), number(r.manual), number(r.total), number(r.max),
                     "yes" if r.needs_manual else "no"])
    return rows


def lms_rows(fmt: str, people: list[Person], tasks: list[tuple[str, float]],
             results: list[Result]) -> list[list[str]]:
    """A row per student, a column per assignment holding its total."""
    totals = {(r.student, r.assignment): r.total for r in results}
    names = [name for name, _ in tasks]
    if fmt == "canvas":
        rows = [CANVAS_HEAD + names, [POINTS_POSSIBLE, "", "", "", "", *[number(m) for _, m in tasks]]]
        head = {p.id: [p.sortable_name, p.lms_user_id, "", p.id, ""] for p in people}
    else:
        rows = [MOODLE_HEAD + names]
        head = {p.id: [p.id, p.email, p.first_name, p.last_name] for p in people}
    for p in people:
        rows.append(head[p.id] + [number(totals[(p.id, n)]) for n in names])
    return rows


def export(out: Path, fmt: str = "plain", to: Path | None = None) -> Path:
    """Write the final grades in out/gradebook.db as one CSV in format fmt; return its path."""
    from casestudy.files import atomic_write

    people, tasks, results = read_gradebook(Path(out) / "gradebook.db")
    rows = plain_rows(results) if fmt == "plain" else lms_rows(fmt, people, tasks, results)
    path = Path(to) if to is not None else Path(out) / f"final_grades-{fmt}.csv"
    try:
        with atomic_write(path, "w") as f:
            csv.writer(f).writerows(rows)
    except OSError as err:
        raise GradingError(f"cannot write {path}: {err.strerror or err}") from None
    pending = sum(r.needs_manual for r in results)
    if pending:
        print(f"warning: {pending} submission(s) still need grading by hand in formgrader; their "
              f"totals lack those parts", file=sys.stderr)
    print(f"final grades of {len(people)} student(s) in {len(tasks)} assignment(s): {path}")
    return path
