"""Hidden tests judged outside the student's kernel.

Each assignment's hidden tests live in `<solutions>/hidden_tests/<assignment>.py`, never in a
notebook. For every test cell `test_x` the file defines two functions:

* `run_test_x()`: its source is sent to the student's kernel right after the test cell, as a
  cell the notebook never holds. It calls the student's code on inputs the grader chose and
  returns plain data: None, bools, numbers, strings, lists, tuples, dicts, NumPy arrays and
  torch tensors (state dicts included). It imports what it needs inside its body and catches
  the exceptions it expects (an uncaught one fails the part).
* `given_*()` functions, optional: helpers (the inputs, say) sent to the kernel with every run
  function and called by the checks too, so both halves use the same inputs.
* `check_test_x(got)`: runs in the grader's process on that data, decoded without unpickling
  anything, and raises AssertionError with a message for the student when it is wrong. It
  computes the right answer from the grader's own copy of the reference.

The verdict (the cell's points, or 0 and the message) replaces what nbgrader read from the
test cell's output, so nothing a student does inside the kernel (patched NumPy, IPython hooks,
input transformers, printed outputs) can change it: at most the student's results are wrong.
The results travel on stdout between a random marker only this cell carries; a reply with no
marker, or more than one, scores 0.
"""

from __future__ import annotations

import base64
import importlib.util
import inspect
import json
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "hidden_tests"  # in the course's solutions folder
MAX_REPLY = 64 * 2**20  # characters of a kernel's reply read at most
DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"}


class BadReply(ValueError):
    """The kernel's results could not be read (absent, duplicated, malformed or too large)."""


@dataclass(frozen=True)
class HiddenTest:
    """One test cell's hidden test: the source its kernel half runs, and the grader's check."""

    grade_id: str
    run_source: str
    check: Callable

    def kernel_source(self, marker: str) -> str:
        """The cell sent to the student's kernel: the run function, then its encoded result."""
        call = f"run_{self.grade_id}"
        defined = ", ".join(re.findall(r"^def (\w+)", self.run_source, flags=re.M))
        return (f"{RELEASE}\n{self.run_source}\n{ENCODER}\n"
                f"try:\n    __ag_reply = __ag_encode({call}())\n"
                f"except BaseException as __ag_err:\n"
                f"    import json as __ag_json\n"
                f"    __ag_reply = __ag_json.dumps({{'__error__': type(__ag_err).__name__ + ': '"
                f" + str(__ag_err)[:500]}})\n"
                f"print({marker!r} + __ag_reply + {marker!r}, flush=True)\n"
                f"del {defined}, __ag_encode, __ag_reply\n")


def path_of(solutions: Path, assignment: str) -> Path:
    return Path(solutions) / FOLDER / f"{assignment}.py"


def load(solutions: Path, assignment: str) -> dict[str, HiddenTest]:
    """The hidden tests of assignment, by test cell grade id ({} when it has none)."""
    path = path_of(solutions, assignment)
    if not path.is_file():
        return {}
    name = "autograder_hidden_" + re.sub(r"\W", "_", assignment)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect.getsource reads the file through it
    spec.loader.exec_module(module)
    functions = {attr: f for attr, f in vars(module).items()
                 if inspect.isfunction(f) and f.__module__ == name}
    given = "".join(inspect.getsource(f) + "\n" for attr, f in functions.items() if attr.startswith("given_"))
    tests = {}
    for attr, run in functions.items():
        if attr.startswith("run_"):
            grade_id = attr.removeprefix("run_")
            check = functions.get(f"check_{grade_id}")
            if check is None:
                raise ValueError(f"{path}: run_{grade_id} has no check_{grade_id}")
            tests[grade_id] = HiddenTest(grade_id, given + inspect.getsource(run), check)
    return tests


# Sent silently before the notebook's first cell: what the kernel half needs is loaded while
# memory is plenty (a student's cell that fills the sandbox's memory must not make it fail).
PRIMER = "import base64, binascii, gc, json, sys\nimport numpy\n"
# Before each kernel half: drop what the last error pinned (its frames may hold huge objects).
RELEASE = ("import gc as __ag_gc, sys as __ag_sys\n"
           "__ag_sys.last_type = __ag_sys.last_value = __ag_sys.last_traceback = None\n"
           "__ag_gc.collect()\ndel __ag_gc, __ag_sys")


def new_marker() -> str:
    return f"@@autograder-{secrets.token_hex(16)}@@"


# Runs in the student's kernel: plain data to JSON, arrays as base64 bytes. Whatever the student
# patched here can only change their own results, which the grader then judges.
ENCODER = '''
def __ag_encode(value):
    import base64 as b64
    import json as js
    import numpy as npy
    def plain(v):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, npy.generic):
            return plain(v.item())
        if type(v).__module__.startswith("torch") and hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        if isinstance(v, npy.ndarray):
            a = npy.ascontiguousarray(v)
            return {"__array__": b64.b64encode(a.tobytes()).decode(), "dtype": a.dtype.name,
                    "shape": list(a.shape)}
        if isinstance(v, dict):
            return {"__dict__": [[plain(k), plain(x)] for k, x in v.items()]}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return {"__type__": type(v).__module__ + "." + type(v).__qualname__}
    return js.dumps(plain(value))
'''


def decode(reply: str, marker: str):
    """The value between the one pair of markers in a kernel's reply; a BadReply otherwise."""
    if len(reply) > MAX_REPLY:
        raise BadReply("the reply is too large")
    pieces = reply.split(marker)
    if len(pieces) != 3:
        raise BadReply("no reply" if len(pieces) == 1 else "a malformed or repeated reply")
    try:
        return plain(json.loads(pieces[1]))
    except (ValueError, TypeError, KeyError) as err:
        raise BadReply(f"a malformed reply ({type(err).__name__})") from None


def plain(value):
    """JSON from the kernel to Python values: arrays rebuilt from their bytes, no pickle."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__array__", "dtype", "shape"}:
        if value["dtype"] not in DTYPES:
            raise ValueError(f"dtype {value['dtype']!r}")
        shape = [int(n) for n in value["shape"]]
        if any(n < 0 for n in shape):
            raise ValueError("shape")
        return np.frombuffer(base64.b64decode(value["__array__"], validate=True),
                             dtype=value["dtype"]).reshape(shape).copy()
    if set(value) == {"__dict__"}:
        return {hashable(plain(k)): plain(v) for k, v in value["__dict__"]}
    if set(value) == {"__type__"}:
        return Opaque(str(value["__type__"]))
    if set(value) == {"__error__"}:
        return KernelError(str(value["__error__"]))
    raise ValueError("an unknown object")


def hashable(key):
    return tuple(key) if isinstance(key, list) else key


@dataclass(frozen=True)
class Opaque:
    """An object of a type plain data cannot hold: only its type's name came back."""

    type_name: str


@dataclass(frozen=True)
class KernelError:
    """The run function raised in the student's kernel."""

    message: str


@dataclass
class Verdict:
    grade_id: str
    points: float  # earned
    max_points: float
    message: str = ""  # why points were lost

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points

    def line(self) -> str:
        text = f"{self.grade_id} {self.points:g}/{self.max_points:g}"
        return f"{text}: {self.message}" if self.message else text


def judge(test: HiddenTest, got, max_points: float) -> Verdict:
    """The grader's verdict on what the student's code returned."""
    if isinstance(got, KernelError):
        return Verdict(test.grade_id, 0, max_points, f"raised {got.message}")
    try:
        test.check(got)
    except AssertionError as err:
        return Verdict(test.grade_id, 0, max_points, short(str(err)) or "a hidden check failed")
    except Exception as err:  # results of the wrong shape or type: wrong, not the grader's crash
        reason = f"unexpected result ({type(err).__name__}: {err})"
        return Verdict(test.grade_id, 0, max_points, short(reason))
    return Verdict(test.grade_id, max_points, max_points)


TIMED_OUT = "CellTimeoutError"  # the ename nbgrader (and notebooks.execute) gives a cell cut at its timeout


def new_probe(test: HiddenTest) -> tuple[dict, str]:
    """The cell that carries a test's kernel half (the notebook never holds it), and its marker."""
    import nbformat

    marker = new_marker()
    return nbformat.v4.new_code_cell(test.kernel_source(marker)), marker


def judge_probe(test: HiddenTest, probe, marker: str, max_points: float) -> Verdict:
    """The verdict on an executed probe: what it printed between its markers, judged here."""
    outputs = probe.get("outputs", [])
    if any(o.get("ename") == TIMED_OUT for o in outputs):
        return Verdict(test.grade_id, 0, max_points, "the hidden tests timed out")
    reply = "".join(o.get("text", "") for o in outputs
                    if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return judge_reply(test, reply, marker, max_points)


def judge_reply(test: HiddenTest, reply: str, marker: str, max_points: float) -> Verdict:
    try:
        got = decode(reply, marker)
    except BadReply as err:
        return Verdict(test.grade_id, 0, max_points, f"the kernel's replies to the hidden tests could not "
                                                     f"be read ({err})")
    return judge(test, got, max_points)


def judge_here(test: HiddenTest, namespace: dict, max_points: float = 1) -> Verdict:
    """Run a hidden test in this process, on a namespace holding the student's functions (the
    tests of the tests use it; the same encoding round trip as a real kernel)."""
    import contextlib
    import io

    marker = new_marker()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(test.kernel_source(marker), f"<hidden {test.grade_id}>", "exec"), namespace)
    return judge_reply(test, out.getvalue(), marker, max_points)


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
