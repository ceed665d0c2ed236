"""Shared fixtures: tiny image folders made on the fly, and the real sample when present."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "faces-140k-sample"


def write_image(path: Path, array: np.ndarray, **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_args)
    return path


def make_folder(root: Path, per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """A dataset folder: real/ images are noisy reds, fake/ noisy blues (easy to tell apart)."""
    rng = np.random.default_rng(seed)
    for name, channel in (("real", 0), ("fake", 2)):
        for i in range(per_class):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., channel] += 150
            write_image(root / name / f"{name}_{i:03d}.png", img)
    return root


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return make_folder(tmp_path / "tiny")


@pytest.fixture
def shared_sample() -> Path:
    if not SHARED_SAMPLE.is_dir():
        pytest.skip(f"the real sample {SHARED_SAMPLE} is absent (it sits in ../shared beside the repo)")
    return SHARED_SAMPLE


@pytest.fixture
def one_thread():
    """Bitwise-repeatable CPU kernels for the duration of one test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def small_disk(folder: Path, options: str):
    """A tmpfs mounted at folder with mount options (e.g. "size=64k" or "ro"), unmounted afterwards.

    Mounting needs root and mount rights; without them the test is skipped with the reason.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (to fill a disk or make it read-only) needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
