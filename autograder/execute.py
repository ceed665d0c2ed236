"""nbgrader's Execute, hardened: a sandboxed kernel, capped output, and a kernel death that
costs the student only the cells it stopped (nbgrader would otherwise record no grade at all)."""

from __future__ import annotations

import json

from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer

from autograder.sandbox import SandboxKernelManager

TRUNCATED = "[autograder: output truncated: more than {mb:g} MB from this cell]"
DIED = "KernelDied"  # the ename of the error put into the cell where the kernel died and after it
MAX_ERROR_TEXT = 10_000  # characters of an error's message and of each traceback line


class GuardedExecute(Execute):
    """Execute in the sandbox; keep at most max_output bytes of each cell's output (errors
    always kept: they decide the score), and on kernel death mark the rest as not run."""

    max_output = Integer(2 * 2**20, help="bytes of output kept per cell").tag(config=True)

    def __init__(self, **kw):
        kw["kernel_manager_class"] = SandboxKernelManager
        super().__init__(**kw)

    def preprocess(self, nb, resources=None, km=None):
        self._used: dict[int, int] = {}
        self._dead = ""
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._dead and cell.cell_type == "code":
            cell.outputs = [died(f"not run: {self._dead}")]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead = f"the kernel died in cell {index}"
            cell.outputs.append(died(f"{self._dead} (out of memory or CPU time, or killed)"))
            return cell, resources
        timed_out = any(out.get("ename") == "CellTimeoutError" for out in cell.get("outputs", []))
        if timed_out and not self.responsive():  # else every later cell would wait its timeout
            self._dead = f"the kernel stopped responding after cell {index}"
        return cell, resources

    def responsive(self) -> bool:
        """Whether the kernel, interrupted after a timeout, runs an empty cell in time."""
        reply = self.wait_for_reply(self.kc.execute("", silent=True, store_history=False))
        return bool(reply) and reply["content"].get("status") == "ok"

    def output(self, outs, msg, display_id, cell_index):
        content = msg["content"]
        if msg["msg_type"] == "error":
            content["evalue"] = str(content.get("evalue", ""))[:MAX_ERROR_TEXT]
            content["traceback"] = [str(line)[:MAX_ERROR_TEXT] for line in content.get("traceback", [])]
            return super().output(outs, msg, display_id, cell_index)
        used = self._used.get(cell_index, 0)
        if used > self.max_output:
            return None
        used += len(json.dumps(content.get("data") or content.get("text") or ""))
        self._used[cell_index] = used
        if used > self.max_output:
            note = TRUNCATED.format(mb=self.max_output / 2**20)
            outs.append(new_output("display_data", data={"text/plain": note}))  # LimitOutput keeps it
            return None
        return super().output(outs, msg, display_id, cell_index)


def died(reason: str):
    return new_output("error", ename=DIED, evalue=reason, traceback=[f"{DIED}: {reason}"])
