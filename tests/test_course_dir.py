"""The autograder from an install: the course folder comes from --course or the current folder,
never from where the package sits; without the grading extra it says which extra to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import GradingError, course
from autograder.cli import EXTRA

ROOT = Path(__file__).resolve().parents[1]
FIRST = "01_data"
MARKER = "marker-from-the-copied-course-7f3a"


@pytest.fixture
def installed(tmp_path) -> Path:
    """The two packages alone in a site folder, as pip leaves them: no checkout around them."""
    site = tmp_path / "site"
    for package in ("autograder", "casestudy"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    return site


@pytest.fixture
def course_copy(tmp_path) -> Path:
    """A copy of the course (solutions, exercises, nbgrader_config.py) whose first solution
    carries a marker, so that a release shows which course it came from."""
    folder = tmp_path / "my course"
    shutil.copytree(ROOT / "solutions" / FIRST, folder / "solutions" / FIRST)
    shutil.copytree(ROOT / "exercises" / FIRST, folder / "exercises" / FIRST)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    path = folder / "solutions" / FIRST / f"{FIRST}.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "marker", "metadata": {}, "source": MARKER})
    path.write_text(json.dumps(nb))
    return folder


def autograder(site: Path, cwd: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """Run `python -m autograder ARGS` with only site on the path (prelude: Python run first)."""
    env = {k: v for k, v in os.environ.items() if k != course.COURSE_VARIABLE}
    env["PYTHONPATH"] = str(site)
    code = f"{prelude or 'pass'}; import runpy, sys; sys.argv = ['autograder', *{list(args)!r}]; " \
           f"runpy.run_module('autograder', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def released_text(out: Path) -> str:
    return (out / FIRST / f"{FIRST}.ipynb").read_text()


@pytest.mark.filterwarnings("ignore")
def test_release_from_an_install_with_course_and_from_inside_it(installed, course_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = autograder(installed, elsewhere, "release", "--no-check", "--assignment", FIRST,
                      "--out", str(tmp_path / "lost"))
    assert lost.returncode == 2, lost.stderr
    assert lost.stderr.strip() == f"error: {course.NO_COURSE}", "one line, no traceback"
    assert not (tmp_path / "lost").exists()

    given = autograder(installed, elsewhere, "release", "--no-check", "--assignment", FIRST,
                       "--out", str(tmp_path / "given"), "--course", str(course_copy))
    assert given.returncode == 0, given.stderr
    assert MARKER in released_text(tmp_path / "given")

    inside = course_copy / "solutions" / FIRST  # a subfolder: the course is found upwards
    found = autograder(installed, inside, "release", "--no-check", "--assignment", FIRST)
    assert found.returncode == 0, found.stderr
    assert MARKER in released_text(course_copy / "exercises"), "the default --out: the course's own release"
    assert "### BEGIN SOLUTION" not in released_text(course_copy / "exercises")


def test_an_install_keeps_its_packages_visible_to_the_sandbox(installed, tmp_path):
    """Installed, there is no checkout to hide: site-packages stays in the kernel's allow-list."""
    pytest.importorskip("zmq", reason="the grading extra is not installed")
    show = "import autograder.sandbox as s; print(s.REPO); print(*s.code_paths(), sep=chr(10))"
    result = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(installed)}, timeout=120)
    assert result.returncode == 0, result.stderr
    repo, *paths = result.stdout.splitlines()
    assert Path(repo) != installed and str(installed) in paths


def test_a_folder_without_nbgrader_config_is_no_course(installed, tmp_path):
    result = autograder(installed, tmp_path, "release", "--course", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no nbgrader_config.py there" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_config_names_the_folders(tmp_path, monkeypatch):
    root = tmp_path / "c"
    (root / "src" / "a1").mkdir(parents=True)
    (root / "src" / "a1" / "a1.ipynb").write_text("{}")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.source_directory = 'src'\n"
        "c.CourseDirectory.release_directory = 'out'\n")
    monkeypatch.delenv(course.COURSE_VARIABLE, raising=False)
    monkeypatch.chdir(root / "src")
    found = course.find_course()
    assert (found.root, found.solutions, found.exercises) == (root, root / "src", root / "out")
    assert course.assignments() == ["a1"]
    with course.using(None):
        assert course.SOLUTIONS == root / "src" and course.EXERCISES == root / "out"
    assert course.COURSE_VARIABLE not in os.environ, "using restores the environment"
    monkeypatch.setattr(course, "REPO", tmp_path / "site-packages")  # as installed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GradingError, match="no course folder"):
        course.find_course()


def test_a_config_that_raises_is_one_line(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n1 / 0\n")
    with pytest.raises(GradingError, match=r"nbgrader_config.py cannot be read: ZeroDivisionError"):
        course.read_course(tmp_path)


def test_spawned_workers_inherit_the_course(course_copy, tmp_path):
    """grade's workers are spawned: the chosen course reaches them through the environment."""
    with course.using(course_copy):
        show = "from autograder.course import SOLUTIONS; print(SOLUTIONS)"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == str(course_copy / "solutions"), result.stderr


NO_EXTRA = "import sys; sys.modules['nbgrader'] = None; sys.modules['traitlets'] = None"


@pytest.mark.parametrize("args", [["release"], ["grade", "subs"], ["check", "x.ipynb"], ["export"]])
def test_without_the_grading_extra_one_line_names_it(installed, tmp_path, args):
    result = autograder(installed, tmp_path, *args, prelude=NO_EXTRA)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {EXTRA}") and result.stderr.count("\n") == 1, result.stderr


def test_help_and_version_need_no_extra(installed, tmp_path):
    from casestudy import __version__

    helped = autograder(installed, tmp_path, "--help", prelude=NO_EXTRA)
    assert helped.returncode == 0, helped.stderr
    assert all(cmd in helped.stdout for cmd in ("release", "grade", "check", "export"))
    for command in ("release", "grade", "check", "export"):
        result = autograder(installed, tmp_path, command, "--help", prelude=NO_EXTRA)
        assert result.returncode == 0 and "--course DIR" in result.stdout, result.stderr
    version = autograder(installed, tmp_path, "--version", prelude=NO_EXTRA)
    assert version.returncode == 0 and version.stdout.strip() == f"autograder {__version__}"


# ------------------------------------------------- a JupyterHub class through nbgrader's exchange
COURSE_ID = "imposter"


def nbgrader(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` as someone whose home is home (their own Jupyter config and cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", course.COURSE_VARIABLE))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nbgrader {' '.join(args)}: {result.stderr[-2000:]}"
    return result


@pytest.mark.filterwarnings("ignore")
def test_exchange_release_fetch_submit_collect_gives_what_grade_reads(course_copy, tmp_path):
    """book/instructors.md's JupyterHub steps, with the exchange in a temporary folder: what
    `nbgrader collect` leaves in submitted/ is a class `autograder grade` accepts."""
    pytest.importorskip("nbgrader", reason="the grading extra is not installed")
    from autograder.submissions import collect

    exchange = tmp_path / "exchange"
    exchange.mkdir()
    on = [f"--course={COURSE_ID}", f"--Exchange.root={exchange}"]
    released = course_copy / "exercises" / FIRST / f"{FIRST}.ipynb"
    nbgrader(course_copy, tmp_path / "instructor", "release_assignment", FIRST, *on)

    for student in ("ana", "bo"):
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        nbgrader(home, home, "fetch_assignment", FIRST, *on)
        mine = home / FIRST / f"{FIRST}.ipynb"
        assert mine.read_bytes() == released.read_bytes()
        nb = json.loads(mine.read_text())
        nb["cells"].append({"cell_type": "markdown", "id": "mine", "metadata": {}, "source": f"by {student}"})
        mine.write_text(json.dumps(nb))
        nbgrader(home, home, "submit", FIRST, f"--student={student}", *on)  # a hub: the login's name

    (course_copy / ".nbgrader").mkdir()  # nbgrader_config.py's scratch gradebook
    nbgrader(course_copy, tmp_path / "instructor", "collect", FIRST, *on,
             "--ExchangeCollect.check_owner=False")

    students = collect(course_copy / "submitted", [FIRST], tmp_path / "scratch")
    assert sorted(s.student for s in students) == ["ana", "bo"]
    for s in students:
        assert not s.problems, s.problems
        path = s.notebooks[FIRST]
        assert path == course_copy / "submitted" / s.student / FIRST / f"{FIRST}.ipynb"
        assert f"by {s.student}" in path.read_text()
