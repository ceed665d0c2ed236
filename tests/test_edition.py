"""The student edition holds the exercises, the package and the book, and nothing of the instructors'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder import GradingError
from autograder.edition import INCLUDED, export_student_edition, secrets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    return export_student_edition(ROOT, ROOT / "solutions", tmp_path_factory.mktemp("e") / "students")


def every_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_students_get_the_exercises_the_package_and_the_book(edition):
    assert sorted(p.name for p in edition.iterdir()) == sorted(INCLUDED)
    assert (edition / "exercises" / "01_data" / "01_data.ipynb").is_file()
    assert (edition / "casestudy" / "cli.py").is_file() and (edition / "book" / "06_gradcam.md").is_file()
    assert not (edition / "solutions").exists() and not (edition / "tests").exists()


def test_no_hidden_test_model_answer_or_book_solution_reaches_students(edition):
    text = every_text(edition)
    assert "fake_looking_name" not in text  # a hidden test of 01_data
    assert "Alphabetical numbering makes fake = 0" not in text  # a model answer of 01_data
    assert "{solution}" not in every_text(edition / "book")
    assert "gradients.mean(axis=(2, 3))" not in every_text(edition / "book")  # 06's worked solution
    found = secrets(ROOT / "solutions")
    assert len(found["hidden"]) > 50 and len(found["solution"]) > 10
    outside_package = "\n".join(every_text(edition / name) for name in ("exercises", "book"))
    assert not [line for line in found["hidden"] | found["solution"] if line in outside_package]


def test_a_planted_leak_is_refused_and_nothing_is_written(tmp_path):
    course = tmp_path / "course"
    for name in [*INCLUDED, "solutions"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, course / name, ignore=shutil.ignore_patterns("data", "runs", "_build",
                                                                                 "node_modules"))
        else:
            shutil.copy2(source, course / name)
    notebook = course / "exercises" / "01_data" / "01_data.ipynb"
    cells = json.loads(notebook.read_text())
    hidden_line = next(line for line in (course / "solutions" / "hidden_tests" / "01_data.py").read_text()
                       .splitlines() if "fake_looking_name" in line)  # one line of a hidden test
    cells["cells"][0]["source"].append("\n" + hidden_line + "\n")
    notebook.write_text(json.dumps(cells))
    with pytest.raises(GradingError, match="would leak"):
        export_student_edition(course, course / "solutions", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["course"]  # no half-written folder either


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(GradingError, match="exists"):
        export_student_edition(ROOT, ROOT / "solutions", tmp_path / "out")
