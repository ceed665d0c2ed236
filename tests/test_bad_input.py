"""Bad input: a dataset folder full of awkward files goes through every stage without a crash.

Usable images (grey, palette, RGBA, 16-bit, CMYK, odd sizes, odd names) are converted to
RGB and used; unusable ones (truncated, empty, not images, too many pixels, links) are
skipped with their reason; and the counts add up: files found = used + skipped.
"""

import contextlib
import io
import os
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_folder, write_image
from PIL import Image

from casestudy import cli, data

ODD_NAME = "visage généré 顔 1.png"


def write_png(path, width, height, row: bytes, colour_type=0, depth=8):
    """Write a PNG of `height` equal rows by hand (Pillow cannot write 16-bit RGB or stream a huge image)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(b"\0" + row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
                     + chunk(b"IEND", b""))


USABLE = {  # file -> the RGB every pixel must have once decoded (read_rgb drops alpha)
    "real/grey.png": (90, 90, 90),
    "real/rgba.png": (50, 60, 70),  # fully transparent: alpha dropped, not composited
    "real/rgb16.png": (40000 >> 8, 20000 >> 8, 1000 >> 8),  # 16 bits to 8: the high byte
    "real/wide.png": (120, 130, 140),  # 57 x 20: resized to the square image size
    "fake/palette.png": (10, 20, 30),
    "fake/grey16.png": (200, 200, 200),  # 200 * 256 + 255 in 16 bits
    "fake/cmyk.jpg": (0, 255, 255),  # pure cyan
    f"fake/{ODD_NAME}": (20, 20, 220),
}
SKIPPED = {  # file -> its status
    "real/truncated.png": "excluded: unreadable image (OSError: image file is truncated",
    "real/sub/up": "excluded: link to a folder (not followed)",
    "fake/empty.png": "excluded: empty file",
    "fake/notes.jpg": "excluded: unknown image format (no PNG, JPEG or WebP inside the .jpg)",
    "fake/bomb.png": "excluded: too many pixels (Image size (400000000 pixels) exceeds limit",
    "fake/dangling.png": "excluded: broken symbolic link",
}


def make_bad_folder(root):
    """12 good images per class, plus every awkward file above."""
    make_folder(root, per_class=12, size=32)
    real, fake = root / "real", root / "fake"
    good = (real / "real_000.png").read_bytes()
    (real / "truncated.png").write_bytes(good[: len(good) // 2])
    write_image(real / "grey.png", np.full((32, 32), 90, np.uint8))
    write_image(real / "rgba.png", np.dstack([np.full((32, 32, 3), (50, 60, 70), np.uint8),
                                              np.zeros((32, 32), np.uint8)]))
    write_png(real / "rgb16.png", 32, 32, struct.pack(">3H", 40000, 20000, 1000) * 32, colour_type=2,
              depth=16)
    write_image(real / "wide.png", np.full((20, 57, 3), (120, 130, 140), np.uint8))
    (real / "sub").mkdir()
    os.symlink("..", real / "sub" / "up")  # a loop: real/sub/up/sub/up/...
    (fake / "empty.png").write_bytes(b"")
    (fake / "notes.jpg").write_text("a text file, named like a JPEG")
    palette = Image.new("P", (32, 32))
    palette.putpalette([10, 20, 30] * 256)
    palette.save(fake / "palette.png")
    write_image(fake / "grey16.png", np.full((32, 32), 200 * 256 + 255, np.uint16))
    Image.new("CMYK", (32, 32), (255, 0, 0, 0)).save(fake / "cmyk.jpg", quality=95)
    write_png(fake / "bomb.png", 20_000, 20_000, bytes(2500), depth=1)  # 400 Mpixel of black, 49 kB
    write_image(fake / ODD_NAME, np.full((32, 32, 3), (20, 20, 220), np.uint8))
    os.symlink("gone.png", fake / "dangling.png")
    return root


def run_stage(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Index, explore, train one tiny epoch, evaluate and report on the bad folder, once."""
    tmp = tmp_path_factory.mktemp("bad")
    root = make_bad_folder(tmp / "awkward")
    flags = ["--data", str(root), "--data-root", str(tmp / "data"), "--runs-root", str(tmp / "runs"),
             "--name", "awkward", "--device", "cpu", "--image-size", "32", "--batch-size", "8",
             "--epochs", "1", "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {stage: run_stage([*stage.split(), *flags])
                   for stage in ("data index", "eda", "train", "evaluate", "report")}
    finally:
        torch.set_num_threads(threads)
    index = data.load_index(tmp / "data" / "awkward" / "index.csv")
    return {"root": root, "run": tmp / "runs" / "awkward", "index": index, **results}


def test_every_stage_finishes(stages):
    for stage in ("data index", "eda", "train", "evaluate", "report"):
        assert stages[stage][0] == 0, stage


def row(stages, name):
    index = stages["index"]
    return index[index.path == str(stages["root"].resolve() / name)].iloc[0]


@pytest.mark.parametrize("name", SKIPPED)
def test_unusable_files_are_skipped_with_their_reason(stages, name):
    skipped = row(stages, name)
    assert skipped.status.startswith(SKIPPED[name]) and skipped.split == ""
    assert f"skipped {stages['root'].resolve() / name}: {SKIPPED[name].removeprefix('excluded: ')}" in (
        stages["data index"][1])
    assert f"skipped `{stages['root'].resolve() / name}`" in (stages["run"] / "report.md").read_text()


@pytest.mark.parametrize("name", USABLE)
def test_usable_images_are_used_as_the_right_rgb(stages, name):
    used = row(stages, name)
    assert used.status == "ok" and used.split in ("train", "val", "test")
    [(images, _, paths)] = [data.load_split(stages["index"], used.split, 32, progress=False)]
    pixels = images[paths.index(used.path)]  # (3, 32, 32) uint8, as training sees it
    tolerance = 3 if name.endswith(".jpg") else 1  # JPEG is lossy; resizing rounds
    expected = torch.tensor(USABLE[name], dtype=torch.int16).view(3, 1, 1)
    assert (pixels.to(torch.int16) - expected).abs().max() <= tolerance, pixels[:, 0, 0]


def test_the_counts_add_up_on_the_command_line_and_in_the_report(stages):
    on_disk = [p for p in stages["root"].rglob("*") if p.is_symlink() or p.is_file()]
    assert len(on_disk) == 24 + len(USABLE) + len(SKIPPED) == 38
    counts = data.tally(stages["index"])
    assert counts["found"] == 38 and counts["used"] == 24 + len(USABLE)
    assert counts["found"] == counts["used"] + sum(counts["skipped"].values())
    line = ("38 files found: 32 used, 6 skipped (1 broken symbolic link, 1 empty file, 1 link to a "
            "folder, 1 too many pixels, 1 unknown image format, 1 unreadable image)")
    assert line in stages["data index"][1]
    assert f"data: {line}" in stages["eda"][1]
    assert line in (stages["run"] / "report.md").read_text()


def test_training_and_evaluation_use_only_the_usable_images(stages):
    index = stages["index"]
    test_split = index[index.split == "test"]
    predictions = pd.read_csv(stages["run"] / "predictions.csv")
    assert sorted(predictions.path) == sorted(test_split.path)
    assert f"(test, n={len(test_split)})" in stages["evaluate"][1]
    history = pd.read_csv(stages["run"] / "history.csv")
    assert history.train_loss.notna().all() and len(history) == 1
    eda = pd.read_csv(stages["run"] / "eda.csv")
    assert len(eda) == 32 and not (eda.path.str.contains("bomb|truncated|empty|notes")).any()
    wide = eda[eda.path.str.endswith("wide.png")].iloc[0]
    assert (wide.width, wide.height) == (57, 20)  # the EDA measures each image at its own size


def test_images_left_out_by_max_per_class_are_counted_after_the_problems(tmp_path, capsys):
    root = make_folder(tmp_path / "many", per_class=30, size=8)
    (root / "fake" / "empty.png").write_bytes(b"")
    assert cli.main(["data", "index", "--data", str(root), "--data-root", str(tmp_path / "data"),
                     "--max-per-class", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "61 files found: 20 used, 41 skipped (40 not sampled, 1 empty file)" in out
    listed = [line for line in out.splitlines() if line.startswith("skipped ")]
    assert len(listed) == data.LIST_SKIPPED and listed[0].endswith("empty.png: empty file")
    assert f"... and {41 - data.LIST_SKIPPED} more skipped" in out
