"""Install casestudy beside a torch it was not tested with; show pip keeps it and the exercise preset runs.

    python benchmarks/install_other_torch.py                              # torch 2.9.1, torchvision 0.24.1
    python benchmarks/install_other_torch.py --torch 2.4.1 --torchvision 0.19.1

A one-off check of issue 15 (not a test; it downloads gigabytes). In a fresh virtual
environment in a temporary folder (never inside the repository) it

1. installs the chosen torch and torchvision (pip's defaults: from PyPI, whose Linux
   wheels are CUDA builds; on a machine without a GPU they run on the CPU),
2. installs this checkout with a plain `pip install DIR` (no constraints, no extras),
3. compares the torch and torchvision versions before and after, and runs `pip check`,
4. runs `casestudy run --config exercise` on synthetic data in the temporary folder and
   reads the test accuracy from the run's metrics.json,

then prints a markdown table for benchmarks/RESULTS.md and deletes the folder (unless --keep).
The checkout is copied first (its git-tracked files, as they are in the working tree), so
the build leaves nothing behind in the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WATCHED = ["torch", "torchvision", "numpy"]  # versions shown before and after the install


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="2.9.1", help="torch version installed first (default: 2.9.1)")
    parser.add_argument("--torchvision", default="0.24.1",
                        help="torchvision version installed first (default: 0.24.1)")
    parser.add_argument("--extra", action="append", default=[], metavar="REQ",
                        help="another requirement to install beside torch first, e.g. 'numpy<2' (repeatable)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the venv (default: this one)")
    parser.add_argument("--checkout", type=Path, default=REPO,
                        help="the casestudy checkout (default: this one)")
    parser.add_argument("--config", default="exercise", help="preset to run (default: exercise)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR (outside the repository) and keep it "
                             "(default: a new /tmp folder, deleted at the end)")
    return parser.parse_args()


def work_folder(keep: Path | None) -> Path:
    """A folder outside the repository: a venv committed by mistake is gigabytes."""
    folder = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="othertorch-"))
    if folder == REPO or REPO in folder.parents:
        sys.exit(f"refused: {folder} is inside the repository {REPO}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sh(cmd: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, echoing it; its output is captured and returned."""
    print("$ " + " ".join(map(str, cmd)), flush=True)
    done = subprocess.run(cmd, cwd=cwd, text=True, capture_output=True)
    if check and done.returncode:
        print(done.stdout[-3000:] + done.stderr[-3000:])
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}")
    return done


def copy_checkout(checkout: Path, dest: Path) -> str:
    """Copy the git-tracked files of the checkout; return its commit (+ '-dirty' if edited)."""
    files = sh(["git", "-C", str(checkout), "ls-files", "-z"]).stdout.split("\0")
    for name in filter(None, files):
        source = checkout / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    commit = sh(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def versions(python: Path) -> dict[str, str]:
    """Installed versions of the watched packages in the venv ('-' when absent)."""
    code = ("import importlib.metadata as m, json, sys; print(json.dumps("
            "{p: getattr(next(iter(m.distributions(name=p)), None), 'version', '-') for p in sys.argv[1:]}))")
    return json.loads(sh([str(python), "-c", code, *WATCHED]).stdout)


def torch_build(python: Path) -> str:
    """torch's own idea of itself: version, CUDA build or not, whether a GPU is there."""
    code = ("import torch; print(torch.__version__, 'cuda', torch.version.cuda,"
            " 'gpu' if torch.cuda.is_available() else 'no-gpu', torch.get_num_threads(), 'threads')")
    done = sh([str(python), "-c", code], check=False)
    return done.stdout.strip() or "import failed: " + done.stderr.strip().splitlines()[-1]


def run_preset(venv: Path, work: Path, config: str) -> dict:
    """`casestudy run` in the venv, niced; the test accuracy and the seconds of every stage."""
    cmd = ["nice", "-n", "10", str(venv / "bin" / "casestudy"), "run", "--config", config,
           "--name", "other-torch", "--data-root", str(work / "data"), "--runs-root", str(work / "runs"),
           "--quiet"]
    started = time.perf_counter()
    done = sh(cmd, cwd=work, check=False)
    result = {"rc": done.returncode, "wall": time.perf_counter() - started}
    timing = re.search(r"done in (\d+) s \((.*)\)", done.stdout)
    result["stages"] = timing.group(2) if timing else "-"
    metrics = work / "runs" / "other-torch" / "metrics.json"
    result["metrics"] = json.loads(metrics.read_text()) if metrics.exists() else None
    if done.returncode:  # the last lines say why
        result["error"] = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return result


def table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


def main() -> None:
    args = parse_args()
    work = work_folder(args.keep)
    try:
        source, venv = work / "src", work / "venv"
        commit = copy_checkout(args.checkout.resolve(), source)
        sh([args.python, "-m", "venv", str(venv)])
        pip, python = [str(venv / "bin" / "python"), "-m", "pip"], venv / "bin" / "python"
        pip_version = sh([*pip, "--version"]).stdout.split()[1]

        started = time.perf_counter()
        sh([*pip, "install", f"torch=={args.torch}", f"torchvision=={args.torchvision}", *args.extra])
        first = time.perf_counter() - started
        before, build = versions(python), torch_build(python)

        started = time.perf_counter()  # the plain install a student would type
        sh([*pip, "install", str(source)])
        second = time.perf_counter() - started
        after = versions(python)
        check = sh([*pip, "check"], check=False)

        run = run_preset(venv, work, args.config)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    same = all(before[p] == after[p] for p in ("torch", "torchvision"))
    metrics = run["metrics"]
    accuracy = f"{metrics['accuracy']:.3f} (n = {metrics['n']})" if metrics else "not measured (no metrics)"
    rows = [
        ("checkout", f"{commit}, `pip install DIR` with pip {pip_version}, {Path(args.python).name}"),
        ("torch installed first", f"{before['torch']} ({build})"),
        ("torch after `pip install`", after["torch"]),
        ("torchvision before / after", f"{before['torchvision']} / {after['torchvision']}"),
        ("numpy before / after", f"{before['numpy']} / {after['numpy']}"),
        ("torch and torchvision kept", "yes" if same else "NO"),
        ("`pip check`", "ok" if not check.returncode else check.stdout.strip().replace("\n", "; ")),
        (f"`casestudy run --config {args.config}`", "ok" if not run["rc"] else
         f"failed ({run['rc']}): " + " / ".join(run["error"]).replace("|", "\\|")),
        ("test accuracy (metrics.json)", accuracy),
        ("seconds per stage", run["stages"]),
        ("seconds: torch install / package install / run", f"{first:.0f} / {second:.0f} / {run['wall']:.0f}"),
    ]
    print("\n" + table(rows))
    sys.exit(0 if same and not check.returncode and not run["rc"] else 1)


if __name__ == "__main__":
    main()
