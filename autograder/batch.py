"""What every notebook of a class would make again, made once per grading run: the synthetic
data, generator B's, and the package's own `exercise` run with every stage's results, in
<out>/batch/.

Each kernel's scratch folder gets a copy of batch/data/ and batch/runs/exercise/ before its
notebook runs (given-02's config reads data/ and runs/ in the kernel's cwd), so notebooks 03-07
find runs/exercise/checkpoint.pt and do not train. Copies, never hard links: a kernel may write
into its own. They are the grader's files, so they are never copied back to the student's folders.
If the batch cannot be made, grading goes on without it and each notebook trains its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

PRESET = "exercise"  # the notebooks' preset (casestudy/configs/exercise.yaml)
SHARED = ("data", f"runs/{PRESET}")  # what each kernel gets, relative to its cwd
OTHER = "synthetic-B"  # generator B's faces, in data/ (04_evaluate, 07_report)
NOT_SHARED = ("last.pt", ".lock")  # only a resumed training needs last.pt (as large as the checkpoint)


def uses_run(notebook: Path) -> bool:
    """Whether a notebook (nbgrader's source) trains or loads a run's checkpoint.pt (03-07 do)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        return any("checkpoint.pt" in "".join(cell["source"]) for cell in cells)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare_batch(out: Path, timeout: int) -> tuple[Path | None, str]:
    """Make out/batch/ in a child process given 2 x timeout (the notebooks make the data and
    train in two cells, each allowed timeout); return (the folder, how long it took) or (None,
    why there is none)."""
    folder = out / "batch"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print("preparing the batch's data and run ...", end=" ", flush=True)
    start = time.perf_counter()
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); " \
           f"from autograder.batch import build; build({str(folder)!r})"
    why, limit = "", 2 * timeout if timeout > 0 else None
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as child:
        try:
            output, _ = child.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its decoding workers too
            child.communicate()
            why = f"it took over {limit} s"
        else:
            lines = output.strip().splitlines()
            why = f"it failed: {lines[-1][:200] if lines else f'exit status {child.returncode}'}" \
                if child.returncode else ""
    if not why and not (folder / SHARED[1] / "checkpoint.pt").is_file():
        why = "it left no checkpoint"
    seconds = time.perf_counter() - start
    print(f"failed after {seconds:.0f} s" if why else f"done in {seconds:.0f} s", flush=True)
    if why:
        shutil.rmtree(folder, ignore_errors=True)
        return None, f"no shared data and run ({why}): each notebook makes its own"
    (folder / "seconds").write_text(f"{seconds:.1f}\n")  # for benchmarks/bench_grading.py
    return folder, f"{seconds:.0f} s"


def build(folder: str) -> None:
    """In the child: make the data and train the exercise run in folder, as a notebook would (the
    same relative paths), then run the later stages once: generator B's faces and the stages 07
    only runs when their results are missing (04-06 still run their own)."""
    from casestudy import data, synthetic, train
    from casestudy.config import load_config
    from casestudy.stages import stage

    os.chdir(folder)
    config = load_config(PRESET, data_root="data", runs_root="runs")
    data.prepare_for(config, progress=False)
    train.train(config, progress=False)
    other = Path(config.data_root) / OTHER  # 04 and 07 make it when it is missing
    if data.is_synthetic(config.data):
        synthetic.make_synthetic(other, per_class=config.synthetic_per_class, size=config.synthetic_size,
                                 seed=config.seed, progress=False, generator="B")
        config = replace(config, eval_data=[str(other)])
    for name in ("eda", "evaluate", "tsne", "gradcam"):
        stage(name).run(config, progress=False)


def copy_into(batch: Path, work: Path) -> None:
    """Put a copy of the batch's data and run into a kernel's scratch folder (ours, made just now:
    no link to follow), replacing whatever is there."""
    for part in SHARED:
        target = work / part
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_symlink() or target.exists():
            target.unlink()
        shutil.copytree(batch / part, target, ignore=shutil.ignore_patterns(*NOT_SHARED))
