"""The autograder on real nbgrader: release, check, and a class of mixed submissions."""

from __future__ import annotations

import csv
import json
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import GradingError
from autograder.cli import main
from autograder.course import EXERCISES, SOLUTIONS, assignments
from autograder.grade import per_student
from autograder.notebooks import failed_lines
from autograder.release import release
from autograder.submissions import collect, student_id

FIRST = "01_data"


def notebook(folder: Path, name: str = FIRST) -> nbformat.NotebookNode:
    return nbformat.read(folder / name / f"{name}.ipynb", as_version=4)


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def save(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def student_notebook(label_of: str | None = None, loop: bool = False) -> nbformat.NotebookNode:
    """01_data as a student hands it in: the split solved, label_of as given."""
    nb, solved = notebook(EXERCISES), notebook(SOLUTIONS)
    cell(nb, "stratified_split").source = cell(solved, "stratified_split").source
    source = cell(solved, "label_of").source
    if label_of is not None:
        source = re.sub(r" *### BEGIN SOLUTION\n.*?### END SOLUTION", label_of, source, flags=re.S)
    cell(nb, "label_of").source = ("while True:\n    pass\n" if loop else "") + source
    return nb


# ---------------------------------------------------------------- release and check


def test_exercises_are_what_release_generates(tmp_path):
    release(tmp_path / "out", check=False)
    generated = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(EXERCISES) for p in EXERCISES.rglob("*") if p.is_file())
    assert generated == committed
    for rel in committed:
        assert (tmp_path / "out" / rel).read_bytes() == (EXERCISES / rel).read_bytes(), (
            f"exercises/{rel} drifted from solutions/: run `autograder release`")


def test_release_refuses_a_solution_with_an_error_in_any_cell(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    shutil.copytree(SOLUTIONS / FIRST, solutions / FIRST)
    nb = notebook(solutions)
    cell(nb, "label_of").source = cell(nb, "label_of").source.replace(
        "return LABELS[folder]", "return sorted(LABELS).index(folder)")  # the original bug
    last = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "nbgrader" not in c.metadata)
    nb.cells[last].source += "\ntorch.flatnonzero(torch.ones(2))"  # 06_gradcam's bug, in no test cell
    save(nb, solutions / FIRST / f"{FIRST}.ipynb")
    out = tmp_path / "exercises"
    with pytest.raises(GradingError) as err:
        release(out, solutions=solutions, timeout=60)
    assert str(err.value).startswith("solution 01_data does not run clean, so nothing was released: ")
    assert "cell 6 raised AssertionError: an image in real/ is real" in str(err.value)
    assert (f"cell {last} raised AttributeError: module 'torch' has no attribute 'flatnonzero'"
            in str(err.value))
    assert "\n" not in str(err.value)
    assert not out.exists(), "nothing released"


def test_check_shows_the_visible_score(tmp_path, capsys):
    nb = student_notebook(label_of="    return 0")  # wrong for fakes
    cell(nb, "test_stratified_split").source += "\n# a student's note"
    path = save(nb, tmp_path / "work" / f"{FIRST}.ipynb")
    assert main(["check", str(path), "--timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL\s+test_label_of\s+2 point\(s\)\s+AssertionError: an image in fake/", out)
    assert re.search(r"pass\s+test_stratified_split", out)
    assert "visible tests 3/5 points" in out
    assert "warning: you changed the test cell test_stratified_split" in out


# ---------------------------------------------------------------- collecting submissions


def test_collect_accepts_the_usual_shapes(tmp_path):
    subs, ex = tmp_path / "subs", EXERCISES / FIRST / f"{FIRST}.ipynb"
    names = assignments()
    shutil.copy(ex, (subs / "ana" / FIRST).mkdir(parents=True) or subs / "ana" / FIRST / "mine.ipynb")
    (subs / "Bo Li_1234_assignsubmission_file_").mkdir(parents=True)
    shutil.copy(ex, subs / "Bo Li_1234_assignsubmission_file_" / "01_data (2).ipynb")
    with zipfile.ZipFile(subs / "cy.zip", "w") as z:
        z.write(ex, "cy/01_data/01_data.ipynb")
        z.write(ex, "cy/02_eda.ipynb")
        z.writestr("../../evil.ipynb", "{}")
    with zipfile.ZipFile(subs / "dup.zip", "w") as z:
        z.write(ex, "01_data.ipynb")
        z.write(ex, "copy/01_data.ipynb")
    (subs / "bad.zip").write_bytes(b"not a zip")
    (subs / "notes.txt").write_text("ignored")
    found = {s.student: s for s in collect(subs, names, tmp_path / "scratch")}
    assert set(found) == {"ana", "Bo_Li_1234", "cy", "dup", "bad", "notes.txt"}
    assert list(found["ana"].notebooks) == [FIRST]
    assert list(found["Bo_Li_1234"].notebooks) == [FIRST]
    assert sorted(found["cy"].notebooks) == [FIRST, "02_eda"]
    assert not (tmp_path / "evil.ipynb").exists() and not (tmp_path / "scratch" / "evil.ipynb").exists()
    assert "two notebooks for 01_data" in found["dup"].problems[FIRST]
    assert "cannot be read" in found["bad"].problems["*"]
    assert found["notes.txt"].problems["*"] == "notes.txt is not a notebook, a folder or a zip"
    assert student_id("Ana María O'Neil") == "Ana_María_O_Neil"


# ---------------------------------------------------------------- a whole class


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a mixed class: perfect, blank, crashing, looping, broken JSON, edited tests."""
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    for name in assignments():  # perfect: the solutions themselves, nbgrader's own layout
        shutil.copy(SOLUTIONS / name / f"{name}.ipynb", (subs / "perfect" / name).mkdir(parents=True)
                    or subs / "perfect" / name / f"{name}.ipynb")
    with zipfile.ZipFile(subs / "blank.zip", "w") as z:  # untouched exercises, zipped
        for name in assignments():
            z.write(EXERCISES / name / f"{name}.ipynb", f"blank/{name}.ipynb")
    crash = student_notebook(label_of='    raise RuntimeError("oops")')
    save(crash, subs / "crash" / f"{FIRST}.ipynb")
    save(student_notebook(loop=True), subs / "loop" / FIRST / f"{FIRST}.ipynb")
    (subs / "broken" / FIRST).mkdir(parents=True)
    (subs / "broken" / FIRST / f"{FIRST}.ipynb").write_text('{"cells": [')
    cheat = student_notebook(label_of="    return sorted(LABELS).index(Path(path).parent.name)")
    cell(cheat, "test_label_of").source = "pass  # tests removed"
    cell(cheat, "test_label_of").metadata.nbgrader.points = 100
    save(cheat, subs / "cheat" / FIRST / f"{FIRST}.ipynb")
    borrower = notebook(EXERCISES, "02_eda")  # every part solved, luminance by the package's own
    solved = notebook(SOLUTIONS, "02_eda")
    for grade_id in ("mean_colour", "luminance", "fft_magnitude", "radial_power_spectrum"):
        cell(borrower, grade_id).source = cell(solved, grade_id).source
    cell(borrower, "luminance").source = re.sub(
        r"### BEGIN SOLUTION\n.*?### END SOLUTION", "from casestudy import eda as _eda\n"
        "    return _eda.luminance(rgb)", cell(borrower, "luminance").source, flags=re.S)
    at = borrower.cells.index(cell(borrower, "test_fft_magnitude")) + 1
    borrower.cells.insert(at, nbformat.v4.new_code_cell("undefined_helper()"))  # a cell of theirs raises
    save(borrower, subs / "borrower" / "02_eda.ipynb")
    out = root / "grading"
    code = main(["grade", str(subs), "--out", str(out), "--timeout", "60", "--jobs", "2"])
    with (out / "grades.csv").open() as f:
        rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}
    return code, out, rows


def points(row, *parts) -> list[float]:
    return [float(row[p]) for p in parts]


def test_perfect_submission_gets_full_marks_within_the_time_budget(graded):
    code, out, rows = graded
    assert code == 0
    for name in assignments():
        row = rows[("perfect", name)]
        assert row["status"] == "graded", row
        assert float(row["total"]) == float(row["max"]) > 0, row
        executed = nbformat.read(out / "autograded" / "perfect" / name / f"{name}.ipynb", as_version=4)
        assert failed_lines(executed) == [], f"{name}'s solution, graded, does not run clean"
        assert float(row["written_max"]) > 0
        assert float(row["seconds"]) < 120, f"{name} took {row['seconds']} s to grade"
        feedback = out / "feedback" / "perfect" / name / f"{name}.html"
        assert feedback.is_file() and "Score" in feedback.read_text()
        assert "BEGIN HIDDEN TESTS" not in feedback.read_text(), f"{name}'s hidden tests shown"
    assert "fake_looking_name" not in (out / "feedback" / "perfect" / "01_data" / "01_data.html").read_text()


def test_the_shared_data_and_run_are_made_once_and_never_reach_the_students_folders(graded):
    _, out, _ = graded
    assert (out / "batch" / "runs" / "exercise" / "checkpoint.pt").is_file()  # notebooks 03-07 use it
    for top in ("autograded", "feedback"):
        leaked = [p for p in (out / top).rglob("*")
                  if p.name in ("data", "runs") or p.suffix in (".pt", ".npy")]
        assert not leaked, leaked[:5]


def test_blank_submission_gets_zero(graded):
    _, _, rows = graded
    for name in assignments():
        row = rows[("blank", name)]
        assert float(row["total"]) == 0 < float(row["max"]), row
        assert row["status"] == "graded" or re.fullmatch(  # later cells call the unwritten functions
            r"graded(; test_\w+ 0/\d+: [^;]*)+(; cell \d+ (raised|timed out)[^;]*)+; "
            r"results after cell \d+ may be incomplete", row["status"]), row
    assert "raised NotImplementedError" in rows[("blank", FIRST)]["status"]


def test_broken_submissions_are_scored_as_they_deserve(graded):
    _, _, rows = graded
    for student in ("crash", "loop", "cheat"):
        row = rows[(student, FIRST)]
        assert row["status"].startswith("graded"), row
        assert points(row, "test_label_of", "test_stratified_split", "total", "max") == [0, 3, 3, 5], row
        assert rows[(student, "02_eda")]["status"] == "missing"
    loop = rows[("loop", FIRST)]["status"]
    assert loop.startswith("graded; test_label_of 0/2: "), loop
    assert "; cell 5 timed out; cell 11 raised NameError: name 'label_of' is not" in loop, loop
    assert "test_label_of 0/2: label_of('data/real/img_001.png') raised RuntimeError: oops" in \
        rows[("crash", FIRST)]["status"]
    assert loop.endswith("; results after cell 5 may be incomplete")
    assert "tests restored: test_label_of (edited, points 100)" in rows[("cheat", FIRST)]["status"]
    broken = rows[("broken", FIRST)]
    assert broken["status"].startswith("not graded: 01_data.ipynb is not a valid notebook"), broken
    assert broken["total"] == "0" or float(broken["total"]) == 0


def test_an_answer_by_the_package_scores_zero_and_a_raising_cell_is_named(graded):
    _, out, rows = graded
    row = rows[("borrower", "02_eda")]
    assert points(row, "test_mean_colour", "test_luminance", "test_fft_magnitude",
                  "test_radial_power_spectrum") == [1, 0, 1, 3], row
    assert float(row["total"]) == float(row["max"]) - 1, row
    reason = "luminance: uses casestudy.eda's answer (casestudy.eda.luminance); scored 0"
    assert row["status"].startswith(f"graded; {reason}; "), row
    found = re.search(r"; cell (\d+) raised NameError: name 'undefined_helper' is not defined;",
                      row["status"])
    assert found, row
    index = int(found.group(1))
    assert row["status"].endswith(f"; results after cell {index} may be incomplete"), row
    executed = nbformat.read(out / "autograded" / "borrower" / "02_eda" / "02_eda.ipynb", as_version=4)
    assert executed.cells[index].source == "undefined_helper()"
    page = (out / "feedback" / "borrower" / "02_eda" / "02_eda.html").read_text()
    notes = page[page.index('id="autograder-notes"'):page.index("</ul></div>")]
    assert reason.replace("'", "&#x27;") in notes and f"cell {index} raised NameError" in notes
    assert page.index('id="autograder-notes"') < page.index("Score"), "the notes come first"
    assert rows[("perfect", "02_eda")]["status"] == "graded", "the package imported for other things is fine"


def test_gradebook_keeps_the_original_tests(graded):
    _, out, _ = graded
    graded_nb = json.loads((out / "autograded" / "cheat" / FIRST / f"{FIRST}.ipynb").read_text())
    test = next(c for c in graded_nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                == "test_label_of")
    released = next(c for c in nbformat.read(EXERCISES / FIRST / f"{FIRST}.ipynb", as_version=4).cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "test_label_of")
    assert "".join(test["source"]) == released.source, "the visible tests restored"
    assert "fake_looking_name" not in json.dumps(graded_nb), "hidden tests never enter a notebook"
    assert test["metadata"]["nbgrader"]["points"] == 2


def test_autograder_modules_import_no_circle():
    """course <- sandbox <- execute: no module imports one that imports it back (even lazily)."""
    import ast

    package = Path(__file__).resolve().parents[1] / "autograder"
    graph = {p.stem: {n.module.split(".")[1] for n in ast.walk(ast.parse(p.read_text()))
                      if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("autograder.")}
             for p in package.glob("*.py")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))

    assert graph["sandbox"] == {"course"} and "execute" not in graph["course"]
    assert not [m for m in graph if reaches(m, m, set())], graph


def test_a_students_notebooks_are_graded_together_unless_jobs_would_idle():
    todo = [(s, n) for s in ("ana", "ben", "cy") for n in ("01", "02", "03")]
    assert per_student(todo, 2) == [("ana", ["01", "02", "03"]), ("ben", ["01", "02", "03"]),
                                    ("cy", ["01", "02", "03"])]
    one = per_student([("ana", n) for n in ("01", "02", "03")], 2)  # one student, two jobs: both work
    assert sorted(n for _, names in one for n in names) == ["01", "02", "03"] and len(one) == 2
    assert per_student([("ana", "01")], 4) == [("ana", ["01"])]
