"""Faults during training: a kill mid-epoch, a damaged checkpoint, a loss that turns NaN.

Each fault must leave the run folder usable and tell the user in one line what happened,
where, and what to do.
"""

import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from casestudy import CaseStudyError, cli, files, train
from casestudy.config import RunConfig, save_config
from casestudy.model import build_model

PRESET = ["--config", "demo", "--synthetic-per-class", "20", "--synthetic-size", "32",
          "--image-size", "32", "--epochs", "3", "--batch-size", "8", "--device", "cpu",
          "--deterministic"]  # 28 training images: 4 steps per epoch


def flags(tmp_path, name):
    return [*PRESET, "--data-root", str(tmp_path / f"data-{name}"), "--runs-root", str(tmp_path / "runs"),
            "--name", name]


@pytest.fixture
def repeatable(one_thread):
    """Deterministic kernels for this test only (seed_everything switches them on process-wide)."""
    yield
    torch.use_deterministic_algorithms(False)


def train_and_kill_in_second_epoch(args, cwd, steps_done: int, pause: float) -> int:
    """Run `casestudy train`, SIGKILL it when epoch 2 has done `steps_done` of 4 steps; return its code."""
    proc = subprocess.Popen([sys.executable, "-m", "casestudy", "train", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_MININTERVAL": "0",
                                 "TQDM_MINITERS": "1"})  # a bar update after every step
    shown = b""
    progress = re.compile(rb"epoch 2/3:[^\r\n]*\| (\d)/4 ")
    with proc:
        while not any(int(n) >= steps_done for n in progress.findall(shown)):
            chunk = os.read(proc.stderr.fileno(), 4096)  # tqdm's bars, as they update
            if not chunk:
                raise AssertionError(f"training ended before the kill:\n{shown.decode()[-2000:]}")
            shown += chunk
        time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
    return proc.returncode


def test_a_run_killed_mid_epoch_resumes_to_the_same_result(tmp_path, repeatable, capsys):
    draw = random.Random()
    steps_done, pause = draw.randint(1, 3), draw.uniform(0, 0.05)
    where = f"killed after step {steps_done} of epoch 2, +{pause:.2f} s"
    with ThreadPoolExecutor(1) as pool:  # the killed run trains beside the uninterrupted one
        killed = pool.submit(train_and_kill_in_second_epoch, flags(tmp_path, "cut"), tmp_path,
                             steps_done, pause)
        assert cli.main(["train", *flags(tmp_path, "whole"), "--quiet"]) == 0
        assert killed.result(timeout=600) == -signal.SIGKILL, where
    cut, whole = tmp_path / "runs" / "cut", tmp_path / "runs" / "whole"
    assert torch.load(cut / "last.pt", weights_only=False)["epoch"] == 0, where  # epoch 2 unsaved
    (cut / ".last.pt.1-deadbeef.tmp").write_bytes(b"half a checkpoint")  # a save cut short
    assert cli.main(["train", "--resume", *flags(tmp_path, "cut"), "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert not list(cut.glob(".*.tmp"))
    assert (cut / "history.csv").read_bytes() == (whole / "history.csv").read_bytes(), where
    for name in ("last.pt", "checkpoint.pt"):
        resumed, straight = (torch.load(run / name, weights_only=False) for run in (cut, whole))
        assert resumed["epoch"] == straight["epoch"], (name, where)  # the best epoch varies by machine
        assert name != "last.pt" or resumed["epoch"] == 2, where
        for key, value in straight["model"].items():
            assert torch.equal(resumed["model"][key], value), (name, key, where)
        assert str(resumed["optimizer"]) == str(straight["optimizer"]), where
    for name in ("cut", "whole"):
        assert cli.main(["evaluate", *flags(tmp_path, name), "--quiet"]) == 0
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (cut, whole)]
    assert metrics[0] == metrics[1], where


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"the good checkpoint")
    with pytest.raises(RuntimeError):
        with files.atomic_write(target) as file:
            file.write(b"half of a new one")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"the good checkpoint"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped byte":  # a whole zip, but one tensor's bytes changed: only its CRC shows it
        with zipfile.ZipFile(path) as archive:
            record = max(archive.infolist(), key=lambda i: i.file_size)  # stored, not compressed
        name_length, extra_length = struct.unpack("<HH", raw[record.header_offset + 26:][:4])
        at = record.header_offset + 30 + name_length + extra_length + record.file_size // 2
        path.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])
    elif how == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)


@pytest.fixture
def saved_run(tmp_path):
    """A run folder holding config.yaml, checkpoint.pt and last.pt as train writes them (untrained)."""
    run = tmp_path / "runs" / "broken"
    config = RunConfig(name="broken", runs_root=str(tmp_path / "runs"))
    save_config(config, run / "config.yaml")
    model = build_model("none")
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": 0, "history": [], "rng": {},
             "config": config.to_dict(), "best_val_acc": 0.5}
    for name in ("checkpoint.pt", "last.pt"):
        torch.save(state, run / name)
    return run


HOW = ["truncated", "empty", "flipped byte", "not a checkpoint"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage", ["evaluate", "tsne", "gradcam"])
def test_a_damaged_checkpoint_is_named_in_one_line(saved_run, tmp_path, stage, how, capsys):
    damage(saved_run / "checkpoint.pt", how)
    assert cli.main([stage, "--name", "broken", "--runs-root", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{saved_run / 'checkpoint.pt'}" in err
    assert "truncated or corrupt" in err or "corrupt" in err or "not a casestudy checkpoint" in err
    assert "--name broken --overwrite" in err


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_last_checkpoint_cannot_be_resumed(saved_run, tmp_path, how):
    damage(saved_run / "last.pt", how)
    config = cli.config_from(cli.build_parser().parse_args(
        ["train", "--name", "broken", "--runs-root", str(tmp_path / "runs")]))
    with pytest.raises(CaseStudyError, match=r"last\.pt .*cannot be resumed.*--overwrite"):
        train.train(config, resume=True, progress=False)


def test_a_truncated_checkpoint_stops_the_command_without_a_traceback(saved_run, tmp_path):
    damage(saved_run / "last.pt", "truncated")
    result = subprocess.run([sys.executable, "-m", "casestudy", "train", "--resume", "--name", "broken",
                             "--runs-root", str(tmp_path / "runs")], cwd=tmp_path, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == (f"casestudy train: error: checkpoint {saved_run / 'last.pt'} is truncated or "
                             f"corrupt (not a whole PyTorch file); it cannot be resumed: train afresh "
                             f"with `casestudy train --name broken --overwrite`\n")


def test_a_nan_loss_stops_training_and_keeps_the_last_good_epoch(tmp_path, monkeypatch, repeatable):
    config = cli.config_from(cli.build_parser().parse_args(["train", *flags(tmp_path, "nan")]))
    real_augment, calls = train.augment, []

    def nan_at_epoch_2_step_3(x, *args):
        calls.append(1)
        out = real_augment(x, *args)
        return out * float("nan") if len(calls) == 4 + 3 else out

    monkeypatch.setattr(train, "augment", nan_at_epoch_2_step_3)
    with pytest.raises(CaseStudyError) as err:
        train.train(config, progress=False)
    last = config.run_dir / "last.pt"
    assert str(err.value) == (f"the training loss became nan at epoch 2, step 3 of 4; training stopped "
                              f"({last} keeps epoch 1): lower --lr (now 0.001) or check the data, then "
                              f"train again with --overwrite")
    assert torch.load(last, weights_only=False)["epoch"] == 0
    assert torch.load(config.run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 0
    assert (config.run_dir / "history.csv").read_text().count("\n") == 2  # header and epoch 1
    assert not list(config.run_dir.glob(".*.tmp"))


def test_a_learning_rate_far_too_large_is_stopped_with_the_step(tmp_path, capsys, repeatable):
    assert cli.main(["train", *flags(tmp_path, "huge"), "--lr", "1e30", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"casestudy train: error: the training loss became (nan|inf|-inf) at epoch 1, "
                        r"step \d of 4; training stopped \(nothing was saved\): lower --lr \(now 1e\+30\)"
                        r" .*--overwrite\n", err), err
    assert not (tmp_path / "runs" / "huge" / "last.pt").exists()
