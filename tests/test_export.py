"""`autograder export`: final grades from a gradebook built with nbgrader's API (no grading)."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("nbgrader", reason="the grading extra is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:Object of type")  # nbgrader's own add_submission

from nbgrader.api import Gradebook  # noqa: E402

from autograder.cli import main  # noqa: E402
from autograder.course import tools_on_path  # noqa: E402


def set_grade(gb, cell: str, assignment: str, student: str, auto=None, manual=None) -> None:
    grade = gb.find_grade(cell, assignment, assignment, student)
    grade.auto_score, grade.manual_score = auto, manual
    grade.needs_manual_grade = manual is None and grade.cell.cell_type != "code"
    gb.db.commit()


@pytest.fixture
def grading(tmp_path):
    """Two assignments; ana graded in full (a code part overridden by hand), bo's written answer
    not graded yet, cy submitted nothing."""
    out = tmp_path / "grading"
    out.mkdir()
    tools_on_path()  # nbgrader creates the gradebook with `alembic`
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for name, cells in {"01_data": [("test_split", "code", 2), ("test_label", "code", 3),
                                        ("answer_bias", "markdown", 4)],
                            "02_eda": [("test_fft", "code", 5)]}.items():
            gb.add_assignment(name)
            gb.add_notebook(name, name)
            for cell, kind, points in cells:
                gb.add_grade_cell(cell, name, name, max_score=points, cell_type=kind)
        gb.add_student("ana", first_name="Ana", last_name="Li", email="ana@uni.example", lms_user_id="9001")
        gb.add_student("bo", first_name="Bo", last_name="Chen")
        gb.add_student("cy")
        for student in ("ana", "bo"):
            gb.add_submission("01_data", student)
        gb.add_submission("02_eda", "ana")
        set_grade(gb, "test_split", "01_data", "ana", auto=2)
        set_grade(gb, "test_label", "01_data", "ana", auto=0, manual=1.5)  # partial credit by hand
        set_grade(gb, "answer_bias", "01_data", "ana", manual=3)
        set_grade(gb, "test_fft", "02_eda", "ana", auto=5)
        set_grade(gb, "test_split", "01_data", "bo", auto=2)
        set_grade(gb, "test_label", "01_data", "bo", auto=3)
    return out


def read(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_plain_has_parts_auto_manual_and_flags(grading, capsys):
    assert main(["export", "--out", str(grading)]) == 0
    rows = read(grading / "final_grades-plain.csv")
    head = rows[0]
    assert head == ["student", "assignment", "submitted", "test_split", "test_label", "answer_bias",
                    "test_fft", "auto_total", "manual_total", "total", "max", "needs_manual_grading"]
    table = {(r[0], r[1]): dict(zip(head, r)) for r in rows[1:]}
    assert len(table) == 6, "every student and assignment, submitted or not"
    ana = table[("ana", "01_data")]
    assert (ana["test_split"], ana["test_label"], ana["answer_bias"]) == ("2", "1.5", "3")
    assert (ana["auto_total"], ana["manual_total"], ana["total"], ana["max"]) == ("3.5", "3", "6.5", "9")
    assert ana["needs_manual_grading"] == "no"
    bo = table[("bo", "01_data")]
    assert bo["answer_bias"] == "" and bo["needs_manual_grading"] == "yes" and bo["total"] == "5"
    assert table[("cy", "01_data")]["submitted"] == "no" and table[("cy", "01_data")]["total"] == "0"
    assert table[("ana", "02_eda")]["test_split"] == "" and table[("ana", "02_eda")]["total"] == "5"
    assert "1 submission(s) still need grading by hand" in capsys.readouterr().err


def test_canvas_has_its_identity_columns_and_points_possible(grading, tmp_path):
    target = tmp_path / "canvas.csv"
    assert main(["export", "--out", str(grading), "--format", "canvas", "--to", str(target)]) == 0
    rows = read(target)
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "01_data", "02_eda"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "9", "5"]
    assert sorted(rows[2:]) == [["Chen, Bo", "", "", "bo", "", "5", "0"],
                                ["Li, Ana", "9001", "", "ana", "", "6.5", "5"],
                                ["cy", "", "", "cy", "", "0", "0"]]


def test_moodle_has_an_identifier_and_a_grade_column_per_item(grading):
    assert main(["export", "--out", str(grading), "--format", "moodle"]) == 0
    rows = read(grading / "final_grades-moodle.csv")
    assert rows[0] == ["ID number", "Email address", "First name", "Surname", "01_data", "02_eda"]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["ana"] == ["ana", "ana@uni.example", "Ana", "Li", "6.5", "5"]
    assert by_id["cy"][4:] == ["0", "0"] and set(by_id) == {"ana", "bo", "cy"}


def test_no_gradebook_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no gradebook at") and err.count("\n") == 1
    assert not (tmp_path / "nowhere").exists(), "no empty gradebook created"
