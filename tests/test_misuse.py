"""Misuse: every input a user can give ends in one line and exit 2, and nothing is lost.

A catalogue of wrong settings (as flags and in a --config file), wrong files, changed or
damaged run folders, runs in use, interrupted runs and failing disks, across every
subcommand. Each case checks the exit status, a single stderr line that names the problem
and carries no traceback, and that no file was created, lost or changed. The index, cache,
fetch and grader have their own misuse tests (test_data, test_fetch_misuse, test_autograder).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import small_disk

from casestudy import cli, files, plots
from casestudy.config import load_config
from casestudy.runs import RunFolder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--synthetic-per-class", "20", "--synthetic-size", "32", "--image-size", "32",
        "--batch-size", "8", "--device", "cpu", "--seed", "1"]  # 28 train, 6 val, 6 test images


def call(argv, capsys) -> tuple[int, str, str]:
    """Run `casestudy *argv` in this process; return (status, stdout, stderr)."""
    code = cli.main([*argv, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, *needles: str, status: int = 2) -> str:
    """The command failed with `status` and one stderr line, no traceback, naming every needle."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert code == status and len(lines) == 1, (code, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under folder (but the lock): its checksum and modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


# ---------------------------------------------------------------- bad settings, before any work

# (id, command, flag, value, YAML line, needles): the same wrong value as a flag and in a config file
BAD_SETTINGS = [
    ("epochs-word", "train", "--epochs", "ten", "epochs: ten", ["epochs", "ten", "integer"]),
    ("epochs-zero", "train", "--epochs", "0", "epochs: 0", ["epochs", "0", "from 1"]),
    ("epochs-fraction", "run", "--epochs", "1.5", "epochs: 1.5", ["epochs", "1.5"]),
    ("lr-zero", "train", "--lr", "0", "lr: 0", ["lr", "0", "> 0"]),
    ("lr-negative", "train", "--lr", "-1", "lr: -1", ["lr", "-1", "> 0"]),
    ("lr-nan", "train", "--lr", "nan", "lr: nan", ["lr", "nan", "finite"]),
    ("lr-inf", "run", "--lr", "inf", "lr: .inf", ["lr", "inf", "finite"]),
    ("lr-overflow", "train", "--lr", "1e400", "lr: 1e400", ["lr", "1e400", "finite"]),
    ("lr-word", "train", "--lr", "fast", "lr: fast", ["lr", "fast", "number"]),
    ("batch-of-one", "train", "--batch-size", "1", "batch_size: 1", ["batch_size", "1", "from 2"]),
    ("seed-negative", "train", "--seed", "-1", "seed: -1", ["seed", "-1", "from 0"]),
    ("seed-huge", "eda", "--seed", "99999999999999", "seed: 99999999999999",
     ["seed", "99999999999999", "4294967295"]),
    ("size-zero", "train", "--image-size", "0", "image_size: 0", ["image_size", "0", "16"]),
    ("size-huge", "data cache", "--image-size", "5000", "image_size: 5000", ["image_size", "5000", "1024"]),
    ("name-empty", "train", "--name", "", "name: ''", ["name", "''", "plain name"]),
    ("name-parent", "evaluate", "--name", "../x", "name: ../x", ["name", "../x", "plain name"]),
    ("name-slash", "report", "--name", "a/b", "name: a/b", ["name", "a/b", "plain name"]),
    ("name-hidden", "train", "--name", ".hidden", "name: .hidden", ["name", ".hidden", "plain name"]),
    ("name-long", "train", "--name", "a" * 300, "name: " + "a" * 300, ["name", "a" * 300, "at most 100"]),
    ("name-dots", "tsne", "--name", "a..b", "name: a..b", ["name", "a..b"]),
    ("perturbation-unknown", "evaluate", "--perturbations", "sepia:1", "perturbations: sepia:1",
     ["perturbations", "sepia:1", "jpeg:Q"]),
    ("perturbation-quality", "evaluate", "--perturbations", "jpeg:0", "perturbations: [jpeg:0]",
     ["perturbations", "jpeg:0", "Q 1-100"]),
    ("perturbation-scale", "run", "--perturbations", "downscale:2", "perturbations: downscale:2",
     ["perturbations", "downscale:2"]),
    ("device", "train", "--device", "tpu", "device: tpu", ["device", "tpu", "cuda"]),
    ("padding-mode", "train", "--padding-mode", "mirror", "padding_mode: mirror",
     ["padding_mode", "mirror", "reflect"]),
    ("weights", "train", "--weights", "resnet", "weights: resnet", ["weights", "resnet", ".pth"]),
    ("jitter", "train", "--jitter", "2", "jitter: 2", ["jitter", "2", "to 1"]),
    ("crop-too-large", "train", "--train-crop", "64", "train_crop: 64", ["train_crop 64", "image_size"]),
    ("perplexity", "tsne", "--tsne-perplexity", "0", "tsne_perplexity: 0", ["tsne_perplexity", "0"]),
    ("gradcam-groups", "gradcam", "--gradcam-per-group", "0", "gradcam_per_group: 0",
     ["gradcam_per_group", "0"]),
    ("eda-per-class", "eda", "--eda-per-class", "-5", "eda_per_class: -5", ["eda_per_class", "-5"]),
    ("synthetic-size", "data synthetic", "--synthetic-size", "8", "synthetic_size: 8",
     ["synthetic_size", "8"]),
    ("data-empty", "data index", "--data", "", "data: ''", ["data", "non-empty"]),
    ("max-per-class", "data index", "--max-per-class", "-1", "max_per_class: -1", ["max_per_class", "-1"]),
]


@pytest.fixture
def roots(tmp_path):
    return tmp_path / "runs", tmp_path / "data"


def assert_nothing_started(runs, data_root):
    assert not runs.exists() and not data_root.exists(), "work started before the settings were checked"


@pytest.mark.parametrize("command, flag, value, line, needles",
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_SETTINGS])
def test_a_bad_flag_is_one_line_before_any_work(command, flag, value, line, needles, roots, capsys):
    runs, data_root = roots
    code, _, err = call([*command.split(), "--runs-root", str(runs), "--data-root", str(data_root),
                         "--image-size", "32", flag, value], capsys)
    assert_one_line(code, err, *needles)
    assert_nothing_started(runs, data_root)


@pytest.mark.parametrize("command, flag, value, line, needles",
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_SETTINGS])
def test_a_bad_setting_in_a_config_file_is_one_line_before_any_work(command, flag, value, line, needles,
                                                                    roots, tmp_path, capsys):
    runs, data_root = roots
    preset = tmp_path / "mine.yaml"
    preset.write_text(f"image_size: 32\n{line}\n")
    code, _, err = call([*command.split(), "--config", str(preset), "--runs-root", str(runs),
                         "--data-root", str(data_root)], capsys)
    assert_one_line(code, err, *needles)
    assert_nothing_started(runs, data_root)


BAD_CONFIG_FILES = [  # (id, file name, content (None: no file, "dir": a folder), needles)
    ("unknown-key", "a.yaml", "epochs: 2\nlearning_rate: 0.1\n", ["learning_rate", "unknown"]),
    ("not-a-mapping", "a.yaml", "- epochs\n- 2\n", ["a.yaml", "mapping"]),
    ("a-number", "a.yaml", "42\n", ["a.yaml", "mapping"]),
    ("syntax-error", "a.yaml", "epochs: [1\n", ["a.yaml", "not valid YAML"]),
    ("tabs", "a.yaml", "epochs:\t2\n\tlr: 1\n", ["a.yaml"]),
    ("binary", "a.yaml", b"\x00\xff\xfe\x01", ["a.yaml", "cannot read"]),
    ("missing-file", "gone.yaml", None, ["gone.yaml", "not found"]),
    ("a-folder", "folder.yaml", "dir", ["folder.yaml"]),
    ("key-not-text", "a.yaml", "1: 2\n", ["unknown", "1"]),
    ("value-a-mapping", "a.yaml", "data: {a: 1}\n", ["data"]),
    ("list-for-a-number", "a.yaml", "epochs: [1, 2]\n", ["epochs"]),
    ("null-for-a-number", "a.yaml", "batch_size:\n", ["batch_size", "None"]),
    ("bool-maybe", "a.yaml", "flip: maybe\n", ["flip", "maybe", "true or false"]),
    ("bool-for-a-number", "a.yaml", "epochs: yes\n", ["epochs", "True"]),
]


@pytest.mark.parametrize("name, content, needles",
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_CONFIG_FILES])
def test_a_bad_config_file_is_one_line(name, content, needles, roots, tmp_path, capsys):
    runs, data_root = roots
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, err = call(["train", "--config", str(path), "--runs-root", str(runs),
                         "--data-root", str(data_root)], capsys)
    assert_one_line(code, err, *needles)
    assert_nothing_started(runs, data_root)


@pytest.mark.parametrize("argv, needles", [
    pytest.param(["train", "--config", "nope"], ["nope", "demo", "course"], id="unknown-preset"),
    pytest.param(["train", "--config", "../demo"], ["../demo"], id="preset-path-without-yaml"),
    pytest.param(["bogus"], ["bogus"], id="unknown-command"),
    pytest.param([], ["required"], id="no-command"),
    pytest.param(["data"], ["synthetic", "index"], id="data-without-action"),
    pytest.param(["train", "--flip", "maybe"], ["maybe"], id="switch-with-a-value"),
    pytest.param(["train", "--deterministic=yes"], ["deterministic"], id="switch-with-equals"),
    pytest.param(["evaluate", "--resume"], ["--resume"], id="resume-is-trains-own"),
    pytest.param(["train", "--epochs"], ["--epochs"], id="flag-without-value"),
    pytest.param(["data", "index"], ["--data"], id="index-without-data"),
])
def test_a_wrong_command_line_is_one_line(argv, needles, roots, capsys):
    runs, data_root = roots
    try:
        code = cli.main([*argv, "--runs-root", str(runs), "--data-root", str(data_root)] if argv else [])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert_one_line(code, capsys.readouterr().err, *needles)
    assert_nothing_started(runs, data_root)


@pytest.mark.parametrize("flag", ["--runs-root", "--data-root"])
def test_an_empty_folder_setting_is_one_line(flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = call(["train", "--epochs", "1", flag, ""], capsys)
    assert_one_line(code, err, flag[2:].replace("-", "_"), "non-empty")
    assert list(tmp_path.iterdir()) == []


def test_a_config_file_parses_numbers_and_accepts_a_single_value_for_a_list(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("lr: 1e-3\nepochs: '3'\nperturbations: jpeg:90\neval_data: elsewhere\nflip: off\n")
    config = load_config(str(preset))
    assert config.lr == 0.001 and isinstance(config.lr, float)  # YAML reads 1e-3 as text
    assert config.epochs == 3 and config.perturbations == ["jpeg:90"] and config.eval_data == ["elsewhere"]
    assert config.flip is False
    assert load_config(str(preset), perturbations=["none"]).perturbations == []


# ---------------------------------------------------------------- --help shows each stage's own flags

HELP = {  # command: (flags it must list, flags it must not list)
    "train": (["--epochs", "--lr", "--batch-size", "--image-size", "--resume", "--overwrite", "--seed"],
              ["--perturbations", "--tsne-perplexity", "--eda-per-class", "--eval-data",
               "--gradcam-per-group"]),
    "evaluate": (["--perturbations", "--eval-data", "--device", "--name"],
                 ["--epochs", "--lr", "--batch-size", "--resume", "--image-size", "--seed"]),
    "tsne": (["--tsne-perplexity", "--tsne-max-points", "--device"],
             ["--epochs", "--perturbations", "--gradcam-per-group", "--lr"]),
    "gradcam": (["--gradcam-per-group", "--gradcam-max-mean"],
                ["--epochs", "--tsne-perplexity", "--perturbations"]),
    "report": (["--name", "--runs-root"], ["--epochs", "--device", "--perturbations", "--lr"]),
    "eda": (["--eda-per-class", "--data", "--seed"], ["--epochs", "--lr", "--perturbations", "--device"]),
    "run": (["--epochs", "--perturbations", "--tsne-perplexity", "--eda-per-class", "--overwrite"],
            ["--resume"]),
    "data index": (["--data", "--seed", "--max-per-class"], ["--epochs", "--device", "--name"]),
    "data cache": (["--image-size", "--size"], ["--epochs", "--lr", "--name"]),
    "data synthetic": (["--synthetic-per-class", "--synthetic-size"], ["--epochs", "--image-size", "--name"]),
    "data fetch": (["--dataset", "--dry-run", "--data-root"], ["--epochs", "--image-size", "--seed"]),
}


def help_text(argv, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "250")  # one line per flag: "(default: 224)" is not wrapped
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def listed(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", HELP)
def test_help_lists_only_the_flags_of_its_command(command, capsys, monkeypatch):
    text = help_text(command.split(), capsys, monkeypatch)
    must, must_not = HELP[command]
    assert [f for f in must if not listed(f, text)] == []
    assert [f for f in must_not if listed(f, text)] == []


def test_help_shows_the_chosen_presets_defaults(capsys, monkeypatch):
    course = help_text(["train", "--config", "course"], capsys, monkeypatch)
    demo = help_text(["train"], capsys, monkeypatch)
    size = re.compile(r"--image-size N .*\(default: (\d+)\)")
    assert size.search(course).group(1) == "224" and size.search(demo).group(1) == "48"


def test_help_with_a_broken_config_still_answers(tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [\n")
    assert "--epochs" in help_text(["train", "--config", str(broken)], capsys, monkeypatch)


# ---------------------------------------------------------------- the run folder is the truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, trained for one epoch, then evaluated, embedded, explained and reported.

    The later stages get no settings at all: they must take them from the run folder.
    """
    tmp = tmp_path_factory.mktemp("misuse")
    place = ["--runs-root", str(tmp / "runs"), "--data-root", str(tmp / "data"), "--name", "tiny"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["train", *TINY, "--epochs", "1", *place, "--quiet"]) == 0
        for stage in ("evaluate", "tsne", "gradcam", "report"):
            assert cli.main([stage, *place, "--device", "cpu", "--quiet"]) == 0, stage
    finally:
        torch.set_num_threads(threads)
    run = tmp / "runs" / "tiny"
    return {"tmp": tmp, "run": run, "data": tmp / "data", "place": place, "snapshot": snapshot(run)}


def read_split(trained) -> pd.DataFrame:
    """The run's split.csv, its paths (relative to the dataset's folder) made absolute."""
    return RunFolder(trained["run"]).read_split(trained["data"] / "synthetic")


@pytest.fixture
def copy_of(trained, tmp_path):
    """A copy of the trained run in its own runs root (same data); return (place flags, folder)."""
    runs = tmp_path / "runs"
    shutil.copytree(trained["run"], runs / "tiny")
    place = ["--runs-root", str(runs), "--data-root", str(trained["data"]), "--name", "tiny",
             "--device", "cpu"]
    return place, runs / "tiny"


def test_later_stages_use_the_runs_own_split(trained):
    split = read_split(trained)
    predictions = pd.read_csv(trained["run"] / "predictions.csv")
    test, train_rows = set(split.path[split.split == "test"]), set(split.path[split.split == "train"])
    assert sorted(predictions.path) == sorted(test) and len(test) == 6
    assert not test & train_rows
    tsne = __import__("numpy").load(trained["run"] / "embeddings.npz")
    assert sorted(tsne["paths"]) == sorted(test)
    # the data was not remade with the preset's seed 0: only the run's seed-1 set exists
    from casestudy.synthetic import VERSION

    assert [p.name for p in (trained["data"] / "synthetic").glob("made-*")] == [f"made-v{VERSION}-1-20-32"]


def test_the_report_states_the_runs_real_settings(trained):
    report = (trained["run"] / "report.md").read_text()
    assert "split with seed 1" in report and "images 32 px" in report and "1 epochs" in report
    assert "batch 8" in report


CONTRADICTIONS = [  # (flag, value, needles): a run setting that differs from the run's
    ("--seed", "2", ["seed 2", "the run has 1"]),
    ("--image-size", "48", ["image_size 48", "the run has 32"]),
    ("--data", "elsewhere", ["data 'elsewhere'", "the run has 'synthetic'"]),
    ("--epochs", "3", ["epochs 3", "the run has 1"]),
    ("--weights", "imagenet", ["weights 'imagenet'", "the run has 'none'"]),
    ("--lr", "0.1", ["lr 0.1", "the run has 0.001"]),
    ("--synthetic-per-class", "30", ["synthetic_per_class 30", "the run has 20"]),
]


@pytest.mark.parametrize("stage", ["evaluate", "tsne", "gradcam", "report", "train --resume"])
@pytest.mark.parametrize("flag, value, needles", CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_a_flag_that_contradicts_the_run_is_refused(trained, stage, flag, value, needles, capsys):
    code, _, err = call([*stage.split(), *trained["place"], flag, value], capsys)
    assert_one_line(code, err, "tiny", *needles)
    assert snapshot(trained["run"]) == trained["snapshot"]


def test_a_config_file_of_stage_settings_only_is_accepted_on_a_trained_run(copy_of, tmp_path, capsys,
                                                                            one_thread):
    place, run = copy_of
    preset = tmp_path / "stage.yaml"
    preset.write_text("perturbations: blur:2.0\ntsne_max_points: 5\n")
    code, _, err = call(["evaluate", *place, "--config", str(preset)], capsys)
    assert code == 0, err
    assert list(__import__("json").loads((run / "metrics.json").read_text())["perturbations"]) == ["blur:2.0"]


def test_a_preset_chosen_for_a_trained_run_must_agree_with_it(trained, capsys):
    code, _, err = call(["evaluate", "--config", "course", *trained["place"]], capsys)
    assert_one_line(code, err, "image_size 224", "the run has 32")
    assert snapshot(trained["run"]) == trained["snapshot"]


def test_the_stages_own_settings_are_accepted(copy_of, capsys, one_thread):
    place, run = copy_of
    code, out, err = call(["evaluate", *place, "--perturbations", "jpeg:90"], capsys)
    assert code == 0, err
    metrics = __import__("json").loads((run / "metrics.json").read_text())
    assert list(metrics["perturbations"]) == ["jpeg:90"]
    before = (run / "embeddings.npz").stat().st_mtime_ns
    code, out, err = call(["tsne", *place, "--tsne-perplexity", "5"], capsys)
    assert code == 0 and (run / "embeddings.npz").stat().st_mtime_ns != before, err


@pytest.mark.parametrize("stage", ["evaluate", "tsne", "gradcam", "report", "train --resume"])
def test_a_run_that_was_never_trained_is_named(trained, stage, capsys):
    code, _, err = call([*stage.split(), *trained["place"][:-1], "nobody"], capsys)
    assert_one_line(code, err, "nobody")
    assert not (trained["tmp"] / "runs" / "nobody" / "checkpoint.pt").exists()


def test_training_over_a_run_needs_overwrite_or_resume(trained, capsys):
    code, _, err = call(["train", *TINY, "--epochs", "1", *trained["place"]], capsys)
    assert_one_line(code, err, "--resume", "--overwrite")
    assert snapshot(trained["run"]) == trained["snapshot"]


def test_run_over_a_trained_run_needs_overwrite(trained, capsys):
    code, _, err = call(["run", *TINY, "--epochs", "1", *trained["place"]], capsys)
    assert_one_line(code, err, "--overwrite")
    assert snapshot(trained["run"]) == trained["snapshot"]


DAMAGED = [  # (id, file, new content, stage, needles)
    ("config-syntax", "config.yaml", "epochs: [\n", "evaluate", ["config.yaml", "damaged"]),
    ("config-not-mapping", "config.yaml", "- 1\n", "tsne", ["config.yaml", "damaged"]),
    ("config-bad-value", "config.yaml", "epochs: ten\n", "report", ["config.yaml", "epochs", "ten"]),
    ("config-binary", "config.yaml", b"\xff\xfe\x00", "gradcam", ["config.yaml", "damaged"]),
    ("config-gone", "config.yaml", None, "evaluate", ["config.yaml"]),
    ("split-binary", "split.csv", b"\x00\xff" * 50, "evaluate", ["split.csv", "damaged"]),
    ("split-empty", "split.csv", "", "tsne", ["split.csv", "damaged"]),
    ("split-columns", "split.csv", "a,b\n1,2\n", "gradcam", ["split.csv", "lacks columns"]),
    ("history-garbage", "history.csv", "epoch\nnot a number\n", "report", ["history.csv"]),
    ("history-empty", "history.csv", "", "report", ["history.csv"]),
    ("metrics-garbage", "metrics.json", "{not json", "report", ["metrics.json"]),
    ("metrics-wrong-shape", "metrics.json", "[1, 2]", "report", ["metrics.json"]),
    ("eda-summary-garbage", "eda_summary.json", "{", "report", ["eda_summary.json"]),
]


@pytest.mark.parametrize("name, content, stage, needles",
                         [pytest.param(*case[1:], id=case[0]) for case in DAMAGED])
def test_a_damaged_run_file_is_named_and_nothing_else_changes(copy_of, name, content, stage, needles,
                                                               capsys):
    place, run = copy_of
    if content is None:
        (run / name).unlink()
    elif isinstance(content, bytes):
        (run / name).write_bytes(content)
    else:
        (run / name).write_text(content)
    before = snapshot(run)
    code, _, err = call([stage, *place], capsys)
    assert_one_line(code, err, *needles)
    assert snapshot(run) == before


def test_an_edited_config_that_the_checkpoint_disagrees_with_is_refused(copy_of, capsys):
    place, run = copy_of
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("image_size: 32", "image_size: 48"))
    before = snapshot(run)
    code, _, err = call(["evaluate", *place], capsys)
    assert_one_line(code, err, "config.yaml", "image_size 32 in the checkpoint", "48 in config.yaml")
    assert snapshot(run) == before


def test_a_split_that_leaks_training_images_into_the_test_split_is_refused(copy_of, capsys):
    place, run = copy_of
    split = pd.read_csv(run / "split.csv")
    split.loc[split.index[split.split == "train"][0], "split"] = "test"
    split = pd.concat([split, split[split.split == "test"].head(1).assign(split="train")])
    split.to_csv(run / "split.csv", index=False)
    before = snapshot(run)
    code, _, err = call(["evaluate", *place], capsys)
    assert_one_line(code, err, "leakage")
    assert snapshot(run) == before


@contextlib.contextmanager
def changed_test_image(trained, how: str):
    """Delete, relabel or rewrite one test image of the shared data for a while; restore it."""
    split = read_split(trained)
    image = Path(split.path[(split.split == "test") & (split.label == 1)].iloc[0])
    saved = image.read_bytes()
    moved = image.parent.parent / "real" / f"moved_{image.name}"
    try:
        if how == "deleted":
            image.unlink()
        elif how == "relabelled":
            image.rename(moved)
        else:
            image.write_bytes(saved[:-20] + bytes(20))
        yield image
    finally:
        moved.unlink(missing_ok=True)
        image.write_bytes(saved)


@pytest.mark.parametrize("how", ["deleted", "relabelled", "rewritten"])
@pytest.mark.parametrize("stage", ["evaluate", "tsne"])
def test_a_test_image_changed_after_training_is_named(trained, copy_of, how, stage, capsys):
    place, run = copy_of
    before = snapshot(run)
    with changed_test_image(trained, how) as image:
        code, _, err = call([stage, *place], capsys)
    line = assert_one_line(code, err, "changed, moved or vanished")
    assert image.name in line
    assert snapshot(run) == before


def test_resume_and_overwrite_together_are_refused(trained, capsys):
    code, _, err = call(["train", "--resume", "--overwrite", *trained["place"]], capsys)
    assert_one_line(code, err, "--resume", "--overwrite")
    assert snapshot(trained["run"]) == trained["snapshot"]


def test_resuming_a_finished_run_changes_nothing(trained, capsys):
    code, _, err = call(["train", "--resume", *trained["place"]], capsys)
    assert_one_line(code, err, "nothing to resume", "finished its 1 epoch")
    assert snapshot(trained["run"]) == trained["snapshot"]


def test_resume_with_nothing_to_resume(trained, capsys):
    code, _, err = call(["train", "--resume", *trained["place"][:-1], "fresh"], capsys)
    assert_one_line(code, err, "nothing to resume", "last.pt")
    assert not (trained["tmp"] / "runs" / "fresh").exists()


@pytest.mark.parametrize("argv, needles", [
    pytest.param(["evaluate", "--eval-data", "{tmp}/absent"], ["absent"], id="eval-data-missing"),
    pytest.param(["evaluate", "--eval-data", "{tmp}/a-file"], ["a-file"], id="eval-data-a-file"),
    pytest.param(["evaluate", "--device", "cuda"], ["cuda"], id="no-cuda"),
    pytest.param(["evaluate", "--device", "mps"], ["mps"], id="no-mps"),
])
def test_a_stage_setting_that_cannot_work_is_one_line(copy_of, tmp_path, argv, needles, capsys):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here: --device cuda works")
    place, run = copy_of
    (tmp_path / "a-file").write_text("not a folder")
    before = snapshot(run)
    code, _, err = call([argv[0], *place, *[a.format(tmp=tmp_path) for a in argv[1:]]], capsys)
    assert_one_line(code, err, *needles)
    assert snapshot(run) == before


# ---------------------------------------------------------------- one writer per run

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom casestudy.runs import RunFolder\n"
        "with RunFolder(Path(sys.argv[1])).lock('casestudy train'):\n"
        "    print('held', flush=True)\n    time.sleep(300)\n")


@pytest.fixture
def held(copy_of):
    """A second process holding the copied run's lock, as a running `casestudy train` would."""
    place, run = copy_of
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline() == b"held\n"
    yield place, run, holder
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("argv", [["train", "--overwrite", *TINY], ["run", "--overwrite", *TINY],
                                  ["train", "--resume"], ["evaluate"], ["report"]],
                         ids=["train", "run", "resume", "evaluate", "report"])
def test_a_run_in_use_is_refused_naming_the_process(held, argv, capsys):
    place, run, holder = held
    before = snapshot(run)
    code, _, err = call([*argv, *place], capsys)
    assert_one_line(code, err, "in use", f"process {holder.pid}")
    assert snapshot(run) == before


def test_the_lock_of_a_killed_process_is_taken_over(held, capsys, one_thread):
    place, run, holder = held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert f"process {holder.pid}" in (run / ".lock").read_text()
    code, out, err = call(["train", "--overwrite", *TINY, "--epochs", "1", *place], capsys)
    assert code == 0, err
    assert f"process {os.getpid()}" in (run / ".lock").read_text()


# ---------------------------------------------------------------- interrupted, unexpected, disks


# A real SIGINT to the real command, sent by the process itself as epoch 2 starts, handled as in
# a terminal: a test runner started in the background (`cmd &` in a script) passes SIGINT on
# ignored, and the training then ran to its end.
CTRL_C_IN_EPOCH_2 = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from casestudy import cli, train
original = train.train_one_epoch
def in_epoch_2(*args, **kwargs):
    if args[7] == 1:  # the epoch index
        os.kill(os.getpid(), signal.SIGINT)
    return original(*args, **kwargs)
train.train_one_epoch = in_epoch_2
sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_during_training_says_what_was_kept_and_resume_finishes(trained, tmp_path, capsys,
                                                                       one_thread):
    place = ["--runs-root", str(tmp_path / "runs"), "--data-root", str(trained["data"]), "--name", "cut"]
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_EPOCH_2, "train", *TINY, "--epochs", "3", *place],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    text = done.stderr
    assert done.returncode == 130 and "Traceback" not in text, text[-2000:]
    last = re.split(r"[\r\n]", text.strip())[-1]
    assert "interrupted" in last and "last.pt" in last and "--resume" in last, last
    run = tmp_path / "runs" / "cut"
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] == 0  # epoch 1 kept
    assert not list(run.glob(".*.tmp"))
    code, out, err = call(["train", "--resume", *place, "--device", "cpu"], capsys)
    assert code == 0 and "resuming" in out, err
    assert len(pd.read_csv(run / "history.csv")) == 3


def test_an_unexpected_error_is_one_line_with_a_saved_traceback(copy_of, monkeypatch, capsys):
    place, run = copy_of

    def broken(config, progress=True):
        raise ValueError("boom")

    monkeypatch.setattr("casestudy.report.write_report", broken)
    code, _, err = call(["report", *place], capsys)
    line = assert_one_line(code, err, "unexpected error ValueError: boom", status=1)
    saved = Path(re.search(r"saved in (\S+)", line).group(1))
    try:
        assert "Traceback" in saved.read_text() and "ValueError: boom" in saved.read_text()
    finally:
        saved.unlink()


@pytest.mark.parametrize("stage, code_, needles", [
    ("report", errno.ENOSPC, ["no space left", "report.md"]),
    ("report", errno.EROFS, ["cannot write", "report.md"]),
    ("report", errno.EACCES, ["cannot write", "report.md"]),
    ("report", errno.EDQUOT, ["report.md"]),
    ("report", errno.EIO, ["report.md"]),
    ("evaluate", errno.ENOSPC, ["no space left", ".png"]),
    ("tsne", errno.ENOSPC, ["no space left", "embeddings.npz"]),
    ("gradcam", errno.EROFS, ["cannot write", ".png"]),
], ids=["report-ENOSPC", "report-EROFS", "report-EACCES", "report-EDQUOT", "report-EIO",
        "evaluate-ENOSPC", "tsne-ENOSPC", "gradcam-EROFS"])
def test_a_failing_disk_is_one_line_and_keeps_the_old_files(copy_of, monkeypatch, stage, code_, needles,
                                                            capsys, one_thread):
    place, run = copy_of
    real = files.atomic_write

    @contextlib.contextmanager
    def failing(path, mode="wb"):  # the write happens, then the disk refuses to keep it
        with real(path, mode) as file:
            yield file
            raise OSError(code_, os.strerror(code_), str(path))

    monkeypatch.setattr(files, "atomic_write", failing)
    monkeypatch.setattr(plots, "atomic_write", failing)
    before = snapshot(run)
    code, _, err = call([stage, *place], capsys)
    assert_one_line(code, err, *needles)
    assert snapshot(run) == before and not list(run.rglob(".*.tmp"))


def test_training_into_a_full_disk_is_one_line_and_leaves_no_half_checkpoint(trained, tmp_path, capsys,
                                                                            one_thread):
    with small_disk(tmp_path / "small", "size=200k") as small:
        code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(small),
                             "--data-root", str(trained["data"]), "--name", "full"], capsys)
        assert_one_line(code, err, "no space left", "checkpoint.pt", "--runs-root")
        run = small / "full"
        assert not (run / "checkpoint.pt").exists() and not (run / "last.pt").exists()
        assert not list(run.glob(".*.tmp"))


def test_a_read_only_runs_root_is_one_line(trained, tmp_path, capsys):
    place = ["--data-root", str(trained["data"]), "--name", "ro"]
    if os.geteuid() == 0:
        with small_disk(tmp_path / "ro", "ro,size=1m") as runs:
            code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(runs), *place], capsys)
    else:
        runs = tmp_path / "ro"
        runs.mkdir()
        runs.chmod(0o555)
        try:
            code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(runs), *place], capsys)
        finally:
            runs.chmod(0o755)
    assert_one_line(code, err, "cannot write", str(runs))


@pytest.mark.parametrize("below", [False, True], ids=["a-file", "below-a-file"])
def test_a_runs_root_that_is_a_file_is_one_line(trained, tmp_path, below, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    runs = blocker / "deeper" if below else blocker
    code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(runs), "--data-root",
                         str(trained["data"]), "--name", "x"], capsys)
    assert_one_line(code, err, str(runs))
    assert blocker.read_text() == "not a folder"


def test_a_last_training_batch_of_one_image_trains(trained, tmp_path, capsys, one_thread):
    # 28 training images in batches of 3: the last batch would hold a single image
    runs = tmp_path / "runs"
    code, _, err = call(["train", *TINY, "--batch-size", "3", "--epochs", "1", "--runs-root", str(runs),
                         "--data-root", str(trained["data"]), "--name", "odd"], capsys)
    assert code == 0, err
    assert (pd.read_csv(trained["run"] / "split.csv").split == "train").sum() % 3 == 1
    history = pd.read_csv(runs / "odd" / "history.csv")
    assert len(history) == 1 and history.train_loss.notna().all()


@pytest.mark.parametrize("make, needles", [
    (lambda p: None, ["does not exist"]),
    (lambda p: p.write_text("a file"), ["a-set"]),
    (lambda p: (p / "real").mkdir(parents=True), ["fake/"]),
], ids=["missing", "a-file", "no-fake"])
def test_indexing_a_folder_that_is_not_a_dataset_is_one_line(tmp_path, make, needles, capsys):
    folder = tmp_path / "a-set"
    make(folder)
    code, _, err = call(["data", "index", "--data", str(folder), "--data-root", str(tmp_path / "data")],
                        capsys)
    assert_one_line(code, err, *needles)
    assert not list((tmp_path / "data").rglob("index.csv"))


def test_a_second_writer_waits_for_nothing_and_answers_at_once(held, capsys):
    """Refusal is immediate: a run in use never makes the second command hang."""
    place, run, holder = held
    begin = time.perf_counter()
    code, _, err = call(["train", "--overwrite", *TINY, *place], capsys)
    assert code == 2 and time.perf_counter() - begin < 30, err


@pytest.mark.parametrize("stage, call_", [("evaluate", "casestudy.evaluate.run_evaluation"),
                                          ("tsne", "casestudy.embed.run_tsne"),
                                          ("gradcam", "casestudy.explain.run_gradcam"),
                                          ("report", "casestudy.report.write_report")])
def test_ctrl_c_in_a_later_stage_says_what_to_run_again(copy_of, monkeypatch, stage, call_, capsys):
    place, run = copy_of

    def interrupted(config, progress=True):
        raise KeyboardInterrupt

    monkeypatch.setattr(call_, interrupted)
    before = snapshot(run)
    code, _, err = call([stage, *place], capsys)
    assert_one_line(code, err, "interrupted", f"casestudy {stage} --name tiny", status=130)
    assert snapshot(run) == before


def test_the_traceback_is_saved_even_when_the_temporary_folder_is_gone(copy_of, monkeypatch, tmp_path,
                                                                      capsys):
    place, _ = copy_of
    monkeypatch.setattr("casestudy.report.write_report", lambda config, progress=True: 1 / 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "gone"))
    monkeypatch.chdir(tmp_path)
    code, _, err = call(["report", *place], capsys)
    line = assert_one_line(code, err, "ZeroDivisionError", status=1)
    saved = Path(re.search(r"saved in (\S+)", line).group(1))
    assert saved.parent == tmp_path and "ZeroDivisionError" in saved.read_text()


@pytest.mark.parametrize("flags, needles", [
    (["--weights", "missing.pth"], ["missing.pth", "no such file"]),
    (["--max-per-class", "2"], ["val split is empty"]),
    (["--data", "{tmp}/absent"], ["absent"]),
], ids=["weights-missing", "too-few-images", "data-missing"])
def test_a_training_that_cannot_start_leaves_no_run_behind(flags, needles, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(runs), "--data-root",
                         str(tmp_path / "data"), "--name", "never",
                         *[f.format(tmp=tmp_path) for f in flags]], capsys)
    assert_one_line(code, err, *needles)
    left = {p.name for p in (runs / "never").glob("*")} if (runs / "never").exists() else set()
    assert left <= {".lock"}, left


@pytest.mark.parametrize("what", ["name-is-a-file", "lock-is-a-folder"])
def test_a_run_folder_in_the_way_is_one_line(trained, tmp_path, what, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    if what == "name-is-a-file":
        (runs / "x").write_text("mine")
        in_the_way = runs / "x"
    else:
        (runs / "x" / ".lock").mkdir(parents=True)
        in_the_way = runs / "x" / ".lock"
    code, _, err = call(["train", *TINY, "--epochs", "1", "--runs-root", str(runs), "--data-root",
                         str(trained["data"]), "--name", "x"], capsys)
    assert_one_line(code, err, str(in_the_way))
    assert in_the_way.exists() and sorted(p.name for p in runs.rglob("*")) == sorted(
        ["x", ".lock"] if what == "lock-is-a-folder" else ["x"])


def test_evaluating_a_run_on_a_read_only_disk_is_one_line_and_keeps_it(copy_of, tmp_path, capsys):
    place, run = copy_of
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    for options in (["--bind", str(run.parent), str(frozen)], ["-o", "remount,ro,bind", str(frozen)]):
        done = subprocess.run(["mount", *options], capture_output=True, text=True)
        if done.returncode:
            subprocess.run(["umount", "-l", str(frozen)], check=False)
            pytest.skip(f"mount {' '.join(options)} was refused here: {done.stderr.strip()}")
    try:
        before = snapshot(frozen / "tiny")
        code, _, err = call(["evaluate", *place, "--runs-root", str(frozen)], capsys)
        assert_one_line(code, err, "cannot write", str(frozen / "tiny"))
        assert snapshot(frozen / "tiny") == before
    finally:
        subprocess.run(["umount", "-l", str(frozen)], check=False)


def test_ctrl_c_during_the_training_stage_of_run_names_the_later_stages(trained, tmp_path, monkeypatch,
                                                                         capsys):
    def interrupted(config, resume=False, overwrite=False, progress=True):
        raise KeyboardInterrupt

    monkeypatch.setattr("casestudy.train.train", interrupted)
    monkeypatch.setattr("casestudy.eda.run_eda", lambda config, progress=True: {  # the EDA is not tested here
        "files": {"found": 0, "used": 0, "skipped": {}}, "answers": {}, "skipped": {}, "seconds": 0})
    monkeypatch.setattr("casestudy.cli.show_eda", lambda summary, config: None)
    code, _, err = call(["run", *TINY, "--epochs", "1", "--runs-root", str(tmp_path / "runs"),
                         "--data-root", str(trained["data"]), "--name", "whole"], capsys)
    assert_one_line(code, err, "interrupted", "no epoch had finished", "casestudy train --name whole",
                    "evaluate, tsne, gradcam, report", status=130)
    assert "--resume" not in err  # there is nothing to resume


def test_ctrl_c_names_the_run_of_a_config_file(copy_of, tmp_path, monkeypatch, capsys):
    place, run = copy_of
    preset = tmp_path / "mine.yaml"
    preset.write_text(f"name: tiny\nruns_root: {run.parent}\n")

    def interrupted(config, progress=True):
        raise KeyboardInterrupt

    monkeypatch.setattr("casestudy.embed.run_tsne", interrupted)
    code, _, err = call(["tsne", "--config", str(preset), *place[2:4], "--device", "cpu"], capsys)
    assert_one_line(code, err, "casestudy tsne --name tiny", status=130)
