"""Run a notebook the way the autograder does and read which tested parts passed."""

from __future__ import annotations

import copy
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4.rwbase import rejoin_lines

from autograder import GradingError, hidden
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


def read_submission(path: Path, limit: int = 100 * 2**20) -> nbformat.NotebookNode:
    """Read a student's notebook leniently (any nbformat 4 or older, duplicate or missing ids,
    odd metadata: normalise() repairs those), never through a link; a file that is no notebook
    at all is a GradingError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError("not a plain file")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise OSError(f"larger than {limit // 2**20} MB")
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        if raw.get("nbformat") == 4:  # repaired here; older formats are converted by nbformat
            nb = rejoin_lines(nbformat.from_dict(patched(raw)))
        else:
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no cells")
    except Exception as err:  # JSON errors, unreadable files, no notebook: all "not a notebook"
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise GradingError(f"{path.name} is not a valid notebook ({reason})") from None
    return nb


FLAGS = ("grade", "solution", "locked", "task")
MAKE = {"markdown": nbformat.v4.new_markdown_cell, "raw": nbformat.v4.new_raw_cell}


def own_cell(cell) -> nbformat.NotebookNode:
    """A cell of the student's own, rebuilt from its type and text alone: never graded."""
    source = cell.get("source", "")
    source = "".join(map(str, source)) if isinstance(source, list) else str(source)
    return MAKE.get(cell.get("cell_type"), nbformat.v4.new_code_cell)(source)


def patched(raw: dict) -> dict:
    """A version-4 notebook with every key normalise() reads present and of the right type."""
    cells = raw.get("cells")
    raw["cells"] = [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []
    raw["metadata"] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
    for cell in raw["cells"]:
        cell["metadata"] = cell["metadata"] if isinstance(cell.get("metadata"), dict) else {}
        cell.setdefault("source", "")
        cell.setdefault("cell_type", "code")
        if not isinstance(cell["metadata"].get("nbgrader", {}), dict):
            del cell["metadata"]["nbgrader"]
    return raw


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def normalise(theirs: nbformat.NotebookNode, released: nbformat.NotebookNode):
    """The student's notebook rebuilt on the release: its cells in the release's order, with the
    release's cell types, flags, ids, kernelspec and format; each answer cell holds the student's
    text, each test and read-only cell the release's (a deleted test stays deleted: it scores 0),
    the student's own cells follow the cell they followed, and a duplicate of a graded cell becomes
    an ordinary cell that earns nothing. Return (notebook, what was restored)."""
    by_grade_id, by_id = {}, {}
    for i, cell in enumerate(released.cells):
        by_grade_id.setdefault(nbgrader_meta(cell).get("grade_id"), i)
        by_id.setdefault(cell.get("id"), i)
    by_grade_id.pop(None, None)
    by_id.pop(None, None)
    matched: dict[int, nbformat.NotebookNode] = {}
    after: dict[int, list] = {}  # release index (-1: before all) -> the student's own cells
    order, duplicates, flags, last = [], [], [], -1
    for cell in theirs.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        i = by_grade_id.get(grade_id, by_id.get(cell.get("id")))
        if i is not None and i not in matched:
            matched[i] = cell
            order.append(i)
            last = i
            mine, release = nbgrader_meta(cell), nbgrader_meta(released.cells[i])
            if (any(bool(mine.get(k)) != bool(release.get(k)) for k in FLAGS)
                    or cell.get("cell_type") != released.cells[i].cell_type):  # points: tampered()
                flags.append(release.get("grade_id") or f"cell {i}")
            continue
        if grade_id is not None and i is not None:
            duplicates.append(str(grade_id))
        after.setdefault(last, []).append(own_cell(cell))
    cells = list(after.get(-1, []))
    for i, cell in enumerate(released.cells):
        meta, mine = nbgrader_meta(cell), matched.get(i)
        answer = meta.get("solution") or not meta
        if mine is None and meta.get("grade") and not meta.get("solution"):
            pass  # a deleted test: not restored, it scores nothing
        elif mine is None and not meta:
            pass  # an ordinary cell the student deleted
        else:
            new = nbformat.from_dict(cell)
            if mine is not None and answer:
                new.source = mine.get("source", "")
            cells.append(new)
        cells += after.get(i, [])
    for n, cell in enumerate(cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = cell.get("metadata", {})
        if "id" not in cell or any(c.get("id") == cell.id for c in cells[:n]):
            cell.id = f"student-{n}"
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(released.metadata))
    nb.nbformat, nb.nbformat_minor = released.nbformat, released.nbformat_minor
    notes = []
    if order != sorted(order):
        notes.append("cell order")
    if flags:
        notes.append(f"cell flags of {', '.join(flags)}")
    if theirs.get("metadata", {}).get("kernelspec") != released.metadata.get("kernelspec"):
        notes.append("kernelspec")
    if (theirs.get("nbformat"), theirs.get("nbformat_minor")) != (released.nbformat, released.nbformat_minor):
        notes.append("notebook format")
    restored = [f"restored from the release: {', '.join(notes)}"] if notes else []
    if duplicates:
        restored.append(f"duplicated cells not graded again: {', '.join(dict.fromkeys(duplicates))}")
    return nb, restored


def is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


TIMED_OUT = hidden.TIMED_OUT  # the ename nbgrader (and execute() below) gives a cell cut at its timeout


class JudgingClient(NotebookClient):
    """A notebook client that, after each test cell with a hidden test, sends that test's kernel
    half and judges the reply here (autograder/hidden.py), as grading does."""

    def __init__(self, nb, tests: dict, **kw):
        super().__init__(nb, **kw)
        self.tests = tests
        self.verdicts: dict[str, hidden.Verdict] = {}

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        test = self.tests.get(cell.metadata.get("nbgrader", {}).get("grade_id")) if is_test(cell) else None
        if test is not None:
            probe, marker = hidden.new_probe(test)
            try:
                await super().async_execute_cell(probe, cell_index, store_history=False)
            finally:
                self.nb.cells[cell_index] = cell  # nbclient put the probe in the test cell's place
            points = float(cell.metadata["nbgrader"].get("points", 0))
            self.verdicts[test.grade_id] = hidden.judge_probe(test, probe, marker, points)
        return cell


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: int, tests: dict | None = None,
            verdicts: list | None = None) -> float:
    """Execute every cell in folder (errors recorded, not raised; a cell cut at its timeout gets
    a CellTimeoutError, as under nbgrader), judging the hidden tests given (their verdicts go
    into `verdicts`); return the seconds taken."""
    os.environ[GRADING_VARIABLE] = "1"
    start = time.perf_counter()

    def record_timeout(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        if content.get("ename") == TIMED_OUT:
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename=TIMED_OUT, evalue=f"no reply within {timeout} s", traceback=[]))

    client = JudgingClient(nb, tests or {}, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                           error_on_timeout={"ename": TIMED_OUT, "evalue": "", "traceback": []},
                           on_cell_executed=record_timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(folder)}})
    client.execute()
    if verdicts is not None:
        verdicts += client.verdicts.values()
    return time.perf_counter() - start


def error_of(cell) -> str:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {out.evalue}".splitlines()[0][:200]
    return ""


def failed_cells(nb: nbformat.NotebookNode, tests: bool = True) -> list[tuple[int, str]]:
    """Each code cell that timed out or raised (test cells too, unless tests=False), in order, as
    (index, "timed out" | "raised NameError: name 'x' is not defined")."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (not tests and is_test(cell)):
            continue
        outs = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if any(o.get("ename") == TIMED_OUT for o in outs):
            found.append((i, "timed out"))
        elif outs:
            found.append((i, f"raised {error_of(cell)}"))
    return found


def failed_lines(nb: nbformat.NotebookNode, tests: bool = True) -> list[str]:
    """failed_cells() as "cell N raised ..." phrases."""
    return [f"cell {i} {what}" for i, what in failed_cells(nb, tests)]


def parts(nb: nbformat.NotebookNode) -> list[Part]:
    """Each test cell of an executed notebook: passed when it ran without an error."""
    found = []
    for cell in nb.cells:
        if is_test(cell):
            meta = cell.metadata["nbgrader"]
            error = error_of(cell) or ("" if cell.get("execution_count") else "not run")
            found.append(Part(meta["grade_id"], float(meta.get("points", 0)), not error, error))
    return found


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
            note = str(out.get("data", {}).get("text/plain", "")) if out.output_type == "display_data" else ""
            if note.startswith(TRUNCATED[:30]):
                found.append(f"output truncated from cell {i} on (the notebook's cap)"
                             if note.endswith("notebook]") else f"cell {i} output truncated")
            elif out.output_type != "error":
                continue
            elif out.ename == DIED and out.evalue.startswith("not run: "):
                found.append(f"later cells {out.evalue}")
                return found
            elif out.ename == DIED:
                found.append(out.evalue)
            elif out.ename == TIMED_OUT:
                found.append(f"cell {i} timed out")
            elif out.ename == "MemoryError":
                found.append(f"cell {i} ran out of memory")
            elif out.ename == "BlockingIOError" or "Resource temporarily unavailable" in text:
                found.append(f"cell {i} hit the process limit")
            elif any(b in text for b in BLOCKED):
                found.append(f"cell {i} blocked ({text[:80]})")
    return found
