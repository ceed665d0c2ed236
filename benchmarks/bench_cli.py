"""Time how fast `casestudy` answers: each subcommand's --help, and a bad setting's error.

    python benchmarks/bench_cli.py [--repeats 5]

Each command runs as a fresh process (`python -m casestudy ...`), once to warm the page
cache and then --repeats times; the table gives the median and the slowest wall time. The
target is under 1 s: neither answer may import torch. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data index", "data cache", "data fetch", "eda", "train", "evaluate", "tsne", "gradcam",
          "report", "run"]
BAD = {  # a bad setting per command, and the status it must end with
    "train --epochs ten": 2, "train --lr 0": 2, "evaluate --name ../x": 2,
    "tsne --tsne-perplexity 0": 2, "run --batch-size 1": 2, "train --config nope": 2,
}


def timed(argv: list[str], status: int, where: str) -> float:
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "casestudy", *argv], cwd=where, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - begin
    if done.returncode != status:
        raise SystemExit(f"`casestudy {' '.join(argv)}` ended with {done.returncode}, not {status}:\n"
                         f"{done.stderr.decode()[-1000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = [(f"{stage} --help", 0) for stage in STAGES] + list(BAD.items())
    print("| command | median (s) | slowest (s) |\n| --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as where:  # a bad setting must create nothing; nothing here
        for command, status in cases:
            argv = command.split()
            timed(argv, status, where)  # warm the page cache
            times = [timed(argv, status, where) for _ in range(args.repeats)]
            print(f"| `casestudy {command}` | {statistics.median(times):.2f} | {max(times):.2f} |",
                  flush=True)
        left = sorted(os.listdir(where))
        if left:
            raise SystemExit(f"the commands left files behind: {left}")


if __name__ == "__main__":
    main()
