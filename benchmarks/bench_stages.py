"""Time every stage of `casestudy run` and print a table (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_stages.py                       # the demo preset
    .venv/bin/python benchmarks/bench_stages.py --config sample \\
        --data ../shared/data/faces-140k-sample                        # real faces

Runs go to a temporary folder unless --runs-root is given. Prints one markdown row per
stage plus the test metrics, ready for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from casestudy.cli import add_setting_flags, config_from, run_all, shown_defaults
from casestudy.evaluate import load_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_flags(parser, "run", shown_defaults("demo"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.runs_root = args.runs_root or os.path.join(tmp, "runs")
        args.data_root = args.data_root or os.path.join(tmp, "data")
        config = config_from(args)
        started = time.perf_counter()
        seconds = run_all(config, progress=not args.quiet, overwrite=True)
        total = time.perf_counter() - started
        metrics = load_metrics(config.run_dir)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    settings = ("data", "image_size", "train_crop", "crop_padding", "scale_min", "flip", "jitter",
                "epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "weights", "seed")
    print("config: " + " ".join(f"{k}={getattr(config, k)}" for k in settings) + "\n")
    print("| stage | seconds |\n| --- | ---: |")
    for name, s in seconds.items():
        print(f"| {name} | {s:.1f} |")
    print(f"| **total** | **{total:.1f}** |\n")
    print(f"test: n={metrics['n']} accuracy={metrics['accuracy']:.3f} "
          f"f1={metrics['f1']:.3f} roc_auc={metrics['roc_auc']:.3f}")


if __name__ == "__main__":
    main()
