"""Run a notebook the way the autograder does and read which tested parts passed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder import GradingError
from autograder.course import GRADING_VARIABLE


@dataclass
class Part:
    """One autograded test cell and how it went."""

    grade_id: str
    points: float
    passed: bool
    error: str = ""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook; a broken file is a GradingError naming what is wrong."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # JSON errors, schema errors, unreadable files: all "not a notebook"
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise GradingError(f"{path.name} is not a valid notebook ({reason})") from None
    return nb


def is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: int) -> float:
    """Execute every cell in folder (errors recorded, not raised); return the seconds taken."""
    os.environ[GRADING_VARIABLE] = "1"
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                   kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def error_of(cell) -> str:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {out.evalue}".splitlines()[0][:200]
    return ""


def parts(nb: nbformat.NotebookNode) -> list[Part]:
    """Each test cell of an executed notebook: passed when it ran without an error."""
    found = []
    for cell in nb.cells:
        if is_test(cell):
            meta = cell.metadata["nbgrader"]
            error = error_of(cell) or ("" if cell.get("execution_count") else "not run")
            found.append(Part(meta["grade_id"], float(meta.get("points", 0)), not error, error))
    return found


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """Every cell that raised, as "cell N: error"."""
    return [f"cell {i}: {error_of(c)}" for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and error_of(c)]
