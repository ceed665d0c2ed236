"""Where the course's notebooks live, and nbgrader configured for a course folder.

A course folder holds nbgrader_config.py, whose CourseDirectory.source_directory (here
solutions/) and release_directory (here exercises/) name the instructor's and the students'
notebooks. The commands find it from `--course DIR`, else upwards from the current folder,
else in the checkout the package runs from; `using` makes that choice for the whole process
(and the grading workers it spawns, through the environment variable COURSE_VARIABLE).
SOLUTIONS and EXERCISES are read lazily: they name the current course's folders.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder import GradingError

CONFIG = "nbgrader_config.py"
PARENT = Path(__file__).resolve().parents[1]  # a checkout, or site-packages when installed
# The checkout the package runs from, which the sandbox never shows a student's kernel; when
# installed there is none, and the package's own folder stands in (site-packages must stay visible).
REPO = PARENT if (PARENT / "pyproject.toml").is_file() else Path(__file__).resolve().parent
COURSE_VARIABLE = "AUTOGRADER_COURSE"  # the chosen course folder, inherited by grading workers
NO_COURSE = "no course folder: run from a folder with nbgrader_config.py, or give --course DIR"
GRADING_VARIABLE = "CASESTUDY_GRADING"  # the notebooks then always use the synthetic data
DEFAULT_TIMEOUT = 120  # seconds per cell


@dataclass(frozen=True)
class Course:
    """A course folder and the names its nbgrader_config.py gives the source and release."""

    root: Path
    source: str = "source"
    release: str = "release"

    @property
    def solutions(self) -> Path:
        return self.root / self.source

    @property
    def exercises(self) -> Path:
        return self.root / self.release


def load_config(root: Path):
    """The traitlets Config of root/nbgrader_config.py (a GradingError when it cannot be read)."""
    from traitlets.config.loader import PyFileConfigLoader

    try:
        return PyFileConfigLoader(CONFIG, path=str(root)).load_config()
    except Exception as err:  # the instructor's Python file: any error is theirs to fix
        raise GradingError(f"{root / CONFIG} cannot be read: {type(err).__name__}: {err}"[:300]) from None


def read_course(root: Path) -> Course:
    """The course whose nbgrader_config.py is in root."""
    root = Path(root).expanduser().resolve()
    if not (root / CONFIG).is_file():
        raise GradingError(f"{root}: no {CONFIG} there, so it is no course folder; give the folder "
                           f"holding {CONFIG} and the solutions")
    folders = load_config(root).CourseDirectory
    return Course(root, str(folders.get("source_directory", "source")),
                  str(folders.get("release_directory", "release")))


def find_course(start: Path | None = None) -> Course:
    """The nearest course folder upwards from start (default: the current folder) whose source
    folder exists; else the checkout the package runs from; else a GradingError."""
    start = Path(start or Path.cwd()).resolve()
    for folder in [start, *start.parents]:
        if (folder / CONFIG).is_file():
            course = read_course(folder)
            if course.solutions.is_dir():
                return course
    if (REPO / CONFIG).is_file() and (REPO / "solutions").is_dir():  # running from a checkout
        return read_course(REPO)
    raise GradingError(NO_COURSE)


def current() -> Course:
    """The course chosen by `using` (also in a spawned worker), else the one found from here."""
    chosen = os.environ.get(COURSE_VARIABLE)
    return read_course(Path(chosen)) if chosen else find_course()


@contextlib.contextmanager
def using(folder: Path | None):
    """Make folder (None: the current one, see `current`) this process's course."""
    course = read_course(folder) if folder is not None else current()
    before = os.environ.get(COURSE_VARIABLE)
    os.environ[COURSE_VARIABLE] = str(course.root)
    try:
        yield course
    finally:
        if before is None:
            os.environ.pop(COURSE_VARIABLE, None)
        else:
            os.environ[COURSE_VARIABLE] = before


def __getattr__(name: str) -> Path:
    """SOLUTIONS and EXERCISES: the current course's source and release folders."""
    if name == "SOLUTIONS":
        return current().solutions
    if name == "EXERCISES":
        return current().exercises
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def assignments(solutions: Path | None = None) -> list[str]:
    """Name every assignment: each solutions/<name>/<name>.ipynb."""
    solutions = solutions if solutions is not None else current().solutions
    names = sorted(p.parent.name for p in solutions.glob("*/*.ipynb") if p.stem == p.parent.name)
    if not names:
        raise GradingError(f"no assignments in {solutions}: expected <name>/<name>.ipynb")
    return names


def nbgrader_config(root: Path, timeout: int = DEFAULT_TIMEOUT, source: str = "source",
                    release: str = "release"):
    """Return the course's nbgrader settings, for an nbgrader course folder at root (execute.guard
    then makes autograding run each kernel sandboxed)."""
    config = load_config(current().root)
    course = config.CourseDirectory
    course.root = str(root)
    course.source_directory = source
    course.release_directory = release
    course.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Execute.timeout = timeout
    config.Execute.startup_timeout = max(60, timeout)
    config.Execute.iopub_timeout = 30  # late output on a busy machine is not a failed notebook
    config.Execute.raise_on_iopub_timeout = False
    config.Exchange.root = str(root / "exchange")  # unused; nbgrader wants a writable one
    # feedback shows hidden tests' results, never their source (autograder/feedback.py)
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from autograder.feedback import HideHiddenTests

    config.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
    return config


def api(config):
    """Return nbgrader's API for a course folder, quiet unless something fails."""
    from nbgrader.apps import NbGraderAPI

    os.environ[GRADING_VARIABLE] = "1"  # kernels inherit it
    tools_on_path()
    return NbGraderAPI(config=config, log_level="ERROR")


def tools_on_path() -> None:
    """nbgrader's Gradebook runs `alembic` from PATH: put this Python's scripts folder there."""
    tools = str(Path(sys.executable).parent)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def first_line(*texts: str | None) -> str:
    """The informative line of nbgrader's error and log: the innermost exception, if any."""
    lines = [line.strip() for text in texts for line in (text or "").splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*:", line)
              and "NbGraderException" not in line]
    return (causes or lines or ["unknown error"])[-1][:300]
