"""Find every student's notebooks in the shapes an LMS exports.

Accepted, one entry per student directly in SUBMISSIONS:
  <student>/<assignment>/<any>.ipynb   (nbgrader's own layout)
  <student>/<assignment>.ipynb         (a folder per student)
  <student>.zip                        (either of the above, zipped, maybe under one more folder)
A notebook belongs to the assignment whose name its folder or its file name starts with.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SKIP = {".ipynb_checkpoints", "__MACOSX"}
MAX_UNZIPPED = 200 * 2**20  # a class's notebooks are small; more is a mistake or a zip bomb


@dataclass
class Student:
    """One student's notebooks by assignment, and what could not be used."""

    student: str
    notebooks: dict[str, Path] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # assignment or "*" -> reason


def student_id(name: str) -> str:
    """A safe nbgrader student id from an LMS name: "Ana Li_123_assignsubmission" -> "Ana_Li_123"."""
    name = re.sub(r"_(assignsubmission|onlinetext|file)_.*$", "", Path(name).stem if name.endswith(".zip")
                  else name)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "unnamed"


def assignment_of(path: PurePosixPath, names: list[str]) -> str | None:
    for part in (path.parent.name, path.stem):
        for name in names:
            if part == name or part.startswith(name):
                return name
    return None


def unzip(archive: Path, into: Path) -> None:
    """Extract a student's zip safely: no absolute paths, no '..', no bombs."""
    with zipfile.ZipFile(archive) as z:
        members = [m for m in z.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > MAX_UNZIPPED:
            raise ValueError(f"it unpacks to more than {MAX_UNZIPPED // 2**20} MB")
        for m in members:
            rel = PurePosixPath(m.filename)
            if rel.is_absolute() or ".." in rel.parts or not rel.name.endswith(".ipynb"):
                continue
            target = into / Path(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(m))


def notebooks_of(entry: Path, scratch: Path) -> tuple[Path, list[Path]]:
    """Return the folder that holds one entry's notebooks and the notebooks found in it."""
    folder = entry
    if entry.suffix == ".zip":
        folder = scratch / entry.stem
        unzip(entry, folder)
    files = sorted(p for p in folder.rglob("*.ipynb")
                   if p.is_file() and not SKIP.intersection(p.relative_to(folder).parts))
    return folder, files


def collect(submissions: Path, names: list[str], scratch: Path) -> list[Student]:
    """Every student's notebook per assignment, with the problems found (never raising)."""
    students: dict[str, Student] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".zip"):
            continue
        sid = student_id(entry.name)
        student = students.setdefault(sid, Student(sid))
        try:
            folder, files = notebooks_of(entry, scratch)
        except (zipfile.BadZipFile, ValueError, OSError) as err:
            student.problems["*"] = f"{entry.name}: cannot be read ({err})"
            continue
        for path in files:
            name = assignment_of(PurePosixPath(path.relative_to(folder).as_posix()), names)
            if name is None:
                continue
            if name in student.notebooks:
                student.problems[name] = (f"two notebooks for {name} ({student.notebooks[name].name}, "
                                          f"{path.name}): submit one")
                continue
            student.notebooks[name] = path
    return list(students.values())
