"""Get the data: index a real/fake folder, split it, and decode it once into a cache.

Book chapter 01_data. Labels are explicit, real = 0 and fake = 1, and never come from
sorted folder names (torchvision's ImageFolder would number "fake" 0 and "real" 1).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError

from casestudy import CaseStudyError
from casestudy.files import atomic_write, parallel_map, write_csv

LABELS = {"real": 0, "fake": 1}
CLASS_NAMES = ["real", "fake"]  # index = label
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
SPLITS = {"train": 0.70, "val": 0.15, "test": 0.15}
COLUMNS = ["path", "label", "split", "sha256", "width", "height", "status"]
LIST_SKIPPED = 20  # skipped files the CLI and report.md name one by one; the rest are counted


def dataset_name(data: str) -> str:
    """Name a dataset after its folder: "synthetic", "faces-140k-sample", ..."""
    return "synthetic" if data == "synthetic" else Path(data).resolve().name


def dataset_dir(data: str, data_root: str = "data") -> Path:
    return Path(data_root) / dataset_name(data)


def is_synthetic(data: str) -> bool:
    return data == "synthetic"


# ---------------------------------------------------------------- indexing


def index_folder(root: str | Path, seed: int = 0, max_per_class: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """List every file under root/real and root/fake with its label, checksum, size and split.

    Files that are not usable images stay in the index with the reason in `status` and an
    empty split, so that they are reported and never used: every file found is either
    used or skipped for a stated reason (see tally).
    """
    root = Path(root)
    if not root.is_dir():
        raise CaseStudyError(f"data folder {root} does not exist: give a folder with real/ and fake/")
    root = root.resolve()
    rows = []
    for name, label in LABELS.items():
        folder = root / name
        if not folder.is_dir():
            raise CaseStudyError(f"{root} has no {name}/ folder: a dataset needs real/ and fake/ below it")
        files = find_files(folder)
        infos = parallel_map(inspect_file, files, f"index {name}", "file", progress)
        rows += [{"path": str(path), "label": label, **info} for path, info in zip(files, infos)]
    index = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "split"])
    for name, label in LABELS.items():
        if not ((index.label == label) & (index.status == "ok")).any():
            raise CaseStudyError(f"{root / name} holds no readable image (png, jpg, jpeg, webp)")
    index = mark_conflicts(index)
    if max_per_class:
        index = subsample(index, max_per_class, seed)
    return assign_splits(index, seed)


def find_files(folder: Path) -> list[Path]:
    """Every file and symbolic link below folder, sorted.

    Links to folders are listed but not followed (pathlib's rglob does not), so a link
    that points back up the tree cannot make the search loop.
    """
    return sorted(p for p in Path(folder).rglob("*") if p.is_symlink() or p.is_file())


def inspect_file(path: Path) -> dict:
    """Return sha256, width, height and status: "ok", or "excluded: " and why.

    A file is ok when it decodes completely to RGB as training will read it (read_rgb), so
    truncated files fail here, not during training. Pillow refuses images of more than
    2 * Image.MAX_IMAGE_PIXELS pixels (a decompression bomb) before decoding them.
    """
    info = {"sha256": "", "width": 0, "height": 0, "status": "ok"}
    if path.is_symlink() and path.is_dir():
        return {**info, "status": "excluded: link to a folder (not followed)"}
    if path.is_symlink() and not path.exists():
        return {**info, "status": "excluded: broken symbolic link"}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return {**info, "status": f"excluded: not an image file ({path.suffix or 'no suffix'})"}
    try:
        data = path.read_bytes()
        info["sha256"] = hashlib.sha256(data).hexdigest()
        if not data:
            return {**info, "status": "excluded: empty file"}
        info["width"], info["height"] = read_rgb(path).size
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
    """Return (path, why) of every skipped file: problems first, those left out by max_per_class last."""
    rows = index[index.split == ""]
    unsampled = rows.status.str.startswith("excluded: not sampled").to_numpy()
    return [(row.path, row.status.removeprefix("excluded: "))
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


def subsample(index: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Keep at most `per_class` usable images of each class, chosen with the seed; mark the rest."""
    index = index.copy()
    for _, group in index[index.status == "ok"].groupby("label"):
        chosen = group.sample(n=min(per_class, len(group)), random_state=seed)
        index.loc[group.index.difference(chosen.index), "status"] = (
            f"excluded: not sampled (max_per_class {per_class})")
    return index


def assign_splits(index: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Split usable images 70/15/15 per class (stratified, seeded).

    Identical files (same sha256) always land in the same split, so no bytes leak
    between train, val and test.
    """
    index = index.copy()
    index["split"] = ""
    rng = np.random.default_rng(seed)
    for label in LABELS.values():
        hashes = np.array(sorted(set(index.sha256[(index.label == label) & (index.status == "ok")])))
        hashes = hashes[rng.permutation(len(hashes))]
        n_train = round(SPLITS["train"] * len(hashes))
        n_val = round(SPLITS["val"] * len(hashes))
        parts = {"train": hashes[:n_train], "val": hashes[n_train : n_train + n_val],
                 "test": hashes[n_train + n_val :]}
        for split, part in parts.items():
            index.loc[index.sha256.isin(set(part)) & (index.label == label)
                      & (index.status == "ok"), "split"] = split
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


def save_index(index: pd.DataFrame, path: Path) -> Path:
    """Write index.csv atomically."""
    return write_csv(index, path)


def load_index(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise CaseStudyError(f"no index at {path}: run `casestudy data index --data FOLDER` first")
    index = pd.read_csv(path, dtype={"split": str, "sha256": str, "status": str}, keep_default_na=False)
    missing = set(COLUMNS) - set(index.columns)
    if missing:
        raise CaseStudyError(f"{path} lacks column(s) {', '.join(sorted(missing))}: rebuild it")
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
    index_path = out / "index.csv"
    if is_synthetic(data):
        from casestudy.synthetic import make_synthetic

        folder = out / "images"
        stamp = out / f"made-{seed}-{synthetic_per_class}-{synthetic_size}"
        if not stamp.exists():  # other settings: make the set afresh, no stale images
            shutil.rmtree(folder, ignore_errors=True)
            for old in out.glob("made-*"):
                old.unlink()
            make_synthetic(folder, synthetic_per_class, synthetic_size, seed, progress=progress)
            stamp.touch()
            index_path.unlink(missing_ok=True)
        source = folder
    else:
        source = Path(data)
    # the index is rebuilt when its settings or the folder's files change
    settings = f"{Path(source).resolve()} seed={seed} max_per_class={max_per_class} {listing(source)}"
    settings_file = out / "index-settings.txt"
    if not index_path.exists() or not settings_file.exists() or settings_file.read_text() != settings:
        index = index_folder(source, seed=seed, max_per_class=max_per_class, progress=progress)
        save_index(index, index_path)
        settings_file.write_text(settings)
    return index_path


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


def listing(root: Path) -> str:
    """Summarise the files under root/real and root/fake: their count and newest change."""
    files = [p for name in LABELS for p in find_files(Path(root) / name)]
    newest = max(((p.stat() if p.exists() else p.lstat()).st_mtime_ns for p in files), default=0)
    return f"files={len(files)} newest={newest}"


# ---------------------------------------------------------------- decoding and the cache


def read_rgb(path: str) -> Image.Image:
    """Open any image (grey, palette, RGBA, 16-bit, CMYK) and convert it to 8-bit RGB."""
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            img = Image.fromarray((np.asarray(img, np.float64) / 256).clip(0, 255).astype(np.uint8))
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "PA") else img
        return img.convert("RGB")


def decode(path: str, size: int) -> np.ndarray:
    """Decode any image to RGB and resize it: (3, size, size) uint8."""
    img = read_rgb(path)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(img, np.uint8).transpose(2, 0, 1).copy()


def _decode_one(job):
    return decode(*job)


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
    files (their checksums) or the size change; the store is memory-mapped, so a
    process reads only the images it uses and processes share one copy in memory.
    """
    rows = index[index.split == split] if split != "all" else index[index.split != ""]
    if rows.empty:
        raise CaseStudyError(f"the {split} split is empty: index more images")
    paths, labels = rows.path.tolist(), torch.tensor(rows.label.to_numpy(), dtype=torch.long)
    if cache_dir is None:
        return torch.from_numpy(load_images(paths, size, progress)), labels, paths
    key = hashlib.sha256(("\n".join(paths + rows.sha256.tolist()) + f"\n{size}").encode()).hexdigest()
    file = Path(cache_dir) / str(size) / f"{split}-{key[:16]}.npy"
    if not file.exists():
        images = load_images(paths, size, progress)
        file.parent.mkdir(parents=True, exist_ok=True)
        for stale in file.parent.glob(f"{split}-*.npy"):
            stale.unlink()
        with atomic_write(file) as out:
            np.save(out, images)
    return torch.from_numpy(np.load(file, mmap_mode="c")), labels, paths  # "c": writes stay private
