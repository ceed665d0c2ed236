"""Warm kernels (autograder/warm.py, zygote.py): a student's notebooks run in kernels forked from
one sandbox that imported the libraries once. Each kernel must still start as a fresh one would:
nothing of the last notebook's names, files or processes, its own random seeds, figures shown
inline, and nothing of the grader's visible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook

from autograder import warm
from autograder.course import SOLUTIONS
from autograder.kernels import SandboxKernelManager
from autograder.sandbox import UID, Sandbox, claim_slot, owner

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or os.getuid() != 0,
    reason="warm kernels run only in the sandbox (bubblewrap) when grading as root")


def run(zygote: warm.Zygote | None, box: Sandbox, *sources: str) -> list[str]:
    """Run cells in a new sandboxed kernel (forked from zygote when it is current) in a folder of
    its own, removed afterwards as the grader does; return each cell's text output, errors
    included."""
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    folder = tempfile.mkdtemp(prefix="ag-work-", dir=zygote.root if zygote else None)
    client = NotebookClient(nb, kernel_manager_class=SandboxKernelManager, kernel_name="python3",
                            resources={"metadata": {"path": folder}}, timeout=120, allow_errors=True)
    client.km = client.create_kernel_manager()
    client.km.sandbox = box
    forks = zygote.kernels if zygote else 0
    try:
        client.execute()
    except DeadKernelError:
        return ["kernel died"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        assert zygote is None or zygote.kernels == forks + 1, "the kernel was not forked from the zygote"
    return ["".join(text(o) for o in cell.outputs) for cell in nb.cells]


def text(output) -> str:
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    return output.get("text") or json.dumps(output.get("data", {}))


@pytest.fixture(scope="module")
def zygote():
    box = Sandbox(uid=UID + claim_slot())  # binds no source tree: solutions/, .git stay out
    with warm.warm_kernels(box) as held:
        assert held is not None, "the warm sandbox did not start"
        yield held


def test_each_kernel_starts_fresh_with_the_libraries_loaded(zygote):
    first = run(zygote, zygote.box, "import sys, random\nsecret = 42\nprint('torch' in sys.modules)",
                "print(random.random())",
                "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
                "open('left.txt', 'w').write('x')\nimport os\nprint(os.getcwd())")
    second = run(zygote, zygote.box, "import sys, random\nprint('torch' in sys.modules)",
                 "print(random.random())", "print(secret)",
                 f"import os\nprint(sorted(os.listdir('.')), os.path.exists({first[2].strip()!r}))",
                 "print([open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()])")
    assert first[0].strip() == second[0].strip() == "True", "torch is imported in the zygote, once"
    assert first[1] != second[1], "each kernel draws its own random seed"
    assert "NameError" in second[2], "a name from the last notebook leaked"
    assert second[3].strip() == "[] False", "the last notebook's folder or files are visible"
    assert "sleep" not in second[4], "a process the last notebook left is still running"


def test_an_undumpable_process_is_killed_too(zygote):
    """A process that makes itself undumpable (on some kernels its /proc entry then shows root as
    its owner) must not outlive its notebook."""
    hide = "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); time.sleep(1000)"
    [started] = run(zygote, zygote.box,
                    "import subprocess, sys, time\n"
                    f"child = subprocess.Popen([sys.executable, '-c', {hide!r}], start_new_session=True)\n"
                    "time.sleep(2)\ntry:\n    open(f'/proc/{child.pid}/environ').read()\n"
                    "except PermissionError:\n    print(child.pid, 'undumpable')")
    pid, undumpable = started.split()
    assert undumpable == "undumpable"
    [alive] = run(zygote, zygote.box, f"import os\nprint(os.path.exists('/proc/{pid}'))")
    assert alive.strip() == "False", "a process the last notebook made undumpable is still running"


def test_a_kernel_can_change_nothing_above_its_own_folder(zygote):
    planted = zygote.runtime / "planted"
    [above, runtime, moved] = run(
        zygote, zygote.box,
        "import os\ntry:\n    os.listdir('..')\nexcept PermissionError:\n    print('no list')\n"
        "try:\n    open('../planted', 'w')\nexcept PermissionError:\n    print('no write')",
        f"try:\n    open({str(planted)!r}, 'w')\nexcept PermissionError:\n    print('no write')",
        "import os\ntry:\n    os.rename('.', '../moved')\nexcept OSError as err:\n"
        "    print(type(err).__name__)")
    assert above.split() == ["no", "list", "no", "write"] and runtime.strip() == "no write", (above, runtime)
    assert moved.strip() in ("PermissionError", "OSError"), moved
    found = [*zygote.root.iterdir(), *zygote.runtime.iterdir()]
    assert not any(p.name in ("planted", "moved") for p in found), found


def test_figures_show_inline(zygote):
    [shown] = run(zygote, zygote.box, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    assert shown.count("image/png") == 1, shown[:300]


def test_a_forked_kernel_sees_nothing_of_the_grader(zygote):
    [listing] = run(zygote, zygote.box, f"import os\nprint(os.path.exists({str(SOLUTIONS)!r}), "
                                        f"os.path.exists({str(Path(warm.__file__).parent / 'grade.py')!r}))")
    assert listing.strip() == "False False"


def test_a_kernel_that_dies_is_reported_and_the_next_one_starts(zygote):
    died = run(zygote, zygote.box, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert died == ["kernel died"]
    assert run(zygote, zygote.box, "print(1 + 1)") == ["2\n"]


def test_the_zygote_refuses_to_run_outside_a_sandbox(tmp_path):
    """Outside a pid namespace of its own, 'kill every other process' would mean the machine's."""
    result = subprocess.run([sys.executable, str(warm.ZYGOTE), str(tmp_path / "socket")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "only in a sandbox" in result.stderr
    assert not (tmp_path / "socket").exists()


def test_a_zygote_outlives_no_grading(tmp_path):
    box = Sandbox(uid=UID + claim_slot())
    with warm.warm_kernels(box, str(tmp_path)) as held:
        pid, root = held.process.pid, held.root
    assert held.process.poll() is not None and not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_kernel_that_takes_the_zygotes_place_ends_the_warm_sandbox(tmp_path):
    """A kernel binds its own socket where the zygote's was and leaves a process answering
    "nothing left" for ever: the grader sees the answer comes from another process, kills the
    sandbox, and the next notebook starts cold."""
    box = Sandbox(uid=UID + claim_slot())
    with warm.warm_kernels(box, str(tmp_path)) as held:
        impostor = (f"import os, socket\npath = {str(held.socket)!r}\nos.unlink(path)\n"
                    "s = socket.socket(socket.AF_UNIX)\ns.bind(path)\ns.listen()\n"
                    "if os.fork() == 0:\n    os.setsid()\n    while True:\n"
                    "        c, _ = s.accept()\n        c.recv(4096)\n"
                    "        c.sendall(b'{\"left\": 0, \"pid\": 1, \"status\": null, \"ok\": true}\\n')\n"
                    "        c.close()\nprint('bound')")
        assert run(held, box, impostor) == ["bound\n"]
        assert not held.alive(), "the sandbox of a zygote whose place was taken still runs"
        assert warm.usable(box, [warm.LAUNCHER]) is None
        assert run(None, box, "print(1)") == ["1\n"]  # cold
    assert not [p for p in Path("/proc").glob("[0-9]*") if owner(p) == box.uid], "the impostor survived"
