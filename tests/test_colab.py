"""Colab and Kaggle: the exercises' set-up cell (a no-op where casestudy is installed, a pinned pip
install where not, dropped by grading) and the "Open in Colab" links. Nothing here reaches the
network: the cell's pip and sockets are replaced before it runs."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest

from autograder import colab
from autograder.course import SOLUTIONS, assignments
from autograder.grade import grade
from autograder.release import generate
from autograder.sandbox import UID, Sandbox

ROOT = Path(__file__).resolve().parents[1]
FIRST = "01_data"
REPOSITORY = colab.read_settings(ROOT)["url"]
VERSION = colab.course_version()

# Run before the cell: any subprocess or socket connection fails loudly, and (when BLOCK is set)
# casestudy cannot be imported until the fake pip "installs" it.
GUARD = """
import json, os, socket, subprocess, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "casestudy":
            raise ImportError("casestudy blocked by the test")

def no_subprocess(*args, **kwargs):
    raise AssertionError(f"the set-up cell started a process: {args}")

def no_network(*args, **kwargs):
    raise AssertionError(f"the set-up cell opened a connection: {args}")

def fake_pip(command, check):
    print("PIP " + json.dumps(command))
    sys.meta_path.remove(BLOCKER)

socket.socket.connect = socket.create_connection = no_network
subprocess.Popen = no_subprocess
subprocess.run = fake_pip if os.environ.get("BLOCK") else no_subprocess
BLOCKER = Block()
if os.environ.get("BLOCK"):
    sys.meta_path.insert(0, BLOCKER)
    sys.modules.pop("casestudy", None)
"""


def run_cell(source: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The cell's source run as a notebook runs it (__main__), in an empty folder, behind GUARD."""
    script = tmp_path / "cell.py"
    script.write_text(GUARD + "\n" + source)
    environ = {k: v for k, v in os.environ.items() if k not in ("CASESTUDY_GRADING", "BLOCK")}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**environ, **env},
                          capture_output=True, text=True, timeout=120)


def cell_functions(source: str) -> dict:
    """The cell's definitions, without running its __main__ part."""
    namespace = {"__name__": "the_cell"}
    exec(compile(source, "setup-cell", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """Every assignment as `autograder release` writes it (solutions not run)."""
    out = tmp_path_factory.mktemp("release") / "exercises"
    generate(assignments(), out)
    return out


def read(folder: Path, name: str = FIRST) -> nbformat.NotebookNode:
    return nbformat.read(folder / name / f"{name}.ipynb", as_version=4)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


# ---------------------------------------------------------------- the cell


@pytest.mark.parametrize("grading", ["", "1"])
def test_the_cell_does_nothing_where_the_package_is_installed(tmp_path, grading):
    result = run_cell(colab.setup_source(VERSION, REPOSITORY), tmp_path, CASESTUDY_GRADING=grading)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"casestudy {VERSION} is installed: nothing to set up\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "cell.py"], "nothing written"


def test_where_the_package_is_missing_the_cell_installs_the_tag_with_torch_kept(tmp_path):
    result = run_cell(colab.setup_source("1.2.3", "https://github.com/course/repo"), tmp_path, BLOCK="1")
    assert result.returncode == 0, result.stderr
    pip = [line for line in result.stdout.splitlines() if line.startswith("PIP ")]
    assert len(pip) == 1, result.stdout
    command = json.loads(pip[0][4:])
    assert command[:5] == [sys.executable, "-m", "pip", "install", "--quiet"]
    assert command[5:] == ["casestudy @ git+https://github.com/course/repo@v1.2.3",
                           f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]
    assert "[" not in command[5], "no extras"
    assert result.stdout.endswith(f"installed casestudy {VERSION} from https://github.com/course/repo\n")


def test_the_install_command_pins_only_what_the_platform_has():
    cell = cell_functions(colab.setup_source("0.9.0", "https://github.com/o/r/"))
    have = {"torch": "2.5.1+cu121"}.get
    command = cell["_install_command"](cell["COURSE"], have)
    assert command[5:] == ["casestudy @ git+https://github.com/o/r@v0.9.0", "torch==2.5.1+cu121"]


def test_under_grading_a_missing_package_is_an_error_never_an_install(monkeypatch):
    cell = cell_functions(colab.setup_source(VERSION, REPOSITORY))
    ran = []
    monkeypatch.setenv("CASESTUDY_GRADING", "1")
    with pytest.raises(RuntimeError, match="grading never installs it"):
        cell["_set_up"](cell["COURSE"], lambda: False, lambda name: "1.0", lambda *a, **k: ran.append(a))
    assert ran == []
    monkeypatch.delenv("CASESTUDY_GRADING")
    done = cell["_set_up"](cell["COURSE"], lambda: False, lambda name: None, lambda *a, **k: ran.append(a))
    assert ran == [(done,)] and done[5] == f"casestudy @ git+{REPOSITORY}@v{VERSION}"


# ---------------------------------------------------------------- the release


def test_every_released_notebook_starts_with_the_set_up_cell(released):
    for name in assignments():
        nb = read(released, name)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        cell = nb.cells[1]
        assert cell.id == colab.SETUP_ID and grade_id(cell) == colab.SETUP_ID, name
        meta = cell.metadata.nbgrader
        assert (meta.grade, meta.solution, meta.locked) == (False, False, True), name
        assert cell.metadata.editable is False and cell.metadata.deletable is False
        assert cell.source == colab.setup_source(VERSION, REPOSITORY)
        assert colab.is_setup(cell)
        assert sum(c.get("id") == colab.SETUP_ID for c in nb.cells) == 1
        source = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
        assert not any(colab.SETUP_ID in (c.get("id"), grade_id(c)) for c in source.cells), (
            f"solutions/{name} must not carry the set-up cell: the release adds it")


def test_a_set_up_cell_of_any_release_is_recognised_an_edited_one_is_not():
    cell = colab.setup_cell("7.0.0", "https://github.com/other/course")
    assert colab.is_setup(cell)
    cell.source += "\nmy_helper = 1\n"
    assert not colab.is_setup(cell)
    assert not colab.is_setup(nbformat.v4.new_code_cell(colab.setup_source(VERSION, REPOSITORY)))


def test_a_released_notebook_runs_in_an_empty_folder_up_to_the_first_unwritten_part(released, tmp_path,
                                                                                     monkeypatch):
    """As on Colab: no checkout, no data; the set-up cell, the given cells and the data they
    make run clean, and the first error is the student's NotImplementedError."""
    from nbclient import NotebookClient

    shutil.copy(released / FIRST / f"{FIRST}.ipynb", tmp_path)
    nb = nbformat.read(tmp_path / f"{FIRST}.ipynb", as_version=4)
    monkeypatch.delenv("CASESTUDY_GRADING", raising=False)  # as a student runs it, not the grader
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [(i, o.ename) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors and all(ename == "NotImplementedError" for _, ename in errors), errors
    first = nb.cells[errors[0][0]]
    before = [c for c in nb.cells[:errors[0][0]] if c.cell_type == "code"]
    assert grade_id(first).startswith("test_") and all(c.execution_count for c in before)
    assert "".join(o.get("text", "") for o in nb.cells[1].outputs) == (
        f"casestudy {VERSION} is installed: nothing to set up\n")
    assert any((tmp_path / "data" / "synthetic").rglob("*.png")), "the synthetic data was made here"


# ---------------------------------------------------------------- grading


def test_a_submission_with_the_set_up_cell_grades_as_one_without(released, tmp_path):
    """nbgrader's gradebook comes from solutions/, which has no set-up cell: grading drops it, so
    the same answers score the same, with the same status, with or without it."""
    solved = read(SOLUTIONS)
    nb = read(released)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = next(c.source for c in solved.cells if grade_id(c) == grade_id(cell))
    subs = tmp_path / "subs"
    (subs / "with").mkdir(parents=True)
    (subs / "without").mkdir()
    nbformat.write(nb, subs / "with" / f"{FIRST}.ipynb")
    nb.cells = [c for c in nb.cells if c.id != colab.SETUP_ID]
    nbformat.write(nb, subs / "without" / f"{FIRST}.ipynb")
    out = tmp_path / "grading"
    # kernels under a uid of their own: a grading run elsewhere on this machine reaps uid 61000's
    box = Sandbox(uid=UID + 1000 + os.getpid() % 1000)
    grade(subs, out, timeout=120, only=[FIRST], box=box)
    with (out / "grades.csv").open() as f:
        rows = {r.pop("student"): r for r in csv.DictReader(f)}
    for row in rows.values():
        row.pop("seconds")
    assert rows["with"] == rows["without"], rows
    assert rows["with"]["status"] in ("graded", "graded; not sandboxed"), rows
    assert float(rows["with"]["total"]) == float(rows["with"]["max"]) > 0
    executed = [nbformat.read(out / "autograded" / s / FIRST / f"{FIRST}.ipynb", as_version=4).cells
                for s in ("with", "without")]
    assert [c.source for c in executed[0]] == [c.source for c in executed[1]], "the set-up cell is dropped"


# ---------------------------------------------------------------- the links


def colab_links(text: str) -> list[str]:
    return re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", text)


def test_every_colab_link_opens_an_exercise_notebook_of_this_repository():
    settings = colab.read_settings(ROOT)
    prefix = f"https://colab.research.google.com/github/{colab.github(settings['url'])}/blob/{settings['branch']}/"
    for name in colab.LINKED:
        links = colab_links((ROOT / name).read_text())
        assert len(links) == len(assignments()), f"{name}: one link per exercise"
        for link in links:
            assert link.startswith(prefix), link
            path = link[len(prefix):]
            assert re.fullmatch(r"exercises/(\w+)/\1\.ipynb", path) and (ROOT / path).is_file(), link


def course_copy(tmp_path: Path, url: str) -> Path:
    for name in (*colab.LINKED, colab.CONFIG):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for name in assignments():
        (tmp_path / "exercises" / name).mkdir(parents=True)
        (tmp_path / "exercises" / name / f"{name}.ipynb").write_text("{}")
    config = tmp_path / colab.CONFIG
    config.write_text(re.sub(r"(?m)^  url: .*$", f"  url: {url}", config.read_text()))
    return tmp_path


def test_the_committed_links_are_current_and_regenerating_them_is_idempotent(tmp_path):
    same = course_copy(tmp_path / "same", REPOSITORY)
    assert colab.write_links(same) == [], "README.md and book/intro.md: run python -m autograder.colab"
    moved = course_copy(tmp_path / "moved", "https://github.com/someone/fork.git")
    assert colab.main([str(moved)]) == 0
    first = {name: (moved / name).read_text() for name in colab.LINKED}
    assert colab.write_links(moved) == []
    assert {name: (moved / name).read_text() for name in colab.LINKED} == first
    for name in colab.LINKED:
        links = colab_links(first[name])
        assert links and all(link.startswith(
            "https://colab.research.google.com/github/someone/fork/blob/main/exercises/") for link in links)
        before, after = (ROOT / name).read_text(), first[name]
        assert before.split(colab.LINKS[0])[0] == after.split(colab.LINKS[0])[0], "only the block changes"
        assert before.split(colab.LINKS[1])[1] == after.split(colab.LINKS[1])[1]


def test_a_repository_that_is_not_on_github_is_one_line(tmp_path, capsys):
    folder = course_copy(tmp_path, "https://gitlab.com/o/r")
    assert colab.main([str(folder)]) == 2
    assert capsys.readouterr().err.startswith("error: repository.url 'https://gitlab.com/o/r'")
