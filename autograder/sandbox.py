"""Run each student's kernel in a bubblewrap sandbox.

The kernel sees the system read-only, its own working folder (nbgrader's
autograded/<student>/<assignment>/) as the only writable place, a private /tmp and $HOME, no
network, and none of: solutions/, the grading folder (gradebook, other students' work,
feedback), the class's submissions, the instructor's home. limits.py then caps its memory, CPU
time, processes and file size and, when grading runs as root, drops to an unprivileged uid (root
ignores the process limit). The kernel talks to nbgrader over Unix sockets in a private folder
bound into the sandbox, since it has no network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course import REPO

LIMITS = Path(__file__).resolve().with_name("limits.py")
UID = 61000  # + the worker's slot: each concurrent kernel counts its processes apart
MAX_MESSAGE = 64 * 2**20  # a larger kernel message is dropped unread
ENV = ("PATH", "LANG", "LC_", "TZ", "PYTHON", "OMP_", "MKL_", "OPENBLAS_", "CASESTUDY_", "JPY_",
       "MPLBACKEND", "NBGRADER_", "PYDEVD_")  # what the kernel inherits: no tokens or keys


@dataclass
class Sandbox:
    """How student kernels are confined (enabled=False: as the instructor, unconfined)."""

    enabled: bool = True
    hidden: list[str] = field(default_factory=list)  # more folders the kernel must not see
    memory_mb: int = 4096
    cpu_seconds: int = 3600
    procs: int = 256
    file_mb: int = 1024
    tmp_mb: int = 512
    uid: int = UID


CLAIMS = Path(tempfile.gettempdir()) / "autograder-uids"  # a lock file per uid a worker holds
_claimed: dict[int, tuple[int, object]] = {}  # pid -> (slot, its lock), held until the process exits


def claim_slot(tries: int = 1000) -> int:
    """This process's slot, which no other grading process on this machine holds (its kernels run
    as UID + slot, and a kernel's leftovers are reaped by uid, so two graders sharing one would
    kill each other's); claimed on the first call."""
    import fcntl  # POSIX only, as the sandbox is

    if os.getpid() in _claimed:
        return _claimed[os.getpid()][0]
    CLAIMS.mkdir(mode=0o700, exist_ok=True)
    for slot in range(tries):
        handle = open(CLAIMS / f"{UID + slot}.lock", "w")  # noqa: SIM115 (held for the process's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed[os.getpid()] = (slot, handle)
        return slot
    raise RuntimeError(f"no free sandbox uid among {UID} to {UID + tries - 1}")


def unavailable() -> str | None:
    """Why student kernels cannot be sandboxed on this machine, or None when they can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="ag-") as tmp:
        box = Sandbox(uid=UID + claim_slot())  # another grader's reaping must not kill the probe
        prepare(Path(tmp), box.uid)
        cmd = command(Path(tmp), Path(tmp), box, [sys.executable, "-c", "import zmq"])
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap does not start ({err})"
    if run.returncode:
        lines = (run.stderr or run.stdout).strip().splitlines() or [f"exit status {run.returncode}"]
        return f"bubblewrap does not run here ({lines[-1][:200]})"
    return None


def prepare(folder: Path, uid: int) -> None:
    """Let the kernel's uid write its folder (only when running as root)."""
    if os.getuid() != 0:
        return
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)


def reap(uid: int, wait: float = 30) -> None:
    """Kill what is left of the last kernel that ran as uid (a fork bomb's children die with
    their pid namespace, but not at once), so that its processes do not count against the next."""
    kill_until_gone(lambda: [int(p.name) for p in Path("/proc").glob("[0-9]*") if owner(p) == uid],
                    wait, pause=0.2)


def kill_until_gone(processes, wait: float, pause: float) -> None:
    """SIGKILL every pid that processes() lists, again and again, until it lists none or wait
    seconds have passed (a fork bomb's children keep appearing for a moment)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        left = processes()
        if not left:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(pause)


def memory_group(name: str, limit: int) -> Path | None:
    """A fresh memory cgroup (v2, else v1) capping all of a sandbox's processes together at
    limit bytes, swap included; None where this machine lets us make none (not root, no cgroupfs).
    name is "ag-<the grading process's pid>-<what>": groups of dead graders are swept."""
    if os.getuid() != 0 or limit <= 0:
        return None
    v2 = Path("/sys/fs/cgroup")
    if "memory" in read(v2 / "cgroup.controllers").split():
        base, files = v2 / "autograder", {"memory.max": limit, "memory.swap.max": 0}
    else:
        own = next((line.split(":", 2)[2] for line in read(Path("/proc/self/cgroup")).splitlines()
                    if line.split(":")[1:2] == ["memory"]), "/")
        base = v2 / "memory" / own.strip("/")
        files = {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}
    group = base / name
    try:
        if base.name == "autograder":
            base.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                (v2 / "cgroup.subtree_control").write_text("+memory")
            (base / "cgroup.subtree_control").write_text("+memory")
        for stale in base.glob("ag-*"):  # left empty by a grader killed with SIGKILL
            if not alive(stale.name.split("-")[1]) and not read(stale / "cgroup.procs").split():
                with contextlib.suppress(OSError):
                    stale.rmdir()
        empty_group(group)
        group.mkdir()
        for i, (file, value) in enumerate(files.items()):
            try:
                (group / file).write_text(str(value))
            except OSError:
                if i == 0:  # the main limit must hold; swap accounting may be off
                    raise
        return group
    except OSError:
        empty_group(group)
        return None


def joining(group: Path | None, argv: list[str]) -> list[str]:
    """argv, made to join group before it starts (every child it makes is then counted)."""
    if group is None:
        return argv
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *argv]


def allow_more(group: Path | None, limit: int) -> None:
    """Raise a sandbox's memory cap to limit plus what its processes hold now (warm.py: the
    zygote's imports are the grader's, not the student's allowance)."""
    if group is None:
        return
    used = read(group / "memory.current") or read(group / "memory.usage_in_bytes")
    for file in ("memory.max", "memory.memsw.limit_in_bytes", "memory.limit_in_bytes"):  # v1: memsw first
        if (group / file).exists() and used.strip().isdigit():
            with contextlib.suppress(OSError):
                (group / file).write_text(str(limit + int(used)))


def empty_group(group: Path | None) -> None:
    """Kill every process left in a sandbox's cgroup, then remove it."""
    if group is None or not group.is_dir():
        return
    kill_until_gone(lambda: [int(p) for p in read(group / "cgroup.procs").split()], 30, pause=0.1)
    with contextlib.suppress(OSError):
        group.rmdir()


def alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except OSError:
        return True
    return True


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def owner(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
          "/sys/devices/system/cpu")  # what any program needs, read-only; nothing of anyone's


def below(path: Path, roots: list[Path]) -> Path | None:
    return next((r for r in roots if path != r and path.is_relative_to(r)), None)


def mkdirs(path: Path, root: Path = Path("/")) -> list[str]:
    """bwrap arguments creating path's missing parents in the sandbox's root, world-readable."""
    parents = [p for p in reversed(path.parents) if p != root and p.is_relative_to(root)]
    return [arg for p in parents for arg in ("--perms", "0755", "--dir", str(p))]


def is_repository(path: Path) -> bool:
    """A source tree (this course's or any other): never bound whole, it holds .git and solutions."""
    return path == REPO or (path / ".git").exists() or (path / "solutions").exists()


def code_paths() -> list[Path]:
    """What the kernel imports from: Python, its packages, and the course package alone (the
    repository around it, with its .git and solutions/, stays out)."""
    found = {Path(p).resolve() for p in [sys.prefix, sys.base_prefix, *sys.path[1:]] if p}
    found = {p for p in found if p.is_dir() and not is_repository(p)}
    spec = importlib.util.find_spec("casestudy")
    for origin in [spec.origin if spec else None, REPO / "casestudy" / "__init__.py"]:
        if origin and Path(origin).is_file():
            found.add(Path(origin).resolve().parent)
    return sorted(found)


def command(workdir: Path, runtime: Path, box: Sandbox, argv: list[str], files: list[Path] = ()) -> list[str]:
    """The bwrap command line that runs argv confined, in workdir: a root of its own built from an
    allow-list (the system, Python and its packages, limits.py and files, read-only), never the
    instructor's files."""
    tmp = sorted({Path("/tmp"), Path(tempfile.gettempdir()).resolve()})
    cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.getuid() != 0:
        cmd += ["--unshare-user", "--disable-userns"]
    bound: list[Path] = []
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            cmd += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            cmd += mkdirs(path) + ["--ro-bind", name, name]
            bound.append(path)
    cmd += ["--dev", "/dev", "--proc", "/proc"]
    for t in tmp + [Path("/dev/shm")]:
        cmd += mkdirs(t) + ["--perms", "1777", "--size", str(box.tmp_mb * 2**20), "--tmpfs", str(t)]
    hidden = [Path(p).resolve() for p in box.hidden]
    for path in code_paths():
        if not below(path, bound) and not below(path, hidden) and path not in hidden:
            cmd += mkdirs(path) + ["--ro-bind", str(path), str(path)]
            bound.append(path)
    for file in [LIMITS, *files]:
        cmd += mkdirs(file) + ["--ro-bind", str(file), str(file)]
    for path in (workdir.resolve(), runtime.resolve()):
        cmd += mkdirs(path) + ["--bind", str(path), str(path)]
    cmd += ["--chdir", str(workdir.resolve()), "--setenv", "HOME", str(tmp[0]),
            "--setenv", "TMPDIR", str(tmp[0]),
            "--setenv", "JPY_PARENT_PID", "1",  # the real one is not in our pid namespace
            "--", sys.executable, str(LIMITS),
            "--memory-mb", str(box.memory_mb), "--cpu-seconds", str(box.cpu_seconds),
            "--procs", str(box.procs), "--file-mb", str(box.file_mb), "--uid", str(box.uid), "--"]
    return cmd + argv


def clean_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(ENV)}
