"""What casestudy/download.py and casestudy/sources.py share: a source's outcomes and their wording.

Book chapter 01_data. sources.py imports from here, download.py from here and from sources.py:
the imports go one way. Nothing here knows about a particular source.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
import zlib
from pathlib import Path

CHUNK = 1 << 20  # bytes copied at a time
UNREADABLE_ZIP = (zipfile.BadZipFile, zlib.error, EOFError)  # a bad CRC, bad deflate data, a cut member


class Unavailable(Exception):
    """This source could not give this item (message names both); the next source is tried."""


class Blocked(Unavailable):
    """This source refuses every item for now (a quota or sign-in page): skip it for this run."""


class Refused(Unavailable):
    """The item arrived but is unsafe to use (an archive member would escape): no retry."""


def page_problem(text: str, name: str, source: str) -> Unavailable:
    """Say why an HTML page came instead of `name`: Drive's quota or sign-in page, or another page."""
    low = text.lower()
    if "quota" in low or "too many users" in low:
        return Blocked(f"{source} sent Google Drive's quota page instead of {name} (\"too many users have "
                       f"viewed or downloaded this file recently\"): wait a day and run the same command "
                       f"again (it resumes), or use --source kaggle:OWNER/NAME, --source URL or --from PATH")
    if "sign in" in low or "accounts.google.com" in low or "servicelogin" in low:
        return Blocked(f"{source} sent a sign-in page instead of {name}: the file is not shared publicly "
                       f"and signing in is not supported; use --source kaggle:OWNER/NAME, --source URL "
                       f"or --from PATH")
    return Unavailable(f"{source} sent an HTML page instead of {name}; check the source's address")


def reason(err: BaseException) -> str:
    """An exception as a short single line, for messages."""
    return (" ".join(str(err).split()) or type(err).__name__)[:160]


@contextlib.contextmanager
def staging(work: Path, item):
    """A fresh folder under work/partial for an archive's images; whatever is left in it is removed."""
    folder = work / "partial" / f"{item.path}.extract"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # gone once moved; else nothing half-done stays


def move_into(folder: Path, target: Path) -> None:
    """Put a fully checked folder at `target`: a rename, or file by file over an incomplete one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(folder, target)
        return
    for path in sorted(folder.rglob("*")):  # an earlier, incomplete copy: complete it in place
        if path.is_file():
            out = target / path.relative_to(folder)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, out)
    shutil.rmtree(folder)
