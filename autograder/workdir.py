"""Move files into and out of a student's sandbox without ever following the student.

The kernel runs in a scratch folder of its own; afterwards only regular files (no symlink, hard
link, FIFO, socket or device) are copied back, each opened without following links and checked
to be the file that was listed, within a total size and a file-count quota. Notebooks and pages a
browser would run (html, svg, js) never leave: they would be graded or shown to the instructor.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

INCIDENTS = ".autograder-incidents.json"  # what the grader noted, beside the graded notebook
VERDICTS = ".autograder-verdicts.json"  # the hidden tests' verdicts, beside the graded notebook
NEVER_COPIED = (INCIDENTS, VERDICTS, "*.ipynb", "*.html", "*.htm", "*.xhtml", "*.svg", "*.js", "*.mht",
                "*.mhtml")
MAX_DEPTH = 16
CHUNK = 2**20


@dataclass
class Copied:
    """What a copy did: files and bytes kept, and what it refused."""

    files: int = 0
    size: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> how many

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def notes(self) -> list[str]:
        return [f"{n} {reason} not copied" for reason, n in self.refused.items()]


def copy_plain(src: Path, dst: Path, max_bytes: int, max_files: int,
               ignore: list[str] | tuple[str, ...] = (), leave: tuple[str, ...] = ()) -> Copied:
    """Copy the regular files below src into dst (which must be ours), within the quotas; names
    matching ignore are skipped anywhere, the paths in leave (relative to src, "a/b") only there."""
    done = Copied()
    skip = (*NEVER_COPIED, *ignore)
    _walk(src, dst, 0, done, max_bytes, max_files, skip, frozenset(leave))
    return done


def _walk(src: Path, dst: Path, depth: int, done: Copied, max_bytes: int, max_files: int,
          skip: tuple[str, ...], leave: frozenset[str] = frozenset(), rel: str = "") -> None:
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError:
        done.refuse("unreadable folders")
        return
    for entry in entries:
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in skip) or rel + entry.name in leave:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            done.refuse("unreadable files")
            continue
        if stat.S_ISDIR(info.st_mode):
            if depth >= MAX_DEPTH:
                done.refuse("folders nested too deep")
            else:
                _walk(Path(entry.path), dst / entry.name, depth + 1, done, max_bytes, max_files, skip, leave,
                      f"{rel}{entry.name}/")
        elif stat.S_ISLNK(info.st_mode):
            done.refuse("symlinks")
        elif not stat.S_ISREG(info.st_mode):
            done.refuse("special files (FIFO, socket or device)")
        elif info.st_nlink != 1:
            done.refuse("hard links")
        elif done.files >= max_files:
            done.refuse("files over the file-count quota")
        elif done.size + info.st_size > max_bytes:
            done.refuse("files over the size quota")
        elif _copy_file(Path(entry.path), info, dst / entry.name):
            done.files += 1
            done.size += info.st_size
        else:
            done.refuse("files that changed while copied")


def _copy_file(src: Path, listed: os.stat_result, dst: Path) -> bool:
    """Copy one file opened without following links; False unless it is still the file listed."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (listed.st_dev, listed.st_ino)
                or info.st_nlink != 1):
            return False
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_symlink() or dst.is_file():
                dst.unlink()  # an older copy of ours
            out_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError:
            return False
        with os.fdopen(out_fd, "wb") as out:
            left = listed.st_size  # never more than was counted against the quota
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                out.write(chunk)
                left -= len(chunk)
    return True
