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


def tampered(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode,
             source: nbformat.NotebookNode) -> list[str]:
    """The released test cells a student deleted, edited or re-pointed (grading restores them);
    a test cell as in the source (hidden tests included) is not edited."""
    original = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if is_test(c)}
    theirs = {c.metadata["nbgrader"].get("grade_id"): c for c in submitted.cells
              if "nbgrader" in c.metadata}
    found = []
    for cell in filter(is_test, released.cells):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        mine = theirs.get(grade_id)
        points = mine.metadata["nbgrader"].get("points") if mine else None
        changes = (["deleted"] if mine is None else
                   (["edited"] if mine.source not in (cell.source, original.get(grade_id)) else [])
                   + ([f"points {points}"] if points != cell.metadata["nbgrader"].get("points") else []))
        if changes:
            found.append(f"{grade_id} ({', '.join(changes)})")
    return found


BLOCKED = ("Read-only file system", "Network is unreachable", "Permission denied",
           "Operation not permitted", "Connection refused", "name resolution")


def incidents(nb: nbformat.NotebookNode) -> list[str]:
    """What the sandbox and the limits stopped in an executed notebook, one phrase per cell."""
    from autograder.execute import DIED, TRUNCATED

    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
            if out.output_type == "display_data" and str(out.data.get("text/plain", "")).startswith(
                    TRUNCATED[:30]):
                found.append(f"cell {i} output truncated")
            elif out.output_type != "error":
                continue
            elif out.ename == DIED and out.evalue.startswith("not run: "):
                found.append(f"later cells {out.evalue}")
                return found
            elif out.ename == DIED:
                found.append(out.evalue)
            elif out.ename == "CellTimeoutError":
                found.append(f"cell {i} timed out")
            elif out.ename == "MemoryError":
                found.append(f"cell {i} ran out of memory")
            elif out.ename == "BlockingIOError" or "Resource temporarily unavailable" in text:
                found.append(f"cell {i} hit the process limit")
            elif any(b in text for b in BLOCKED):
                found.append(f"cell {i} blocked ({text[:80]})")
    return found
