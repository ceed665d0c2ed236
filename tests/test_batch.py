"""The grading run's shared data and run (autograder/batch.py): a copy of a dataset and a run
works from its new place, each kernel finds it in its cwd, and it never reaches the student's
folders. A whole class graded with it: tests/test_autograder.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from traitlets.config import Config

from autograder.batch import SHARED, copy_into, prepare_batch, uses_run
from autograder.course import SOLUTIONS, assignments
from autograder.execute import GuardedExecute
from autograder.grade import sandbox_for
from autograder.sandbox import UID, Sandbox, claim_slot
from casestudy import evaluate, train
from casestudy.config import RunConfig

BWRAP = Path("/usr/bin/bwrap").exists() or shutil.which("bwrap") is not None


def tiny(root: Path | str = "", **place) -> RunConfig:
    return RunConfig(name="exercise", data="synthetic", data_root=str(Path(root) / "data"),
                     runs_root=str(Path(root) / "runs"), synthetic_per_class=20, synthetic_size=32,
                     image_size=32, epochs=1, batch_size=8, device="cpu", seed=1, **place)


def test_a_copied_dataset_and_run_evaluate_the_same_from_their_new_place(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train.train(tiny(tmp_path / "batch"), progress=False)
        there = evaluate.evaluate(tiny(tmp_path / "batch"), progress=False)
        (tmp_path / "kernel").mkdir()
        copy_into(tmp_path / "batch", tmp_path / "kernel")
        shutil.rmtree(tmp_path / "batch")  # nothing may still point there
        monkeypatch.chdir(tmp_path / "kernel")
        assert not Path("runs/exercise/last.pt").exists()  # only a resumed training needs it
        here = evaluate.evaluate(tiny(), progress=False)  # relative roots, as the notebooks' config
    finally:
        torch.set_num_threads(threads)
    assert here["accuracy"] == there["accuracy"] and here["roc_auc"] == there["roc_auc"]
    assert str(tmp_path / "batch") not in Path("runs/exercise/split.csv").read_text()


def test_only_the_notebooks_that_use_the_run_ask_for_the_batch():
    uses = {name for name in assignments() if uses_run(SOLUTIONS / name / f"{name}.ipynb")}
    assert {"04_evaluate", "05_tsne", "06_gradcam", "07_report"} <= uses
    assert not uses & {"01_data", "02_eda"}  # a class graded on those alone trains nothing


def test_a_batch_that_cannot_be_made_in_time_is_left_out_with_a_note(tmp_path):
    folder, note = prepare_batch(tmp_path, timeout=1)  # 2 s: python and torch do not even start
    assert folder is None and "took over 2 s" in note and "each notebook makes its own" in note
    assert not (tmp_path / "batch").exists()


PROBE = """import json, os
from pathlib import Path
import casestudy
Path("data/synthetic/index.csv").write_text("overwritten by the kernel")
Path("runs/exercise/metrics.json").write_text("{}")
Path("mine.txt").write_text("the student's own file")
print(json.dumps({"checkpoint": Path("runs/exercise/checkpoint.pt").read_text(),
                  "casestudy": casestudy.__file__, "cwd": os.getcwd()}))"""


@pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed")
def test_each_kernel_gets_its_own_copy_and_none_comes_back(tmp_path):
    batch, home = tmp_path / "grading" / "batch", tmp_path / "grading" / "autograded" / "s" / "04_evaluate"
    for part, name in zip(SHARED, ("synthetic/index.csv", "checkpoint.pt")):
        (batch / part / name).parent.mkdir(parents=True)
        (batch / part / name).write_text(f"the batch's {name}")
    home.mkdir(parents=True)
    config = Config()
    box = Sandbox(uid=UID + claim_slot())  # this process's uid: no other grader reaps it
    config.SandboxKernelManager.sandbox = sandbox_for(box, True, tmp_path / "grading", tmp_path)
    step = GuardedExecute(config=config, timeout=60, batch=str(batch),
                          scratch=str(tmp_path / "grading" / ".work"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nb, _ = step.preprocess(nb, {"metadata": {"path": str(home)}})
    seen = json.loads(nb.cells[0].outputs[-1]["text"])
    assert seen["checkpoint"] == "the batch's checkpoint.pt"  # in the kernel's cwd
    assert Path(seen["casestudy"]).resolve().parent == Path(__import__("casestudy").__file__).resolve().parent
    assert (batch / "data/synthetic/index.csv").read_text() == "the batch's synthetic/index.csv"  # a copy
    assert (home / "mine.txt").is_file()  # the kernel's own files come back, the batch's never
    assert sorted(p.name for p in home.rglob("*")) == sorted(["mine.txt", ".autograder-incidents.json",
                                                             ".autograder-verdicts.json"])
    assert not os.listdir(tmp_path / "grading" / ".work")  # the scratch folder is gone
