"""Inside the sandbox: set resource limits, drop root, then become the kernel.

Run as a script (`python limits.py --memory-mb 4096 ... -- python -m ipykernel_launcher ...`),
so it needs nothing but the standard library. A limit of 0 leaves that resource unlimited.
"""

from __future__ import annotations

import argparse
import os
import resource

MB = 2**20


def limit(kind: int, value: int) -> None:
    if value > 0:
        resource.setrlimit(kind, (value, value))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, default=0, help="heap (RLIMIT_DATA); address space 4x")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="CPU time per process (RLIMIT_CPU)")
    parser.add_argument("--procs", type=int, default=0, help="processes and threads (RLIMIT_NPROC)")
    parser.add_argument("--file-mb", type=int, default=0, help="largest file written (RLIMIT_FSIZE)")
    parser.add_argument("--uid", type=int, default=-1, help="when root, run the kernel as this uid")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    limit(resource.RLIMIT_DATA, args.memory_mb * MB)
    limit(resource.RLIMIT_AS, 4 * args.memory_mb * MB)  # torch reserves far more than it uses
    limit(resource.RLIMIT_CPU, args.cpu_seconds)
    limit(resource.RLIMIT_FSIZE, args.file_mb * MB)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dumps in the student's folder
    if os.getuid() == 0 and args.uid >= 0:  # root is exempt from RLIMIT_NPROC: become nobody-like
        os.setgroups([])
        os.setresgid(args.uid, args.uid, args.uid)
        os.setresuid(args.uid, args.uid, args.uid)
    limit(resource.RLIMIT_NPROC, args.procs)
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    main()
