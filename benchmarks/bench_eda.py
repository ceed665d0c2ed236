"""Time the EDA on N + N images at 256 px (the faces sample) and the same work at 1024 px.

    python benchmarks/bench_eda.py [--data ../shared/data/faces-140k-sample] [--per-class 500]

The 1024 px set is made once by enlarging the sample's images to 1024 x 1024 PNG (the
course data's format), in --work (default /tmp/casestudy-bench-eda), so decoding costs
what it would on the course data. Indexing is timed apart: it belongs to the data stage
and is done once per dataset. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from casestudy import data, eda
from casestudy.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def enlarge(job: tuple[str, str]) -> None:
    src, dst = job
    Image.open(src).convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC).save(dst)


def make_1024(sample: Path, out: Path, per_class: int) -> Path:
    """Write per_class 1024 x 1024 PNGs of each class, enlarged from the sample (once)."""
    jobs = []
    for name in data.LABELS:
        (out / name).mkdir(parents=True, exist_ok=True)
        for src in sorted((sample / name).iterdir())[:per_class]:
            dst = out / name / f"{src.stem}.png"
            if not dst.exists():
                jobs.append((str(src), str(dst)))
    with ProcessPoolExecutor() as pool:
        list(pool.map(enlarge, jobs, chunksize=8))
    return out


def time_eda(folder: Path, per_class: int, work: Path) -> dict:
    config = RunConfig(name=f"bench-{folder.name}", data=str(folder), data_root=str(work / "data"),
                       runs_root=str(work / "runs"), eda_per_class=per_class)
    begin = time.perf_counter()
    data.prepare_for(config, progress=False)
    indexed = time.perf_counter() - begin
    begin = time.perf_counter()
    summary = eda.run_eda(config, progress=False)
    total = time.perf_counter() - begin
    n = sum(summary["n_images"].values())
    return {"images": n, "index s": indexed, "EDA s": total, "EDA img/s": n / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/faces-140k-sample"))
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--work", default="/tmp/casestudy-bench-eda")
    args = parser.parse_args()
    work = Path(args.work)
    sample = Path(args.data)
    big = make_1024(sample, work / "faces-1024", args.per_class)
    rows = {"256 px JPEG (sample)": time_eda(sample, args.per_class, work),
            "1024 px PNG (enlarged sample)": time_eda(big, args.per_class, work)}
    print(f"\nEDA, {args.per_class} + {args.per_class} images, {os.cpu_count()} CPU cores\n")
    print("| images | n | index (s, once per dataset) | EDA (s) | EDA img/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name} | {r['images']} | {r['index s']:.1f} | {r['EDA s']:.1f} | {r['EDA img/s']:.0f} |")


if __name__ == "__main__":
    main()
