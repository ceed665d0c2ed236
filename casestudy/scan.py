"""List a dataset's files safely, tell when one changed, and read it without surprises.

The index (data.py) stats every file on each run and re-reads only those whose signature
changed. Pipes, sockets and devices are recognised from their stat, never opened (reading
a pipe blocks for ever). Any file name a file system allows survives the trip through
index.csv: names that are not valid UTF-8 or hold control characters (newline, carriage
return) are stored percent-encoded behind a marker.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

ESCAPED = "escaped:"  # marks an encoded path; no absolute path starts with it
PLAIN_ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def find_files(folder: Path) -> list[Path]:
    """Every entry below folder that is not a folder (files, links, pipes, ...), sorted.

    Links to folders are listed, not followed, so a link that points back up the tree
    cannot make the search loop. A subfolder that cannot be listed is itself listed, so
    that it is reported (file_problem) rather than silently missed. An unreadable
    `folder` raises OSError.
    """
    return [Path(path) for path in walk(os.fspath(folder))]


def walk(folder: str) -> list[str]:
    """find_files as sorted strings (20 000 files: pathlib would take most of the time)."""
    found = []

    def visit(path: str) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    try:
                        visit(entry.path)
                    except OSError:
                        found.append(entry.path)
                else:
                    found.append(entry.path)

    visit(folder)
    return sorted(found)


def signature(path: str | Path) -> str | None:
    """What changes when a file is rewritten, replaced, moved or relinked, read without opening it.

    "type size mtime_ns ctime_ns inode" of the file (of a link's target), preceded by
    "link inode ctime_ns" for a link; the ctime moves on every write, even when the
    mtime is put back (cp -p, rsync -t, unzip). None when the file cannot be stat'ed.
    """
    try:
        link = os.lstat(path)
        own = f"link {link.st_ino} {link.st_ctime_ns} " if stat.S_ISLNK(link.st_mode) else ""
        target = os.stat(path) if own else link
    except OSError:
        return None
    return (f"{own}{stat.S_IFMT(target.st_mode)} {target.st_size} {target.st_mtime_ns} "
            f"{target.st_ctime_ns} {target.st_ino}")


def last_change_ns(sig: str) -> int:
    """The later of the mtime and ctime recorded in a signature."""
    *_, mtime, ctime, _ = sig.split()
    return max(int(mtime), int(ctime))


SPECIAL = {stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket", stat.S_IFCHR: "device",
           stat.S_IFBLK: "device"}


def file_problem(path: Path) -> str | None:
    """Why path is not a regular file that can be read, found from its stat alone; None when it is."""
    try:
        own = os.lstat(path)
    except OSError as err:
        return f"cannot be looked at ({describe_error(err)})"
    is_link = stat.S_ISLNK(own.st_mode)
    try:
        mode = os.stat(path).st_mode if is_link else own.st_mode
    except OSError:
        return "broken symbolic link"
    if stat.S_ISDIR(mode):
        return "link to a folder (not followed)" if is_link else "unreadable folder (not listed)"
    if stat.S_IFMT(mode) in SPECIAL:
        kind = SPECIAL[stat.S_IFMT(mode)]
        return f"{'link to a ' if is_link else ''}{kind} (not read)"
    return None


def read_regular(path: str | Path) -> bytes:
    """Read a regular file whole; a pipe, socket or device raises OSError without blocking."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({SPECIAL.get(stat.S_IFMT(mode), 'folder')})",
                          str(path))
        with os.fdopen(handle, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(handle)


def describe_error(err: OSError) -> str:
    """"PermissionError: Permission denied", without the path (messages name it themselves)."""
    return f"{type(err).__name__}: {err.strerror or err}"


# ---------------------------------------------------------------- names in index.csv and messages


def encode_path(path: str) -> str:
    """A path as one line of valid UTF-8 text; decode_path gives it back exactly.

    Printable names are kept as they are; the others become "escaped:" and their bytes
    (os.fsencode) percent-encoded, e.g. b"/d/real/a\\xff\\n.png" -> "escaped:/d/real/a%FF%0A.png".
    """
    if path.isprintable() and not path.startswith(ESCAPED):  # undecodable bytes are not printable
        return path
    return ESCAPED + quote(os.fsencode(path), safe=PLAIN_ASCII)


def decode_path(text: str) -> str:
    return os.fsdecode(unquote_to_bytes(text.removeprefix(ESCAPED))) if text.startswith(ESCAPED) else text


def shown(path: str | Path) -> str:
    """A path as one printable line for messages: control characters and undecodable bytes escaped."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else ascii(c)[1:-1] for c in text)
