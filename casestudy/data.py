"""Get the data: index a real/fake folder, split it, and decode it once into a cache.

Book chapter 01_data. Labels are explicit, real = 0 and fake = 1, and never come from
sorted folder names (torchvision's ImageFolder would number "fake" 0 and "real" 1).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from casestudy import CaseStudyError
from casestudy.files import atomic_write, parallel_map
from casestudy.scan import (
    decode_path,
    describe_error,
    encode_path,
    file_problem,
    last_change_ns,
    read_regular,
    shown,
    signature,
    walk,
)

LABELS = {"real": 0, "fake": 1}
CLASS_NAMES = ["real", "fake"]  # index = label
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
SPLITS = {"train": 0.70, "val": 0.15, "test": 0.15}
COLUMNS = ["path", "label", "split", "sha256", "width", "height", "status"]
ORIENTATION = 0x0112  # the EXIF tag of how the camera was held
LIST_SKIPPED = 20  # skipped files the CLI and report.md name one by one; the rest are counted


def dataset_name(data: str) -> str:
    """Name a dataset after its folder: "synthetic", "faces-140k-sample", ..."""
    return "synthetic" if data == "synthetic" else Path(data).resolve().name


def dataset_dir(data: str, data_root: str = "data") -> Path:
    return Path(data_root) / dataset_name(data)


def is_synthetic(data: str) -> bool:
    return data == "synthetic"


# ---------------------------------------------------------------- indexing

INFO = ["sha256", "width", "height", "status"]  # what inspect_file finds out about one file
STATE_FILE = "index-state.json"  # beside index.csv: each file's signature and inspection
STATE_VERSION = 1
RACY_NS = 2 * 10**9  # a file changed this close to a scan is inspected again next time


def check_root(root: str | Path) -> Path:
    """Return the dataset folder, resolved, once it is known to hold real/ and fake/."""
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise CaseStudyError(f"data folder {shown(root)} {what}: give a folder with real/ and fake/")
    root = root.resolve()
    for name in LABELS:
        if not (root / name).is_dir():
            raise CaseStudyError(f"{shown(root)} has no {name}/ folder: "
                                 f"a dataset needs real/ and fake/ below it")
    return root


def scan_folder(root: Path) -> dict[str, str | None]:
    """Stat every file under root/real and root/fake: {"real/a.png": signature, ...}; nothing is opened."""
    listed = {}
    for name in LABELS:
        folder = root / name
        try:
            paths = walk(str(folder))
        except OSError as err:
            raise CaseStudyError(f"cannot list {shown(folder)} ({describe_error(err)}): make it readable, "
                                 f"e.g. chmod -R u+rX {shown(folder)}") from err
        start = len(str(root)) + 1
        listed.update((path[start:].replace(os.sep, "/"), signature(path)) for path in paths)
    return listed


def inspect_files(root: Path, keys: list[str], progress: bool) -> dict[str, dict]:
    """inspect_file every listed file (over all cores): {key: {sha256, width, height, status}}."""
    prefix = str(root) + os.sep
    infos = parallel_map(inspect_file, [prefix + key.replace("/", os.sep) for key in keys], "index", "file",
                         progress)
    return dict(zip(keys, infos))


def index_folder(root: str | Path, seed: int = 0, max_per_class: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """List every file under root/real and root/fake with its label, checksum, size and split.

    Files that are not usable images stay in the index with the reason in `status` and an
    empty split, so that they are reported and never used: every file found is either
    used or skipped for a stated reason (see tally). prepare() keeps an index up to date
    without reading the unchanged files again.
    """
    root = check_root(root)
    listed = scan_folder(root)
    return build_index(root, inspect_files(root, list(listed), progress), seed, max_per_class)


def build_index(root: Path, files: dict[str, dict], seed: int, max_per_class: int) -> pd.DataFrame:
    """Make the index from each file's inspection ({"real/a.png": {sha256, ...}}): labels, splits."""
    prefix = str(root) + os.sep
    rows = [{"path": prefix + key.replace("/", os.sep), "label": LABELS[key.split("/", 1)[0]], **info}
            for key, info in sorted(files.items())]
    index = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "split"])
    for name, label in LABELS.items():
        if not ((index.label == label) & (index.status == "ok")).any():
            raise CaseStudyError(f"{shown(root / name)} holds no readable image (png, jpg, jpeg, webp)")
    index = mark_conflicts(index)
    if max_per_class:
        index = subsample(index, max_per_class, seed)
    return assign_splits(index, seed)


def inspect_file(path: Path) -> dict:
    """Return sha256, width, height and status: "ok", or "excluded: " and why.

    Links to folders, broken links, pipes, sockets and devices are recognised from their
    stat and never opened. A file is ok when it decodes completely to RGB as training will
    read it (read_rgb), so truncated files fail here, not during training. Pillow refuses
    images of more than 2 * Image.MAX_IMAGE_PIXELS pixels (a decompression bomb) before
    decoding them.
    """
    info = {"sha256": "", "width": 0, "height": 0, "status": "ok"}
    path = Path(path)
    problem = file_problem(path)
    if problem:
        return {**info, "status": f"excluded: {problem}"}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return {**info, "status": f"excluded: not an image file ({shown(path.suffix) or 'no suffix'})"}
    try:
        raw = read_regular(path)
    except PermissionError as err:
        return {**info, "status": f"excluded: no permission to read it ({describe_error(err)})"}
    except OSError as err:
        return {**info, "status": f"excluded: unreadable file ({describe_error(err)})"}
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    if not raw:
        return {**info, "status": "excluded: empty file"}
    try:
        info["width"], info["height"] = rgb_from_bytes(raw).size
    except UnidentifiedImageError:
        info["status"] = f"excluded: unknown image format (no PNG, JPEG or WebP inside the {path.suffix})"
    except Image.DecompressionBombError as err:
        info["status"] = f"excluded: too many pixels ({str(err).rstrip('.')})"
    except (OSError, ValueError) as err:
        info["status"] = f"excluded: unreadable image ({type(err).__name__}: {err})"
    return info


def reason(status: str) -> str:
    """Name the kind of an exclusion: "excluded: unreadable image (OSError: ...)" -> "unreadable image"."""
    return status.removeprefix("excluded: ").split(" (")[0]


def tally(index: pd.DataFrame) -> dict:
    """Count the files found, used and skipped per reason; found = used + every skipped count."""
    skipped = index[index.split == ""].status.map(reason)
    return {"found": len(index), "used": int((index.split != "").sum()),
            "skipped": {reason: int(n) for reason, n in sorted(skipped.value_counts().items(),
                                                               key=lambda kv: (-kv[1], kv[0]))}}


def skipped_files(index: pd.DataFrame) -> list[tuple[str, str]]:
    """Return (path, why) of every skipped file: problems first, those left out by max_per_class last.

    Paths are given as one printable line each (scan.shown), for messages and reports.
    """
    rows = index[index.split == ""]
    unsampled = rows.status.str.startswith("excluded: not sampled").to_numpy()
    return [(shown(row.path), row.status.removeprefix("excluded: "))
            for row in rows.iloc[np.argsort(unsampled, kind="stable")].itertuples()]


def describe_tally(counts: dict) -> str:
    """Say a tally in one line: "30 files found: 24 used, 6 skipped (2 empty file, ...)"."""
    n_skipped = sum(counts["skipped"].values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts["skipped"].items())
    return (f"{counts['found']} files found: {counts['used']} used, "
            + (f"{n_skipped} skipped ({reasons})" if n_skipped else "none skipped"))


def mark_conflicts(index: pd.DataFrame) -> pd.DataFrame:
    """Exclude files whose identical bytes appear under both real/ and fake/."""
    ok = index[index.status == "ok"]
    labels_per_hash = ok.groupby("sha256").label.nunique()
    clashing = set(labels_per_hash[labels_per_hash > 1].index)
    index = index.copy()
    index.loc[index.sha256.isin(clashing) & (index.status == "ok"), "status"] = (
        "excluded: the same bytes are both real and fake"
    )
    return index


def shuffle_key(sha256: str, seed: int) -> bytes:
    """A seeded, stable random rank of a file's bytes: the order splits and subsets are taken in."""
    return hashlib.sha256(f"{seed}:{sha256}".encode()).digest()


def subsample(index: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Keep at most `per_class` usable images of each class, chosen with the seed; mark the rest.

    The first per_class in shuffle_key order are kept, so adding or removing an image
    changes the choice by at most that image and one other.
    """
    index = index.copy()
    for _, group in index[index.status == "ok"].groupby("label"):
        order = sorted(group.index, key=lambda i: (shuffle_key(group.sha256[i], seed), group.path[i]))
        index.loc[order[per_class:], "status"] = f"excluded: not sampled (max_per_class {per_class})"
    return index


def assign_splits(index: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Split usable images 70/15/15 per class (stratified, seeded).

    Identical files (same sha256) always land in the same split, so no bytes leak
    between train, val and test. The split is a function of the checksums and the seed:
    each class's distinct checksums are ranked by shuffle_key and cut 70/15/15 in that
    order. An image keeps its split while its bytes stay the same; adding or removing
    k images of a class moves at most about k others across each of the two cuts (a
    rewritten image is one removed and one added).
    """
    index = index.copy()
    index["split"] = ""
    usable = index.status == "ok"
    for label in LABELS.values():
        mine = usable & (index.label == label)
        hashes = sorted(set(index.sha256[mine]), key=lambda h: shuffle_key(h, seed))
        n_train = round(SPLITS["train"] * len(hashes))
        n_val = round(SPLITS["val"] * len(hashes))
        split_of = {h: "train" if i < n_train else "val" if i < n_train + n_val else "test"
                    for i, h in enumerate(hashes)}
        index.loc[mine, "split"] = index.sha256[mine].map(split_of)
    check_leakage(index)
    return index[COLUMNS]


def find_leaks(index: pd.DataFrame) -> pd.DataFrame:
    """Return the rows whose bytes (sha256) appear in more than one split."""
    used = index[index.split != ""]
    splits_per_hash = used.groupby("sha256").split.nunique()
    leaking = splits_per_hash[splits_per_hash > 1].index
    return used[used.sha256.isin(leaking)]


def check_leakage(index: pd.DataFrame) -> None:
    leaks = find_leaks(index)
    if len(leaks):
        example = leaks.iloc[0].path
        raise CaseStudyError(f"leakage: {leaks.sha256.nunique()} image(s) appear in more than one "
                             f"split, e.g. {example}; rebuild the index with `casestudy data index`")


def stored_paths(paths: pd.Series, base: Path) -> pd.Series:
    """Image paths as index.csv and split.csv keep them: relative to base (the dataset's folder)
    with "/" for the images inside it, so that the folder may be copied or moved; others absolute."""
    prefix = str(Path(base).resolve()) + os.sep
    return paths.map(lambda p: p[len(prefix):].replace(os.sep, "/") if p.startswith(prefix) else p)


def resolved_paths(paths: pd.Series, base: Path) -> pd.Series:
    """stored_paths' paths back as absolute paths (a relative one is below base)."""
    root = str(Path(base).resolve())
    return paths.map(lambda p: p if os.path.isabs(p) else os.path.join(root, p.replace("/", os.sep)))


def index_bytes(index: pd.DataFrame, base: Path) -> bytes:
    """index.csv (in base) as UTF-8: one line per file, whatever its name (scan.encode_path)."""
    stored = stored_paths(index.path, base).map(encode_path)
    return index.assign(path=stored).to_csv(index=False).encode("utf-8")


def save_index(index: pd.DataFrame, path: Path) -> Path:
    """Write index.csv atomically; a full or read-only disk is a CaseStudyError, nothing half-written."""
    with writing(path, "the index"), atomic_write(path) as file:
        file.write(index_bytes(index, Path(path).parent))
    return Path(path)


def load_index(path: Path) -> pd.DataFrame:
    """Read index.csv back, file names exactly as they are on disk; a damaged one is named."""
    if not Path(path).is_file():
        raise CaseStudyError(f"no index at {shown(path)}: run `casestudy data index --data FOLDER` first")
    damaged = (f"{shown(path)} is damaged or not an index: delete it and run "
               f"`casestudy data index --data FOLDER` (or the stage again) to rebuild it")
    try:
        index = pd.read_csv(path, dtype={"path": str, "split": str, "sha256": str, "status": str},
                            keep_default_na=False, encoding="utf-8")
    except (OSError, ValueError, pd.errors.ParserError) as err:  # UnicodeDecodeError is a ValueError
        raise CaseStudyError(f"{damaged} ({type(err).__name__})") from err
    missing = set(COLUMNS) - set(index.columns)
    if missing:
        raise CaseStudyError(f"{shown(path)} lacks column(s) {', '.join(sorted(missing))}: {damaged}")
    if not (index.label.isin(list(LABELS.values())).all() and index.split.isin(["", *SPLITS]).all()):
        raise CaseStudyError(f"{damaged} (a label other than 0 or 1, or an unknown split)")
    index["path"] = resolved_paths(index.path.map(decode_path), Path(path).parent)
    check_leakage(index)
    return index


def summarize(index: pd.DataFrame) -> pd.DataFrame:
    """Count usable images per split and class (the "is it balanced?" table)."""
    used = index[index.split != ""]
    table = pd.crosstab(used.split, used.label.map(dict(enumerate(CLASS_NAMES))))
    return table.reindex(index=[s for s in SPLITS if s in table.index],
                         columns=CLASS_NAMES, fill_value=0)


def prepare(data: str, data_root: str = "data", seed: int = 0, max_per_class: int = 0,
            synthetic_per_class: int = 300, synthetic_size: int = 64,
            progress: bool = True) -> Path:
    """Make sure the dataset is present and indexed; return the path of its index.csv."""
    out = dataset_dir(data, data_root)
    if is_synthetic(data):
        from casestudy.synthetic import VERSION, make_synthetic

        folder = out / "images"
        stamp = out / f"made-v{VERSION}-{seed}-{synthetic_per_class}-{synthetic_size}"
        if not stamp.exists():  # other settings: make the set afresh, no stale images
            with writing(out, "the synthetic dataset into"):
                shutil.rmtree(folder, ignore_errors=True)
                for old in out.glob("made-*"):
                    old.unlink()
                make_synthetic(folder, synthetic_per_class, synthetic_size, seed, progress=progress)
                stamp.touch()
        source = folder
    else:
        source = Path(data)
    return update_index(source, out, seed, max_per_class, progress)


def update_index(source: str | Path, out: Path, seed: int = 0, max_per_class: int = 0,
                 progress: bool = True) -> Path:
    """Bring out/index.csv up to date with the folder source; return its path.

    Every file is stat'ed on each call; only the files that are new or whose signature
    (scan.signature: size, mtime, ctime, inode, type) changed are read and checked again.
    Moving a file between real/ and fake/ relabels it, a rewrite keeps no stale checksum
    even when its mtime was put back, and deleted files leave the index. The signatures
    and inspections are kept in out/index-state.json; a damaged one is rebuilt by reading
    every file again, and an index.csv that differs from the one written is written again.
    Nothing is written when nothing changed, so an up-to-date dataset may be read-only.
    """
    root = check_root(source)
    index_path, state_path = out / "index.csv", out / STATE_FILE
    old = read_state(state_path)
    started = time.time_ns()
    listed = scan_folder(root)
    known = old.get("files", {})
    settings = {"version": STATE_VERSION, "root": str(root), "seed": seed, "max_per_class": max_per_class}
    unchanged = {key: unpack(known[key]) for key, sig in listed.items()
                 if sig is not None and known.get(key, "|").split("|", 1)[0] == sig}
    stale = [key for key in listed if unchanged.get(key) is None]
    if not stale and known.keys() == listed.keys() and all(old.get(k) == v for k, v in settings.items()) \
            and file_sha256(index_path) == old.get("index_sha256"):
        return index_path
    infos = {**unchanged, **inspect_files(root, stale, progress)}
    content = index_bytes(build_index(root, infos, seed, max_per_class), out)
    if file_sha256(index_path) != hashlib.sha256(content).hexdigest():
        with writing(index_path, "the index"), atomic_write(index_path) as file:
            file.write(content)
    recent = started - RACY_NS  # a write in the same clock tick as the scan may leave no trace
    files = {key: pack(sig if sig is not None and last_change_ns(sig) < recent else "", infos[key])
             for key, sig in listed.items()}
    state = {**settings, "index_sha256": hashlib.sha256(content).hexdigest(), "files": files}
    if state != old:
        with writing(state_path, "the index state"), atomic_write(state_path) as file:
            file.write(json.dumps(state).encode())
    with contextlib.suppress(OSError):
        (out / "index-settings.txt").unlink(missing_ok=True)  # the previous version's record
    return index_path


def pack(sig: str, info: dict) -> str:
    """One file's entry in the state: "signature|sha256|width|height|status" ("" signature: read again)."""
    return f"{sig}|{info['sha256']}|{info['width']}|{info['height']}|{info['status']}"


def unpack(entry: str) -> dict | None:
    """pack's entry back as {sha256, width, height, status}; None when damaged (the file is read again)."""
    try:
        _, sha256, width, height, status = entry.split("|", 4)
        return {"sha256": sha256, "width": int(width), "height": int(height), "status": status}
    except ValueError:
        return None


def read_state(path: Path) -> dict:
    """The signatures and inspections written last time; {} when missing or damaged (all read again)."""
    try:
        state = json.loads(Path(path).read_bytes())
        if state.get("version") == STATE_VERSION and all(isinstance(v, str) for v in state["files"].values()):
            return state
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        pass
    return {}


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


WRITE_ADVICE = {errno.ENOSPC: "free some disk space there or give another --data-root",
                getattr(errno, "EDQUOT", -1): "free some of your disk quota or give another --data-root",
                errno.EROFS: "that disk is read-only: give a writable --data-root",
                errno.EACCES: "make that folder writable or give another --data-root",
                errno.EPERM: "make that folder writable or give another --data-root"}


@contextlib.contextmanager
def writing(path: Path, what: str):
    """Turn a failed write (disk full, read-only, no permission) into a one-line CaseStudyError."""
    try:
        yield
    except OSError as err:
        advice = WRITE_ADVICE.get(err.errno, "check that folder or give another --data-root")
        raise CaseStudyError(f"cannot write {what} {shown(path)} ({describe_error(err)}): {advice}; "
                             f"nothing was half-written") from err


def prepare_for(config, source: str | None = None, progress: bool = True) -> Path:
    """prepare() the run's dataset (or `source`) with the run's settings; return its index.csv."""
    return prepare(source or config.data, config.data_root, config.seed, config.max_per_class,
                   config.synthetic_per_class, config.synthetic_size, progress)


def load_for_run(config, *splits: str, source: str | None = None, progress: bool = True):
    """Prepare the run's dataset (or `source`) once; return (images, labels, paths) per split."""
    index_path = prepare_for(config, source, progress)
    index = load_index(index_path)
    return [load_split(index, split, config.image_size, index_path.parent / "cache", progress)
            for split in splits]


def build_cache(config, progress: bool = True) -> dict:
    """Decode every split once at config.image_size (`casestudy data cache`); describe the stores."""
    index_path = prepare_for(config, progress=progress)
    index = load_index(index_path)
    cache_dir = index_path.parent / "cache"
    splits = {}
    for split in SPLITS:
        begin = time.perf_counter()
        images, _, _ = load_split(index, split, config.image_size, cache_dir, progress)
        splits[split] = {"images": len(images), "bytes": images.numel(),
                         "seconds": time.perf_counter() - begin}
    return {"folder": cache_dir / str(config.image_size), "splits": splits}


# ---------------------------------------------------------------- decoding and the cache

CACHE_VERSION = 2  # part of every cache key: 2 applies EXIF orientation


def rgb_from_bytes(raw: bytes) -> Image.Image:
    """Decode an image file's bytes to 8-bit RGB, upright as image viewers show it."""
    with Image.open(io.BytesIO(raw)) as img:
        if img.getexif().get(ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)  # rotate or mirror as the camera recorded
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            img = Image.fromarray((np.asarray(img, np.float64) / 256).clip(0, 255).astype(np.uint8))
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "PA") else img
        return img.convert("RGB")


def read_rgb(path: str) -> Image.Image:
    """Open any image (grey, palette, RGBA, 16-bit, CMYK) as 8-bit RGB, EXIF orientation applied.

    Only regular files are opened (scan.read_regular): a pipe or device raises OSError.
    """
    return rgb_from_bytes(read_regular(path))


def decode(path: str, size: int) -> np.ndarray:
    """Decode any image to RGB and resize it: (3, size, size) uint8."""
    img = read_rgb(path)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(img, np.uint8).transpose(2, 0, 1).copy()


def _decode_one(job):
    try:
        return decode(*job)
    except (OSError, ValueError) as err:  # changed since it was indexed (prepare re-checks every file)
        raise CaseStudyError(f"cannot decode {shown(job[0])} ({type(err).__name__}: {err}): it changed "
                             f"after it was indexed; run the command again") from None


def load_images(paths: list[str], size: int, progress: bool = True, workers: int = 0) -> np.ndarray:
    """Decode and resize images in parallel over all cores: (N, 3, size, size) uint8."""
    out = np.empty((len(paths), 3, size, size), np.uint8)
    jobs = [(p, size) for p in paths]
    for i, img in enumerate(parallel_map(_decode_one, jobs, f"decode {size}px", "img", progress, workers)):
        out[i] = img
    return out


def load_split(index: pd.DataFrame, split: str, size: int, cache_dir: Path | None = None,
               progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Return the images (N, 3, S, S) uint8, labels (N,) and paths of one split.

    With cache_dir, decoded images are stored once (.npy) and reused until the split's
    files (their paths and checksums) or the size change; the store is memory-mapped, so
    a process reads only the images it uses and processes share one copy in memory. A
    store that cannot be loaded (truncated, wrong shape) is decoded again. Labels always
    come from the index, never from the store.
    """
    rows = index[index.split == split] if split != "all" else index[index.split != ""]
    if rows.empty:
        raise CaseStudyError(f"the {split} split is empty: index more images")
    paths, labels = rows.path.tolist(), torch.tensor(rows.label.to_numpy(), dtype=torch.long)
    if cache_dir is None:
        return torch.from_numpy(load_images(paths, size, progress)), labels, paths
    names = stored_paths(rows.path, Path(cache_dir).parent).tolist()  # the dataset folder may move
    key = hashlib.sha256(json.dumps([CACHE_VERSION, size, names, rows.sha256.tolist()]).encode()).hexdigest()
    file = Path(cache_dir) / str(size) / f"{split}-{key[:16]}.npy"
    shape = (len(paths), 3, size, size)
    images = open_store(file, shape)
    if images is None:
        decoded = load_images(paths, size, progress)
        with writing(file, "the image cache"), atomic_write(file) as out:
            save_store(out, decoded)
        for stale in file.parent.glob(f"{split}-*.npy"):
            if stale != file:
                stale.unlink(missing_ok=True)
        images = open_store(file, shape)
        images = decoded if images is None else images
    return torch.from_numpy(images), labels, paths


def save_store(out, images: np.ndarray) -> None:
    """np.save through the file's own write, so a full disk raises OSError ENOSPC (numpy's
    tofile reports only "requested and written" byte counts)."""
    np.lib.format.write_array_header_1_0(out, np.lib.format.header_data_from_array_1_0(images))
    out.write(memoryview(np.ascontiguousarray(images)).cast("B"))


def open_store(file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Memory-map a cached split ("c": writes stay private); None when absent or damaged."""
    try:
        images = np.load(file, mmap_mode="c")
    except (OSError, ValueError, EOFError):
        return None
    return images if images.shape == shape and images.dtype == np.uint8 else None
