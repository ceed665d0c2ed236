"""Save matplotlib figures headless, and title them honestly (synthetic data says so)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYNTHETIC_TAG = "SYNTHETIC data, not real faces"


def data_tag(data: str) -> str:
    """Name the data a figure was made from, for its title."""
    return SYNTHETIC_TAG if data == "synthetic" else f"data: {Path(data).name}"


def save(fig, path: Path) -> Path:
    """Write a figure atomically as PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path
