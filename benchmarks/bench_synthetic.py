"""Measure the synthetic tier on each preset: EDA feature AUCs, spectrum baseline, CNN, generator B.

    python benchmarks/bench_synthetic.py [--presets exercise book demo] [--work DIR]

For each preset, in --work/<preset> (made afresh): `casestudy eda`, `casestudy train`
(timed), `casestudy evaluate` on the test split, then `casestudy evaluate --eval-data` on
a generator-B set of the preset's size (made with `python -m casestudy.synthetic`), which
training never saw. Prints a markdown table. The targets (issue "the synthetic fakes are
not faint"): every scalar AUC within 0.35-0.65; baseline CV accuracy 0.65-0.90; CNN test
accuracy 0.85-0.98 on exercise and book, >= 0.95 on demo with training under 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCALARS = ["luminance", "mean_r", "mean_g", "mean_b", "fft_magnitude", "laplacian_var"]


def casestudy(*args: str, cwd: Path) -> float:
    """Run one CLI command in cwd with this checkout's package; return its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "casestudy", *args, "--quiet"], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def measure(preset: str, work: Path, b_per_class: int) -> dict:
    cwd = work / preset
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    settings = yaml.safe_load((ROOT / "casestudy" / "configs" / f"{preset}.yaml").read_text())
    run = cwd / "runs" / preset
    casestudy("eda", "--config", preset, cwd=cwd)
    eda = json.loads((run / "eda_summary.json").read_text())
    train_s = casestudy("train", "--config", preset, cwd=cwd)
    casestudy("evaluate", "--config", preset, cwd=cwd)
    test = json.loads((run / "metrics.json").read_text())
    size = str(settings["synthetic_size"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "casestudy.synthetic", str(cwd / "generator-b"), "--generator",
                    "B", "--per-class", str(b_per_class), "--size", size, "--seed", "1"],
                   cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    casestudy("evaluate", "--config", preset, "--eval-data", str(cwd / "generator-b"), cwd=cwd)
    other = json.loads((run / "eval" / "generator-b" / "metrics.json").read_text())
    row = {"preset": preset, "px": settings["synthetic_size"], "per class": settings["synthetic_per_class"],
           "epochs": settings["epochs"]}
    row.update({f"AUC {name}": eda["features"][name]["auc"] for name in SCALARS})
    row.update({"baseline CV acc": eda["baseline"]["accuracy"], "train s": train_s,
                "test acc": test["accuracy"], "test n": test["n"],
                "gen. B acc": other["accuracy"], "gen. B n": other["n"]})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["exercise", "book", "demo"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/casestudy-bench-synthetic"))
    parser.add_argument("--b-per-class", type=int, default=100, help="generator-B images per class")
    args = parser.parse_args()
    rows = [measure(preset, args.work, args.b_per_class) for preset in args.presets]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) and v < 10 else
                                f"{v:.0f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
