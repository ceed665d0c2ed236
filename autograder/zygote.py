"""Inside one student's sandbox: import what the notebooks import, once, then fork a fresh kernel
for each notebook (warm.py asks, over a Unix socket).

Importing torch, pandas, matplotlib and the course package costs a new kernel about 3 s; a
fork of this process starts with them loaded and with nothing any notebook ran, since no student
code ever runs here. Before each fork, whatever the last kernel left running is killed (this is
the sandbox's own pid namespace: it sees only the student's processes). Run as a script, so the
sandbox needs only this file: `python zygote.py SOCKET MODULE...`.

The zygote is not dumpable, so the kernels it forks (same uid, no capabilities) can neither
ptrace it nor read its memory: it stays the clean copy.

Requests are one JSON line each, answered with one JSON line:
  {"op": "fork", "argv": [...], "cwd": ..., "env": {...}}  -> {"pid": n}  (ipykernel's argv)
  {"op": "poll", "pid": n}                                -> {"status": null | exit status}
  {"op": "signal", "pid": n, "signal": s}                 -> {"ok": true}  (the kernel's group)
  {"op": "clean"}                                         -> {"left": n}  (after killing all else)
  {"op": "ping"}                                          -> {"ok": true}
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import time

SANDBOX_ENV = ("HOME", "TMPDIR", "JPY_PARENT_PID")  # what bwrap set for the sandbox: kept
PR_SET_DUMPABLE = 4
INLINE = "module://matplotlib_inline.backend_inline"  # what ipykernel sets before any import


def preload(modules: list[str]) -> None:
    os.environ.setdefault("MPLBACKEND", INLINE)
    for name in modules:
        with contextlib.suppress(Exception):  # a module this course lacks: the kernel imports it
            importlib.import_module(name)


def confined() -> bool:
    """Whether this process is the first of a pid namespace of its own (the sandbox's: bwrap's
    init is 1, its command 2; on a machine, 2 is a kernel thread), as a user: only there may it
    kill every other process it sees."""
    return os.getpid() == 2 and os.getppid() == 1 and os.getuid() != 0


def others() -> list[int]:
    """Every process of this pid namespace but its init (1) and this one: all the student's
    (whatever their /proc entry's owner says: a process that makes itself undumpable shows root)."""
    own = {1, os.getpid()}
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in own]


def reap(exited: dict[int, int]) -> None:
    """Collect the exit status of every child that has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exited[pid] = os.waitstatus_to_exitcode(status)


def kill_leftovers(exited: dict[int, int], wait: float = 10) -> None:
    """Kill what earlier kernels left (their children, daemons, a fork bomb's remains)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        left = others()
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        reap(exited)
        if not left:
            return
        time.sleep(0.05)


def dumpable(value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, value, 0, 0, 0)


def become_kernel(request: dict, closing: list[socket.socket]) -> None:
    """In the forked child: a fresh session and folder, fresh random seeds, then ipykernel."""
    try:
        for sock in closing:
            sock.close()
        dumpable(1)  # as any kernel: the zygote alone is protected
        os.setsid()  # its own process group: a signal to the kernel reaches what it started
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(request["cwd"])
        sandbox = {k: v for k, v in os.environ.items() if k in SANDBOX_ENV}
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(sandbox)
        os.environ.setdefault("MPLBACKEND", INLINE)
        sys.path[0] = request["cwd"]  # as `python -m ipykernel_launcher` run there
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        reseed()
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(request["argv"])
        inline = sys.modules.get("matplotlib_inline.backend_inline")
        if inline is not None:  # imported here, before the kernel had a shell to hook into
            inline._enable_matplotlib_integration()
        app.start()
    except BaseException:  # noqa: BLE001 (never return into the zygote's loop)
        os._exit(1)
    os._exit(0)


def reseed() -> None:
    """Each kernel draws its own seeds, as a new process would, not the zygote's copy."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def answer(request: dict, exited: dict[int, int], closing: list[socket.socket]) -> dict:
    op = request.get("op")
    if op == "ping":
        return {"ok": True}
    if op == "clean":
        kill_leftovers(exited)
        return {"left": len(others())}
    if op == "fork":
        kill_leftovers(exited)
        pid = os.fork()
        if pid == 0:
            become_kernel(request, closing)
        return {"pid": pid}
    pid = int(request.get("pid", 0))
    if op == "poll":
        reap(exited)
        if pid in exited:
            return {"status": exited[pid]}
        alive = os.path.exists(f"/proc/{pid}")
        return {"status": None if alive else -signal.SIGKILL}
    if op == "signal" and pid > 1:
        with contextlib.suppress(OSError):
            os.killpg(pid, int(request["signal"]))
        with contextlib.suppress(OSError):
            os.kill(pid, int(request["signal"]))
        return {"ok": True}
    return {"error": f"unknown request {op!r}"}


def serve(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    exited: dict[int, int] = {}
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                line = conn.makefile("r", encoding="utf-8").readline()
                reply = answer(json.loads(line), exited, [server, conn])
            except (OSError, ValueError, KeyError, TypeError) as err:
                reply = {"error": f"{type(err).__name__}: {err}"}
            with contextlib.suppress(OSError):
                conn.sendall((json.dumps(reply) + "\n").encode())


if __name__ == "__main__":
    if not confined():
        sys.exit("zygote.py runs only in a sandbox's own pid namespace, as a user (warm.py starts it)")
    dumpable(0)
    preload(sys.argv[2:])
    serve(sys.argv[1])
