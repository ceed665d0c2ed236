"""Build the book into book/_build/html: MathJax from npm when needed, then Jupyter Book with
warnings as errors. `make book` runs this; so does tests/test_book.py when no build is given.

    python book/build.py

The pages execute at build time, on the data CASESTUDY_BOOK_DATA names (default: synthetic);
their outputs are cached in book/_build/.jupyter_cache, which is cleared when that choice changes.
The public edition hides the exercises' solutions; CASESTUDY_BOOK_EDITION=instructor shows them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
BUILD = BOOK / "_build"
HTML = BUILD / "html"
MATHJAX = BOOK / "node_modules" / "mathjax" / "es5" / "tex-chtml.js"
DATA_STAMP = BUILD / "data.txt"  # the CASESTUDY_BOOK_DATA the cached outputs were made with
EDITION_VARIABLE = "CASESTUDY_BOOK_EDITION"  # public (no solutions, the default) or instructor


def install_mathjax() -> None:
    """`npm ci` into book/node_modules when MathJax is absent or package-lock.json is newer."""
    lock = BOOK / "package-lock.json"
    if MATHJAX.is_file() and MATHJAX.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BOOK, check=True)
    MATHJAX.touch()


def keep_cache_for(data: str) -> None:
    """Clear the build and its execution cache if they were made from other data."""
    if DATA_STAMP.is_file() and DATA_STAMP.read_text().strip() != data:
        print(f"CASESTUDY_BOOK_DATA is now {data!r}: every page runs again", flush=True)
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True, exist_ok=True)
    DATA_STAMP.write_text(data + "\n")


def edition_config() -> list[str]:
    """`--config FILE` for the instructors' edition (solutions shown); nothing for the public one."""
    edition = os.environ.get(EDITION_VARIABLE, "").strip() or "public"
    if edition not in ("public", "instructor"):
        sys.exit(f"{EDITION_VARIABLE}={edition}: choose public (the default) or instructor")
    if edition == "public":
        return []
    config = BUILD / "_config-instructor.yml"
    config.write_text((BOOK / "_config.yml").read_text().replace("hide_solutions: true",
                                                                  "hide_solutions: false"))
    return ["--config", str(config)]


def build() -> Path:
    """Build the HTML site; raise CalledProcessError on any warning or failed page."""
    install_mathjax()
    keep_cache_for(os.environ.get("CASESTUDY_BOOK_DATA", "").strip() or "synthetic")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    started = time.perf_counter()
    subprocess.run([str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(BOOK),
                    "--warningiserror", "--keep-going", *edition_config()], check=True)
    print(f"book built in {time.perf_counter() - started:.0f} s: {HTML / 'index.html'}")
    return HTML


if __name__ == "__main__":
    try:
        build()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
