"""Shared fixtures: tiny image folders made on the fly, and the real sample when present."""

from __future__ import annotations

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
