"""Warm kernels: one sandbox per student's notebooks, whose zygote (zygote.py) has imported the
notebooks' libraries once and forks a fresh kernel for each notebook.

A kernel that starts by importing torch, pandas, matplotlib and the course package spends about
3 s of CPU before the student's first line runs, seven times per student. Each forked kernel is
still fresh: no student code runs in the zygote, each notebook gets its own empty folder, and
whatever one notebook's kernel left running is killed before the next starts. The students'
isolation from each other and from the grader is the sandbox's, as for a cold kernel; the memory
cap (a cgroup, when grading as root) covers the student's sandbox as a whole.

Only when grading as root, where the kernels run as a uid of their own: then a kernel can write
nothing of the sandbox's layout (the folders above its own, where the grader copies files in and
out, are root's), cannot ptrace or impersonate the zygote (it is not dumpable, and every reply is
checked to come from its pid), and nothing of the student runs while the grader copies: after
each kernel, the zygote kills every other process of the sandbox. Elsewhere (no sandbox, not
root, or the zygote fails to start) kernels start cold, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

from autograder import sandbox
from autograder.sandbox import Sandbox

ZYGOTE = Path(__file__).resolve().with_name("zygote.py")
PRELOAD = ("numpy", "pandas", "matplotlib.pyplot", "torch", "torchvision", "PIL.Image",
           "sklearn.metrics", "sklearn.manifold", "scipy.stats", "IPython.display",
           "ipykernel.kernelapp", "ipykernel.ipkernel", "matplotlib_inline.backend_inline",
           "casestudy.config", "casestudy.runtime", "casestudy.data", "casestudy.eda",
           "casestudy.train", "casestudy.evaluate", "casestudy.embed", "casestudy.explain",
           "casestudy.report", "casestudy.synthetic", "casestudy.runs", "casestudy.features",
           "casestudy.model", "pytorch_grad_cam")
START_WAIT = 300  # seconds for the zygote's imports (a busy disk can make torch's take a minute)
REPLY_WAIT = 60  # seconds for one request (a fork first kills what the last kernel left)
LAUNCHER = "ipykernel_launcher"


@dataclass
class Zygote:
    """A student's sandbox holding the zygote; kernels run in folders below root."""

    box: Sandbox
    root: Path  # root's, bound: each notebook's scratch folder is made here
    runtime: Path  # root's, bound: z/ (the kernels' uid's) holds the zygote's socket, k*/ one kernel's each
    process: subprocess.Popen
    group: Path | None  # the memory cgroup of the whole sandbox, or None
    kernels: int = 0
    pid: int = 0  # the zygote's, as this process sees it: only it may answer

    @property
    def socket(self) -> Path:
        return self.runtime / "z" / "socket"

    def request(self, **message) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(REPLY_WAIT)
            sock.connect(str(self.socket))
            peer = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
            if self.pid and peer != self.pid:  # a kernel bound its own socket in the zygote's place
                raise OSError(f"the zygote's socket is answered by process {peer}, not {self.pid}")
            sock.sendall((json.dumps(message) + "\n").encode())
            reply = json.loads(sock.makefile("r", encoding="utf-8").readline())
            self.pid = self.pid or peer
        if "error" in reply:
            raise OSError(f"the zygote: {reply['error']}")
        return reply

    def kernel_folder(self) -> Path:
        """A new folder for the next kernel's connection file and sockets (the kernel manager
        lets the kernel's uid write it at launch), made while nothing of the student runs."""
        return Path(tempfile.mkdtemp(prefix="k", dir=self.runtime))

    def clean(self) -> None:
        """Kill everything in the sandbox but the zygote; if it cannot, the whole sandbox."""
        try:
            if self.request(op="clean")["left"] == 0:
                return
        except (OSError, ValueError, KeyError):
            pass
        self.kill()  # the next notebooks start cold (usable() sees it dead)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Kill the sandbox and everything in it; remove its folders."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        sandbox.empty_group(self.group)
        sandbox.reap(self.box.uid)


def start(box: Sandbox, scratch: str = "") -> Zygote | None:
    """Start a student's sandbox with its zygote and wait for its imports; None when it cannot."""
    if not box.enabled or os.getuid() != 0:
        return None
    if scratch:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ag-warm-", dir=scratch or None))
    runtime = Path(tempfile.mkdtemp(prefix="ag-"))  # short: socket paths must be < 108 bytes
    for folder in (root, runtime):
        folder.chmod(0o711)  # the kernels pass through, and can neither list nor change them
    (runtime / "z").mkdir(mode=0o700)
    sandbox.prepare(runtime / "z", box.uid)
    sandbox.reap(box.uid)
    serve = [sys.executable, str(ZYGOTE), str(runtime / "z" / "socket"), *PRELOAD]
    argv = sandbox.command(root, runtime, box, serve, files=[ZYGOTE])
    group = sandbox.memory_group(f"ag-{os.getpid()}-{box.uid}-warm", box.memory_mb * 2**20)
    argv = sandbox.joining(group, argv)
    env = sandbox.clean_env(dict(os.environ))
    process = subprocess.Popen(argv, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    zygote = Zygote(box, root, runtime, process, group)
    deadline = time.monotonic() + START_WAIT
    while zygote.alive() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            zygote.request(op="ping")
            sandbox.allow_more(group, box.memory_mb * 2**20)
            return zygote
        time.sleep(0.1)
    zygote.close()
    return None


CURRENT: Zygote | None = None  # the zygote this worker's kernels fork from (one grading at a time)


@contextlib.contextmanager
def warm_kernels(box: Sandbox, scratch: str = "") -> Iterator[Zygote | None]:
    """Within: this process's sandboxed kernels fork from one zygote in box (or start cold)."""
    global CURRENT
    zygote = start(box, scratch)
    CURRENT = zygote
    try:
        yield zygote
    finally:
        CURRENT = None
        if zygote is not None:
            zygote.close()


@contextlib.contextmanager
def cold_kernels() -> Iterator[None]:
    """Within: kernels start cold, whatever zygote this process holds."""
    global CURRENT
    held, CURRENT = CURRENT, None
    try:
        yield
    finally:
        CURRENT = held


def usable(box: Sandbox, kernel_cmd: list[str]) -> Zygote | None:
    """The zygote a kernel with this command and sandbox can fork from, or None."""
    zygote = CURRENT
    if zygote is None or zygote.box != box or not zygote.alive() or LAUNCHER not in kernel_cmd:
        return None
    return zygote


class ForkedKernel:
    """What jupyter_client needs of a Popen, for a kernel the zygote forked (pid: in its sandbox)."""

    stdin = stdout = stderr = None

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.zygote.request(op="poll", pid=self.pid)["status"]
            except (OSError, ValueError, KeyError):  # the sandbox is gone, and the kernel with it
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(LAUNCHER, timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.zygote.request(op="signal", pid=self.pid, signal=int(sig))

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """Launches the kernel by asking the zygote for a fork, with the kernel's argv, cwd and env."""

    zygote: Zygote | None = None

    async def launch_kernel(self, cmd: list[str], **kw) -> dict:
        zygote = self.zygote
        assert zygote is not None
        argv = cmd[cmd.index(LAUNCHER) + 1:]
        cwd = str(Path(kw.get("cwd") or os.getcwd()).resolve())
        pid = zygote.request(op="fork", argv=argv, cwd=cwd, env=kw.get("env") or {})["pid"]
        zygote.kernels += 1
        self.process = ForkedKernel(zygote, int(pid))
        self.pid, self.pgid, self.cwd = None, None, cwd  # never signal a host pid: it is not ours
        return self.connection_info

    async def cleanup(self, restart: bool = False) -> None:
        """After the kernel: nothing of it may run while the grader copies its folder out."""
        if self.zygote is not None:
            self.zygote.clean()
        await super().cleanup(restart=restart)
