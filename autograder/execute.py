"""nbgrader's Execute, hardened: a sandboxed kernel in a scratch folder of its own, capped output,
and a kernel death that costs the student only the cells it stopped (nbgrader would otherwise
record no grade at all).

The kernel never sees nbgrader's autograded/ folder: it runs in a fresh scratch folder, and only
plain files come back from it, within quotas (workdir.py). What it did is recorded in the
file INCIDENTS beside the graded notebook, for the grade's status.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer, List, Unicode

from autograder import hidden, warm
from autograder.batch import SHARED, copy_into
from autograder.kernels import SandboxKernelManager
from autograder.sanitise import sanitise
from autograder.workdir import INCIDENTS, VERDICTS, copy_plain

TRUNCATED = "[autograder: output truncated: more than {mb:g} MB from this {where}]"
DIED = "KernelDied"  # the ename of the error put into the cell where the kernel died and after it
MAX_ERROR_TEXT = 10_000  # characters of an error's message and of each traceback line


class GuardedExecute(Execute):
    """Execute in the sandbox, in a scratch folder; keep at most max_output bytes of each cell's
    output and max_notebook_output of the whole notebook's (errors always kept: they decide the
    score), on kernel death mark the rest as not run, then sanitise what a browser would show."""

    max_output = Integer(2 * 2**20, help="bytes of output kept per cell").tag(config=True)
    max_notebook_output = Integer(10 * 2**20, help="bytes of output kept per notebook").tag(config=True)
    max_copy_bytes = Integer(20 * 2**20, help="bytes of the kernel's files copied back").tag(config=True)
    max_copy_files = Integer(200, help="files of the kernel's copied back").tag(config=True)
    scratch = Unicode("", help="where kernels' scratch folders go (default: temp)").tag(config=True)
    ignore = List([], help="file patterns never copied back").tag(config=True)
    solutions = Unicode("", help="the course's solutions, whose hidden_tests/ judge the test cells").tag(
        config=True)
    batch = Unicode("", help="the grading run's shared data and run, copied in (batch.py)").tag(config=True)

    def __init__(self, **kw):
        kw["kernel_manager_class"] = SandboxKernelManager
        super().__init__(**kw)

    def preprocess(self, nb, resources=None, km=None):
        self._used: dict[int, int] = {}
        self._total = 0
        self._dead = ""
        self._replying = -1  # characters of a hidden test's reply so far; -1: not in one
        self._verdicts: dict[str, hidden.Verdict] = {}
        resources = resources if resources is not None else {}
        assignment = resources.get("nbgrader", {}).get("assignment", "")
        self._hidden = hidden.load(Path(self.solutions), assignment) if self.solutions and assignment else {}
        meta = resources.setdefault("metadata", {})
        home = Path(meta.get("path") or ".")
        if self.scratch:
            Path(self.scratch).mkdir(parents=True, exist_ok=True)
        zygote = warm.CURRENT  # a warm sandbox's kernels run in folders below its root
        where = str(zygote.root) if zygote is not None and zygote.alive() else (self.scratch or None)
        work = Path(tempfile.mkdtemp(prefix="ag-work-", dir=where))
        notes = []
        try:
            copy_plain(home, work, self.max_copy_bytes, self.max_copy_files, self.ignore)
            if self.batch:  # the grader's own files: no quota in, never copied back out
                copy_into(Path(self.batch), work)
            meta["path"] = str(work)
            nb, resources = super().preprocess(nb, resources, km)
            copied = copy_plain(work, home, self.max_copy_bytes, self.max_copy_files, self.ignore,
                                SHARED if self.batch else ())
            notes += [f"the kernel's files: {note}" for note in copied.notes()]
        finally:
            meta["path"] = str(home)
            shutil.rmtree(work, ignore_errors=True)
        if sanitise(nb):
            notes.append("unsafe HTML removed from outputs or answers")
        (home / INCIDENTS).write_text(json.dumps(notes))  # never copied from the kernel (workdir.py)
        verdicts = [vars(v) for v in self._verdicts.values()]
        (home / VERDICTS).write_text(json.dumps(verdicts))
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if self._hidden and index == 0:  # the kernel half's imports, while memory is plenty
            self.wait_for_reply(self.kc.execute(hidden.PRIMER, silent=True, store_history=False))
        if self._dead and cell.cell_type == "code":
            cell.outputs = [died(f"not run: {self._dead}")]
            self.judge_hidden(cell, index)
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead = f"the kernel died in cell {index}"
            cell.outputs.append(died(f"{self._dead} (out of memory or CPU time, or killed)"))
            self.judge_hidden(cell, index)
            return cell, resources
        timed_out = any(out.get("ename") == hidden.TIMED_OUT for out in cell.get("outputs", []))
        if timed_out and not self.responsive():  # else every later cell would wait its timeout
            self._dead = f"the kernel stopped responding after cell {index}"
        if cell.metadata.get("nbgrader", {}).get("grade"):
            for out in cell.get("outputs", []):  # nbgrader scores any stderr as a failure:
                if out.output_type == "stream" and out.name == "stderr":  # a warning is not one
                    out.name = "stdout"
        self.judge_hidden(cell, index)
        return cell, resources

    def judge_hidden(self, cell, index: int) -> None:
        """After a test cell, run its hidden test's kernel half in a cell the notebook never holds,
        and judge the reply here (hidden.py)."""
        meta = cell.metadata.get("nbgrader", {})
        test = self._hidden.get(meta.get("grade_id")) if cell.cell_type == "code" else None
        if test is None or not meta.get("grade") or meta.get("solution") or test.grade_id in self._verdicts:
            return
        points = float(meta.get("points", 0))
        if self._dead:
            self._verdicts[test.grade_id] = hidden.Verdict(test.grade_id, 0, points, f"not run: {self._dead}")
            return
        probe, marker = hidden.new_probe(test)
        self._replying = 0
        try:
            super().preprocess_cell(probe, self.resources, index)
        except DeadKernelError:
            self._dead = f"the kernel died in the hidden tests after cell {index}"
        finally:
            self._replying = -1
            self.nb.cells[index] = cell  # nbclient put the probe in the test cell's place
        self._verdicts[test.grade_id] = hidden.judge_probe(test, probe, marker, points)

    def responsive(self) -> bool:
        """Whether the kernel, interrupted after a timeout, runs an empty cell in time."""
        reply = self.wait_for_reply(self.kc.execute("", silent=True, store_history=False))
        return bool(reply) and reply["content"].get("status") == "ok"

    def output(self, outs, msg, display_id, cell_index):
        content = msg["content"]
        if self._replying >= 0:  # a hidden test's reply: never shown, read up to its own cap
            self._replying += len(json.dumps(content.get("data") or content.get("text") or ""))
            if self._replying > hidden.MAX_REPLY:
                return None
            return super().output(outs, msg, display_id, cell_index)
        if msg["msg_type"] == "error":
            content["evalue"] = str(content.get("evalue", ""))[:MAX_ERROR_TEXT]
            content["traceback"] = [str(line)[:MAX_ERROR_TEXT] for line in content.get("traceback", [])]
            return super().output(outs, msg, display_id, cell_index)
        used = self._used.get(cell_index, 0)
        if used > self.max_output or self._total > self.max_notebook_output:
            return None
        size = len(json.dumps(content.get("data") or content.get("text") or ""))
        self._used[cell_index] = used + size
        self._total += size
        for cap, where, spent in ((self.max_output, "cell", used + size),
                                  (self.max_notebook_output, "notebook", self._total)):
            if spent > cap:
                note = TRUNCATED.format(mb=cap / 2**20, where=where)
                outs.append(new_output("display_data", data={"text/plain": note}))  # LimitOutput keeps it
                self._used[cell_index] = self.max_output + 1
                return None
        return super().output(outs, msg, display_id, cell_index)


def died(reason: str):
    return new_output("error", ename=DIED, evalue=reason, traceback=[f"{DIED}: {reason}"])


def guard(config, sandbox, max_output_mb: float = 2, max_notebook_output_mb: float = 10,
          scratch: str = "", solutions: str = "", batch: str = "") -> None:
    """Make nbgrader's autograding in config run each kernel in sandbox, output capped, with the
    hidden tests of solutions/hidden_tests judged after their test cells, and a copy of batch's
    data and run (batch.py) when given."""
    from nbgrader.converters import Autograde

    steps = Autograde.class_traits()["autograde_preprocessors"].default()
    config.Autograde.autograde_preprocessors = [GuardedExecute if s is Execute else s for s in steps]
    config.GuardedExecute.max_output = int(max_output_mb * 2**20)
    config.GuardedExecute.max_notebook_output = int(max_notebook_output_mb * 2**20)
    config.GuardedExecute.scratch = scratch
    config.GuardedExecute.batch = batch
    config.GuardedExecute.ignore = list(config.CourseDirectory.ignore)
    config.GuardedExecute.solutions = solutions
    config.SandboxKernelManager.sandbox = sandbox
