"""Write files safely and map work over cores: the plumbing every stage shares.

Atomic writes (never a half-written file), CSV and JSON through them, and a process pool
with a progress bar. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb"):
    """Open a temporary file beside path; once written and on disk, rename it to path.

    The temporary name is unique to this writer, so two processes never share one, and the
    data is fsynced before the rename: a kill or a crash at any moment leaves the old file
    or the new one, never half of one. On an error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"newline": ""})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in folder durable; a no-op where folders cannot be opened (Windows)."""
    if os.name == "nt":
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write a table atomically (atomic_write: never a half-written file).

    A "path" column is written with scan.encode_path, so that any file name a file system
    allows stays one line of valid UTF-8 (read it back with read_csv).
    """
    from casestudy.scan import encode_path

    if "path" in table.columns:
        table = table.assign(path=table.path.astype(str).map(encode_path))
    with atomic_write(path, "w") as file:
        table.to_csv(file, index=False)
    return Path(path)


def read_csv(path: Path, **options) -> pd.DataFrame:
    """Read a table written by write_csv, its "path" column decoded back to the real names."""
    from casestudy.scan import decode_path

    table = pd.read_csv(path, **options)
    if "path" in table.columns:
        table["path"] = table.path.astype(str).map(decode_path)
    return table


def write_json(values: dict, path: Path) -> Path:
    """Write JSON atomically, like write_csv."""
    with atomic_write(path, "w") as file:
        file.write(json.dumps(values, indent=1))
    return Path(path)


def write_text(text: str, path: Path) -> Path:
    """Write text atomically, like write_csv."""
    with atomic_write(path, "w") as file:
        file.write(text)
    return Path(path)


def parallel_map(fn, items: list, desc: str, unit: str, progress: bool = True, workers: int = 0):
    """Yield fn(item) for every item, in order, computed over all cores, with a progress bar."""
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        if workers == 1 or len(items) < 64:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(fn, items, chunksize=16):
                yield result
                bar.update()
