"""Find every student's notebooks in the shapes an LMS exports.

Accepted, one entry per student directly in SUBMISSIONS:
  <student>/<assignment>/<any>.ipynb   (nbgrader's own layout)
  <student>/<assignment>.ipynb         (a folder per student)
  <student>.zip                        (either of the above, zipped, maybe under one more folder)
  <student>_..._assignsubmission_file_<assignment>.ipynb   (Moodle's flat download)
Extensions in any case. A notebook belongs to the assignment whose name its folder or its file
name starts with; where there are several, `<assignment>.ipynb` wins over copies such as
`<assignment>-Copy1.ipynb` and the rest is reported. Symlinks, hard links and special files are
never followed. Every entry becomes a student, with the reason when it cannot be graded; two
folder names that would make the same student id get ids of their own, reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SKIP = {".ipynb_checkpoints", "__MACOSX"}
MAX_UNZIPPED = 200 * 2**20  # a class's notebooks are small; more is a mistake or a zip bomb
MAX_MEMBERS = 1000  # entries in one student's zip
MAX_FILES = 2000  # entries looked at in one student's folder
LMS = re.compile(r"_(assignsubmission|onlinetext|file)_", re.I)
FLAT = re.compile(r"_assignsubmission_(?:file|onlinetext)_(.+)$", re.I)  # Moodle: <owner>_..._<file>
COPY = re.compile(r"(-Copy\d*| ?\(\d+\)| copy( \d+)?|_copy\d*)$", re.I)


@dataclass
class Student:
    """One student's notebooks by assignment, and what could not be used."""

    student: str
    notebooks: dict[str, Path] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # assignment or "*" -> reason
    notes: dict[str, list[str]] = field(default_factory=dict)  # assignment or "*" -> remarks
    names: list[str] = field(default_factory=list)  # the entries in SUBMISSIONS it came from
    labels: dict[Path, str] = field(default_factory=dict)  # notebook -> the name it goes by


def owner_of(entry: str) -> str:
    """The student's own name in an entry: "Ana Li_123_assignsubmission_file_" -> "Ana Li_123"."""
    name = entry
    if name.lower().endswith((".zip", ".ipynb")):
        name = name.rsplit(".", 1)[0]
    match = LMS.search(name)
    if match:
        return name[:match.start()]
    return name


def student_id(name: str) -> str:
    """A safe nbgrader student id from an LMS name, accents kept: "Ana Li_123_assignsubmission"
    -> "Ana_Li_123", "José García" -> "José_García"."""
    name = unicodedata.normalize("NFC", owner_of(name))
    return re.sub(r"[^\w.-]+", "_", name).strip("_.") or "unnamed"


def unique_ids(owners: list[str]) -> dict[str, tuple[str, str]]:
    """owner -> (student id, note): distinct owners never share an id; a clash is resolved by a
    short hash of the owner's name and reported."""
    by_id: dict[str, list[str]] = {}
    for owner in dict.fromkeys(owners):
        by_id.setdefault(student_id(owner), []).append(owner)
    ids = {}
    for sid, same in by_id.items():
        for owner in same:
            if len(same) == 1:
                ids[owner] = (sid, "")
            else:
                digest = hashlib.sha256(owner.encode("utf-8", "surrogateescape")).hexdigest()[:6]
                others = ", ".join(repr(o) for o in same if o != owner)
                ids[owner] = (f"{sid}_{digest}", f"id {sid}_{digest}: the name {owner!r} makes the same "
                                                  f"id as {others}")
    return ids


def assignment_of(path: PurePosixPath, names: list[str]) -> str | None:
    for part in (path.parent.name, path.stem):
        for name in names:
            if part == name or part.startswith(name):
                return name
    return None


def unzip(archive: Path, into: Path) -> list[str]:
    """Extract a student's zip's notebooks safely: no absolute paths, no '..', no links, no bombs;
    return what was left out."""
    left_out = []
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"it holds {len(members)} entries, more than {MAX_MEMBERS}")
        members = [m for m in members if not m.is_dir()]
        if sum(m.file_size for m in members) > MAX_UNZIPPED:
            raise ValueError(f"it unpacks to more than {MAX_UNZIPPED // 2**20} MB")
        for m in members:
            rel = PurePosixPath(m.filename.replace("\\", "/"))
            if not rel.name.lower().endswith(".ipynb") or SKIP.intersection(rel.parts):
                continue
            if rel.is_absolute() or ".." in rel.parts or stat.S_ISLNK(m.external_attr >> 16):
                left_out.append(m.filename)
                continue
            target = into / Path(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(m))
    return left_out


def plain_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The regular files below folder, links never followed; and what was refused."""
    found, refused, seen = [], [], 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        for name in sorted(files) + [d for d in dirs if Path(root, d).is_symlink()]:
            seen += 1
            if seen > MAX_FILES:
                return found, refused + [f"more than {MAX_FILES} files: the rest ignored"]
            path = Path(root, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                refused.append(f"{path.relative_to(folder)} (a symlink, not followed)")
            elif not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                if name.lower().endswith(".ipynb"):
                    refused.append(f"{path.relative_to(folder)} (not a plain file)")
            elif name.lower().endswith(".ipynb"):
                found.append(path)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return found, refused


def choose(name: str, paths: list[Path], shown: dict[Path, str]) -> tuple[Path | None, str]:
    """The notebook that counts for an assignment, and a remark or the reason there is none."""
    if len(paths) == 1:
        return paths[0], ""
    stems = {p: PurePosixPath(shown[p]).stem for p in paths}
    canonical = [p for p in paths if stems[p] == name]
    originals = canonical or [p for p in paths if not COPY.search(stems[p])]
    if len(originals) == 1:
        rest = ", ".join(shown[p] for p in paths if p != originals[0])
        return originals[0], f"{name}: graded {shown[originals[0]]}, ignored {rest}"
    listed = ", ".join(shown[p] for p in (originals or paths))
    return None, f"two notebooks for {name} ({listed}): submit one"


def entries(submissions: Path) -> list[Path]:
    return sorted(e for e in submissions.iterdir() if not e.name.startswith("."))


def collect(submissions: Path, names: list[str], scratch: Path) -> list[Student]:
    """Every student's notebook per assignment, with the problems found (never raising)."""
    found = entries(submissions)
    ids = unique_ids([owner_of(e.name) for e in found])
    students: dict[str, Student] = {}
    for number, entry in enumerate(found):
        sid, clash = ids[owner_of(entry.name)]
        student = students.setdefault(sid, Student(sid))
        student.names.append(entry.name)
        if clash and clash not in student.notes.get("*", []):
            student.notes.setdefault("*", []).append(clash)
        try:
            files, shown, refused = notebooks_of(entry, scratch / str(number))
        except (zipfile.BadZipFile, ValueError, OSError, RuntimeError) as err:
            student.problems["*"] = f"{entry.name}: cannot be read ({err})"
            continue
        if refused:
            student.notes.setdefault("*", []).append(f"{entry.name}: left out {', '.join(refused[:5])}")
        if files is None:
            student.problems["*"] = shown
            continue
        student.labels.update(files)
        by_name: dict[str, list[Path]] = {}
        for path, label in files.items():
            name = assignment_of(PurePosixPath(label), names)
            if name is not None:
                by_name.setdefault(name, []).append(path)
        for name, paths in by_name.items():
            if name in student.notebooks:  # another entry of the same student's
                paths = [student.notebooks.pop(name), *paths]
            chosen, remark = choose(name, paths, student.labels)
            if chosen is None:
                student.problems[name] = remark
                continue
            student.notebooks[name] = chosen
            student.problems.pop(name, None)
            if remark:
                student.notes.setdefault(name, []).append(remark)
    return list(students.values())


def notebooks_of(entry: Path, scratch: Path):
    """(path -> the name it goes by, refused entries) for one entry in SUBMISSIONS; or
    (None, reason, refused) when the entry is no submission at all."""
    info = entry.lstat()
    lower = entry.name.lower()
    if stat.S_ISLNK(info.st_mode):
        return None, f"{entry.name} is a symlink: not followed", []
    if stat.S_ISDIR(info.st_mode):
        paths, refused = plain_files(entry)
        return {p: p.relative_to(entry).as_posix() for p in paths}, None, refused
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        return None, f"{entry.name} is not a plain file: not read", []
    if lower.endswith(".zip"):
        refused = unzip(entry, scratch)
        paths, more = plain_files(scratch)
        return {p: p.relative_to(scratch).as_posix() for p in paths}, None, refused + more
    if lower.endswith(".ipynb"):
        flat = FLAT.search(entry.name)
        return {entry: flat.group(1) if flat else entry.name}, None, []
    return None, f"{entry.name} is not a notebook, a folder or a zip", []
