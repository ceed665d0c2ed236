"""Save matplotlib figures headless, and title them honestly (synthetic data says so).

Outside a notebook the figures are drawn with Agg (no display needed); inside one, the kernel's
inline backend stays, so that figures a notebook draws itself with plt.show() appear.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from casestudy.files import atomic_write

if "inline" not in os.environ.get("MPLBACKEND", ""):  # a notebook's kernel keeps its inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYNTHETIC_TAG = "SYNTHETIC data, not real faces"


def data_tag(data: str) -> str:
    """Name the data a figure was made from, for its title."""
    return SYNTHETIC_TAG if data == "synthetic" else f"data: {Path(data).name}"


def save(fig, path: Path) -> Path:
    """Write a figure atomically as PNG and close it."""
    with atomic_write(path) as file:
        fig.savefig(file, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
