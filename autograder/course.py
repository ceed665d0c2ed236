"""Where the course's notebooks live, and nbgrader configured for a course folder."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import GradingError

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
GRADING_VARIABLE = "CASESTUDY_GRADING"  # the notebooks then always use the synthetic data
DEFAULT_TIMEOUT = 120  # seconds per cell


def assignments(solutions: Path = SOLUTIONS) -> list[str]:
    """Name every assignment: each solutions/<name>/<name>.ipynb."""
    names = sorted(p.parent.name for p in solutions.glob("*/*.ipynb") if p.stem == p.parent.name)
    if not names:
        raise GradingError(f"no assignments in {solutions}: expected <name>/<name>.ipynb")
    return names


def nbgrader_config(root: Path, timeout: int = DEFAULT_TIMEOUT, source: str = "source",
                    release: str = "release") -> Config:
    """Return the repository's nbgrader settings, for a course folder at root (execute.guard
    then makes autograding run each kernel sandboxed)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
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
    return config


def api(config: Config):
    """Return nbgrader's API for a course folder, quiet unless something fails."""
    from nbgrader.apps import NbGraderAPI

    os.environ[GRADING_VARIABLE] = "1"  # kernels inherit it
    tools = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")
    return NbGraderAPI(config=config, log_level="ERROR")


def first_line(*texts: str | None) -> str:
    """The informative line of nbgrader's error and log: the innermost exception, if any."""
    lines = [line.strip() for text in texts for line in (text or "").splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*:", line)
              and "NbGraderException" not in line]
    return (causes or lines or ["unknown error"])[-1][:300]
