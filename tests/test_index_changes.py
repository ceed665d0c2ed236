"""The index follows the folder: every change is noticed, every odd file is skipped with a reason,
and every failure a user can cause is one line with exit status 2, with nothing half-written.

Cases that need root (a read-only or full disk from a small tmpfs, a user that cannot read
a file) skip with the reason where root or mount is not available.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_folder, small_disk, write_image
from PIL import Image

from casestudy import CaseStudyError, cli, data, eda
from casestudy.config import RunConfig

NOBODY = 65534


# ---------------------------------------------------------------- helpers


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr)."""
    code = cli.main([*argv, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *words: str) -> str:
    """Check the CLI said one line on stderr, without a traceback, holding every word; return it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocking open() or read()."""
    def expire(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def index_of(folder: Path, root: Path, **settings):
    return data.load_index(data.prepare(str(folder), str(root), progress=False, **settings))


def by_name(index):
    """{"real/x.png": row} for an index of one folder."""
    return {"/".join(Path(p).parts[-2:]): row for p, row in zip(index.path, index.itertuples())}


@pytest.fixture
def trust_signatures(monkeypatch):
    """Trust every signature at once: files written a moment ago are otherwise read again anyway
    (a write in the same clock tick as the scan leaves no trace), which would hide a missed change."""
    monkeypatch.setattr(data, "RACY_NS", -10**18)


def count_reads(monkeypatch) -> list[str]:
    """Record every file the index reads (the pool runs in this process below 64 files)."""
    reads, inspect = [], data.inspect_file
    monkeypatch.setattr(data, "inspect_file", lambda path: reads.append(Path(path).name) or inspect(path))
    return reads


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only), its folder; unmounted afterwards."""
    with small_disk(tmp_path / "small-disk", "size=64k,mode=0777") as mount_point:
        yield mount_point


def remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)


@pytest.fixture
def open_tmp():
    """A folder every user can enter (pytest's own tmp folder is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="casestudy-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def without_root():
    """Act as user nobody when running as root, where chmod would not stop a read."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(NOBODY)
    except PermissionError as err:
        pytest.skip(f"running as root and cannot become another user to test permissions: {err}")
    try:
        yield
    finally:
        os.seteuid(0)


# ---------------------------------------------------------------- changes to the folder


def test_a_file_moved_from_real_to_fake_is_relabelled_and_training_sees_the_new_label(tiny_folder, tmp_path,
                                                                                    capsys):
    flags = ["--data", str(tiny_folder), "--data-root", str(tmp_path / "data"), "--image-size", "16"]
    assert run(capsys, "data", "cache", *flags)[0] == 0  # index and cache at the training size
    (tiny_folder / "real" / "real_003.png").rename(tiny_folder / "fake" / "real_003.png")
    code, out, _ = run(capsys, "data", "index", *flags)
    assert code == 0 and "index:" in out
    config = RunConfig(data=str(tiny_folder), data_root=str(tmp_path / "data"), image_size=16)
    [(images, labels, paths)] = data.load_for_run(config, "all", progress=False)
    moved = str(tiny_folder.resolve() / "fake" / "real_003.png")
    assert moved in paths and labels[paths.index(moved)].item() == 1
    assert not any(p.endswith("real/real_003.png") for p in paths)
    assert labels.sum().item() == 13 and len(paths) == 24  # 11 real, 13 fake


def test_a_rewrite_that_keeps_size_and_mtime_is_read_again_and_the_cache_follows(tmp_path, trust_signatures):
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for name in ("real", "fake"):
        for i in range(10):  # uncompressed PNGs: the same size whatever the pixels
            pixels = rng.integers(0, 256, (16, 16, 3), np.uint8)
            write_image(root / name / f"{i}.png", pixels, compress_level=0)
    config = RunConfig(data=str(root), data_root=str(tmp_path / "data"), image_size=16)
    data.build_cache(config, progress=False)
    before = data.load_index(data.prepare_for(config, progress=False))
    target = root / "real" / "0.png"
    old = target.stat()
    time.sleep(0.05)  # past the clock tick of the first scan
    write_image(tmp_path / "new.png", np.full((16, 16, 3), 7, np.uint8), compress_level=0)
    shutil.copyfile(tmp_path / "new.png", target)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))  # what cp -p, rsync -t and unzip do
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    [(images, _, paths)] = data.load_for_run(config, "all", progress=False)
    after = data.load_index(data.prepare_for(config, progress=False))
    row = str(target.resolve())
    assert after.set_index("path").sha256[row] != before.set_index("path").sha256[row]
    assert (images[paths.index(row)] == 7).all()  # the new pixels, not the cached old ones


def test_only_new_and_changed_files_are_read_again(tiny_folder, tmp_path, trust_signatures, monkeypatch):
    index_of(tiny_folder, tmp_path)
    reads = count_reads(monkeypatch)
    index_of(tiny_folder, tmp_path)
    assert reads == []  # nothing changed: nothing read
    time.sleep(0.05)
    write_image(tiny_folder / "real" / "real_001.png", np.zeros((32, 32, 3), np.uint8))
    write_image(tiny_folder / "fake" / "added.png", np.full((32, 32, 3), 9, np.uint8))
    index_of(tiny_folder, tmp_path)
    assert sorted(reads) == ["added.png", "real_001.png"]


def test_deleted_and_added_files_leave_and_join_the_index(tiny_folder, tmp_path):
    first = by_name(index_of(tiny_folder, tmp_path))
    (tiny_folder / "real" / "real_000.png").unlink()
    write_image(tiny_folder / "fake" / "sub" / "added.png", np.full((32, 32, 3), 99, np.uint8))
    second = index_of(tiny_folder, tmp_path)
    names = by_name(second)
    assert "real/real_000.png" not in names and "sub/added.png" in names
    assert names["sub/added.png"].label == 1 and names["sub/added.png"].status == "ok"
    assert len(second) == len(first) and data.tally(second)["used"] == 24


def test_unchanged_files_keep_their_split_when_one_is_added(tmp_path):
    root = make_folder(tmp_path / "d", per_class=60, size=8)
    before = by_name(index_of(root, tmp_path / "data"))
    write_image(root / "real" / "extra.png", np.full((8, 8, 3), 200, np.uint8))
    after = by_name(index_of(root, tmp_path / "data"))
    moved = [name for name, row in before.items() if after[name].split != row.split]
    assert len(moved) <= 2 and all(name.startswith("real/") for name in moved), moved  # one per cut at most


# ---------------------------------------------------------------- files that are not images


@pytest.mark.parametrize("how", ["direct", "through a link"])
def test_a_named_pipe_is_skipped_unread_without_hanging(tiny_folder, tmp_path, capsys, how):
    pipe = tiny_folder / "real" / "pipe.png"
    if how == "direct":
        os.mkfifo(pipe)
    else:
        os.mkfifo(tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", pipe)
    with deadline(60):
        code, out, _ = run(capsys, "data", "index", "--data", str(tiny_folder),
                           "--data-root", str(tmp_path / "d"))
    reason = "named pipe (not read)" if how == "direct" else "link to a named pipe (not read)"
    assert code == 0 and f"skipped {tiny_folder.resolve() / 'real' / 'pipe.png'}: {reason}" in out
    assert "25 files found: 24 used, 1 skipped" in out


def test_a_socket_and_a_link_to_a_device_are_skipped_unread(tiny_folder, tmp_path, capsys):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tiny_folder / "fake" / "sock.png"))
    os.symlink("/dev/null", tiny_folder / "fake" / "null.jpg")
    try:
        with deadline(60):
            code, out, _ = run(capsys, "data", "index", "--data", str(tiny_folder),
                               "--data-root", str(tmp_path / "d"))
    finally:
        server.close()
    fake = tiny_folder.resolve() / "fake"
    assert code == 0 and f"skipped {fake / 'sock.png'}: socket (not read)" in out
    assert f"skipped {fake / 'null.jpg'}: link to a device (not read)" in out


def test_reading_a_pipe_directly_raises_instead_of_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with deadline(30), pytest.raises(OSError, match="not a regular file"):
        data.read_rgb(str(tmp_path / "pipe.png"))


def test_a_file_damaged_between_indexing_and_decoding_is_one_line(tiny_folder, tmp_path):
    index = index_of(tiny_folder, tmp_path)
    victim = index[index.split == "train"].path.iloc[0]
    Path(victim).write_bytes(b"no longer a PNG")
    with pytest.raises(CaseStudyError, match=f"cannot decode {victim} .*run the command again"):
        data.load_split(index, "train", 16, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").rglob("*.npy"))


ODD_NAMES = [b"caf\xe9 latin-1.png", b"line\nbreak.png", b"carriage\rreturn.png", b"tab\tand\x1bescape.png",
             b"escaped:looking.png", "顔 ok.png".encode()]


def test_any_file_name_survives_the_index_exactly(tiny_folder, tmp_path, capsys):
    written = {}
    for i, name in enumerate(ODD_NAMES):
        path = os.fsencode(tiny_folder / ("real" if i % 2 else "fake")) + b"/" + name
        Image.fromarray(np.full((8, 8, 3), 10 * i + 5, np.uint8)).save(os.fsdecode(path), format="PNG")
        written[os.fsdecode(path)] = 10 * i + 5
    code, _, err = run(capsys, "data", "index", "--data", str(tiny_folder),
                       "--data-root", str(tmp_path / "d"))
    assert code == 0, err
    csv = (tmp_path / "d" / "tiny" / "index.csv").read_bytes()
    assert len(csv.decode("utf-8").split("\n")) == 24 + len(ODD_NAMES) + 2  # header, rows, final newline
    assert b"\r" not in csv
    index = data.load_index(tmp_path / "d" / "tiny" / "index.csv")
    resolved = {os.fsdecode(os.fsencode(Path(p).resolve())): v for p, v in written.items()}
    assert set(resolved) <= set(index.path) and (index.status == "ok").all()
    [(images, _, paths)] = [data.load_split(index, "all", 8, tmp_path / "cache", progress=False)]
    for path, value in resolved.items():
        assert (images[paths.index(path)] == value).all(), path


def test_a_jpeg_is_decoded_upright_as_its_exif_orientation_says(tiny_folder, tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide and 20 high: left red, right blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show it rotated 90 degrees clockwise
    Image.fromarray(stored).save(tiny_folder / "real" / "turned.jpg", exif=exif, quality=95)
    index = by_name(index_of(tiny_folder, tmp_path))
    assert (index["real/turned.jpg"].width, index["real/turned.jpg"].height) == (20, 40)  # as shown
    upright = data.decode(str(tiny_folder / "real" / "turned.jpg"), 16).astype(int)
    assert upright[0, :6].mean() > 200 and upright[2, :6].mean() < 50  # red on top
    assert upright[2, -6:].mean() > 200 and upright[0, -6:].mean() < 50  # blue below


# ---------------------------------------------------------------- damaged caches and indexes


@pytest.mark.parametrize("damage", ["truncated", "wrong shape"])
def test_a_damaged_cache_file_is_rebuilt(tiny_folder, tmp_path, damage):
    config = RunConfig(data=str(tiny_folder), data_root=str(tmp_path / "data"), image_size=16)
    store = data.build_cache(config, progress=False)["folder"]
    [train] = store.glob("train-*.npy")
    [(good, _, _)] = data.load_for_run(config, "train", progress=False)
    good = good.clone()
    if damage == "truncated":
        train.write_bytes(train.read_bytes()[: train.stat().st_size // 2])
    else:
        np.save(train, np.zeros((3, 3, 16, 16), np.uint8))
    [(images, _, _)] = data.load_for_run(config, "train", progress=False)
    assert torch.equal(images, good)
    assert np.load(train).shape == tuple(good.shape)  # the file itself is whole again


@pytest.mark.parametrize("damage", ["garbage bytes", "missing column", "bad label", "edited"])
def test_a_damaged_index_is_named_when_loaded_and_rebuilt_by_the_next_stage(tiny_folder, tmp_path, capsys,
                                                                           damage):
    flags = ["--data", str(tiny_folder), "--data-root", str(tmp_path / "d")]
    assert run(capsys, "data", "index", *flags)[0] == 0
    path = tmp_path / "d" / "tiny" / "index.csv"
    good = data.load_index(path)
    text = path.read_text()
    damaged = {"garbage bytes": b"\xff\xfe\x00garbage\x00\x81" * 50,
               "missing column": text.replace("sha256,", "").encode(),
               "bad label": text.replace(",0,", ",7,", 1).encode(),
               "edited": text.replace(",train,", ",test,", 1).encode()}[damage]
    path.write_bytes(damaged)
    if damage != "edited":  # an edit that still parses is not an error, only undone
        with pytest.raises(CaseStudyError) as caught:
            data.load_index(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    code, _, err = run(capsys, "data", "index", *flags)
    assert code == 0, err
    assert data.load_index(path).equals(good)


def test_a_damaged_state_file_means_reading_every_file_again(tiny_folder, tmp_path, monkeypatch,
                                                             trust_signatures):
    good = index_of(tiny_folder, tmp_path)
    state = tmp_path / "tiny" / data.STATE_FILE
    entries = state.read_text()
    state.write_text(entries.replace("|32|32|ok", "|wide|32|ok", 1))  # one entry no longer parses
    reads = count_reads(monkeypatch)
    assert index_of(tiny_folder, tmp_path).equals(good) and len(reads) == 1
    state.write_bytes(b'{"version": 1, "files": {"real/x": [1')  # cut short
    assert index_of(tiny_folder, tmp_path).equals(good) and len(reads) == 1 + 24


# ---------------------------------------------------------------- permissions, read-only and full disks


def test_a_missing_data_folder_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "data", "index", "--data", str(tmp_path / "nowhere"),
                       "--data-root", str(tmp_path / "d"))
    assert code == 2
    one_line_error(err, "nowhere", "does not exist")


def test_an_unreadable_image_is_skipped_and_an_unreadable_class_folder_is_one_line(open_tmp, capsys):
    root = make_folder(open_tmp / "set", per_class=12, size=16)
    (open_tmp / "data").mkdir(mode=0o777)
    (open_tmp / "data").chmod(0o777)
    (root / "real" / "real_004.png").chmod(0)
    write_image(root / "fake" / "locked" / "inside.png", np.zeros((8, 8, 3), np.uint8))
    (root / "fake" / "locked").chmod(0)
    flags = ["--data", str(root), "--data-root", str(open_tmp / "data")]
    with without_root():
        code, out, err = run(capsys, "data", "index", *flags)
    assert code == 0, err
    assert f"skipped {root / 'real' / 'real_004.png'}: no permission to read it (PermissionError" in out
    assert f"skipped {root / 'fake' / 'locked'}: unreadable folder (not listed)" in out
    (root / "fake").chmod(0)
    with without_root():
        code, _, err = run(capsys, "data", "index", *flags)
    assert code == 2
    one_line_error(err, f"cannot list {root / 'fake'}", "Permission denied", "chmod")


def test_a_read_only_data_root_is_one_line_unless_nothing_needs_writing(tiny_folder, tmpfs, capsys):
    flags = ["--data", str(tiny_folder), "--data-root", str(tmpfs)]
    remount(tmpfs, "ro")
    code, _, err = run(capsys, "data", "index", *flags)
    assert code == 2
    one_line_error(err, str(tmpfs / "tiny"), "Read-only file system", "writable --data-root")
    remount(tmpfs, "rw")
    assert run(capsys, "data", "index", *flags)[0] == 0
    written = {p.name: p.read_bytes() for p in (tmpfs / "tiny").iterdir()}
    remount(tmpfs, "ro")
    assert run(capsys, "data", "index", *flags)[0] == 0  # up to date: read-only is fine
    write_image(tiny_folder / "real" / "more.png", np.zeros((8, 8, 3), np.uint8))
    code, _, err = run(capsys, "data", "index", *flags)
    assert code == 2
    one_line_error(err, "cannot write the index", str(tmpfs / "tiny" / "index.csv"), "Read-only")
    assert {p.name: p.read_bytes() for p in (tmpfs / "tiny").iterdir()} == written


def test_a_full_disk_stops_the_index_and_the_cache_with_one_line_and_nothing_half_written(tiny_folder, tmpfs,
                                                                                        capsys):
    flags = ["--data", str(tiny_folder), "--data-root", str(tmpfs)]
    filler = tmpfs / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as file:  # fill the disk to its last byte
        file.write(bytes(64 * 1024))
    code, _, err = run(capsys, "data", "index", *flags)
    assert code == 2
    one_line_error(err, "cannot write the index", "No space left on device", "free some disk space")
    assert not [p for p in tmpfs.rglob("*") if p.is_file() and p != filler]  # no index, no temporary file
    filler.unlink()
    assert run(capsys, "data", "index", *flags)[0] == 0
    code, _, err = run(capsys, "data", "cache", *flags, "--size", "64")  # 16 x 12 KiB for train alone
    assert code == 2
    one_line_error(err, "cannot write the image cache", str(tmpfs / "tiny" / "cache" / "64"), "No space left")
    assert not list((tmpfs / "tiny" / "cache").rglob("*.npy*")) and not list(tmpfs.rglob(".*.tmp"))
    assert data.load_index(tmpfs / "tiny" / "index.csv").status.eq("ok").all()  # the index is intact


# ---------------------------------------------------------------- degenerate images in the EDA


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (2, 2), (1, 1)])
def test_eda_features_refuse_an_image_without_interior_pixels(shape):
    rgb = np.full((*shape, 3), 100, np.uint8)
    with pytest.raises(ValueError, match=f"too small to measure \\({shape[1]} x {shape[0]} px"):
        eda.image_features(rgb)


def test_eda_features_of_the_smallest_measurable_image():
    board = np.indices((3, 3)).sum(0) % 2 * 255  # a 3 x 3 checkerboard: one interior pixel
    features = eda.image_features(np.dstack([board] * 3).astype(np.uint8))
    assert features["laplacian_var"] == 0.0  # one interior value has no variance
    assert features["luminance"] == pytest.approx(255 * 4 / 9, rel=1e-4)
    assert np.isfinite(features["spectrum"]).all()


def test_the_eda_skips_one_pixel_high_images_with_their_reason(tiny_folder, tmp_path, capsys):
    write_image(tiny_folder / "real" / "strip.png", np.full((1, 40, 3), 90, np.uint8))
    write_image(tiny_folder / "fake" / "column.png", np.full((40, 1, 3), 90, np.uint8))
    write_image(tiny_folder / "fake" / "tiny.png", np.full((2, 2, 3), 90, np.uint8))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, out, err = run(capsys, "eda", "--data", str(tiny_folder), "--data-root", str(tmp_path / "d"),
                             "--runs-root", str(tmp_path / "runs"), "--name", "thin")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    real, fake = tiny_folder.resolve() / "real", tiny_folder.resolve() / "fake"
    small = {real / "strip.png": "40 x 1", fake / "column.png": "1 x 40", fake / "tiny.png": "2 x 2"}
    for path, size in small.items():
        assert f"skipped {path}: too small to measure ({size} px" in out
    assert "data: 27 files found: 27 used" in out  # training may still use them, resized
