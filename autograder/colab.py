"""Colab and Kaggle: the set-up cell every released exercise notebook carries, and the "Open in
Colab" links of README.md and book/intro.md, all built from the one repository setting
(`repository.url` in book/_config.yml).

`python -m autograder.colab` rewrites the links between the LINKS markers of both files.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SETUP_ID = "setup-colab"  # the set-up cell's grade_id and cell id
CONFIG = Path("book") / "_config.yml"
LINKED = ("README.md", Path("book") / "intro.md")
LINKS = ("<!-- colab-links: start (python -m autograder.colab writes this block) -->",
         "<!-- colab-links: end -->")
PINNED = re.compile(r'^COURSE = \{.*\}\n', re.M)  # the one line of the cell that differs per release

# The cell's text: plain Python that runs on any platform. Under grading, or where the package is
# installed, it only says so; elsewhere it pip-installs casestudy at the course's tag, with the
# platform's own torch and torchvision required as they are, so that pip never replaces them.
TEMPLATE = '''\
# Set-up (read-only) for Colab and Kaggle. Where the course's package `casestudy` is installed
# (your machine, the course's JupyterHub, the autograder) this cell does nothing. Elsewhere it
# installs it from the course repository, keeping the platform's torch (Kaggle: turn Internet on).
COURSE = {"version": "@VERSION@", "repository": "@REPOSITORY@"}


def _install_command(course, have):
    """pip's command: casestudy at the course's tag, the torch and torchvision here kept as they are."""
    import sys

    command = [sys.executable, "-m", "pip", "install", "--quiet",
               f"casestudy @ git+{course['repository']}@v{course['version']}"]
    for name in ("torch", "torchvision"):
        if have(name):
            command.append(f"{name}=={have(name)}")
    return command


def _set_up(course, importable, have, run):
    """Return what was done: nothing where casestudy imports, else the pip command run."""
    import os

    if importable():
        import casestudy

        print(f"casestudy {casestudy.__version__} is installed: nothing to set up")
        return None
    if os.environ.get("CASESTUDY_GRADING"):
        raise RuntimeError("casestudy is not installed; grading never installs it")
    command = _install_command(course, have)
    print("installing:", *command[4:])
    run(command, check=True)
    return command


def _importable():
    import importlib

    importlib.invalidate_caches()  # a package pip just installed is found
    try:
        importlib.import_module("casestudy")
    except ImportError:
        return False
    return True


def _have(name):
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":  # the notebook's kernel runs the cell as __main__
    import subprocess

    if _set_up(COURSE, _importable, _have, subprocess.run):
        import casestudy

        print(f"installed casestudy {casestudy.__version__} from {COURSE['repository']}")
'''


def read_settings(root: Path) -> dict:
    """book/_config.yml's repository settings under root ({} when there is none)."""
    import yaml

    path = root / CONFIG
    if not path.is_file():
        return {}
    repository = (yaml.safe_load(path.read_text()) or {}).get("repository") or {}
    return repository if isinstance(repository, dict) else {}


def release_setup(root: Path) -> tuple[str, str] | None:
    """(version, repository) for the set-up cells of a release of the course at root, or None
    where its book/_config.yml names no repository."""
    url = read_settings(root).get("url")
    return (course_version(), str(url)) if url else None


def course_version() -> str:
    """The version of the casestudy package (pyproject's [project] version), as installed."""
    import importlib.metadata

    try:
        return importlib.metadata.version("casestudy")
    except importlib.metadata.PackageNotFoundError:  # on the path without being installed
        import casestudy

        return casestudy.__version__


def setup_source(version: str, repository: str) -> str:
    """The set-up cell's text for a release of version from repository."""
    return TEMPLATE.replace("@VERSION@", version).replace("@REPOSITORY@", repository.rstrip("/"))


def setup_cell(version: str, repository: str):
    """The set-up cell: read-only and ungraded, like the notebooks' given cells."""
    import nbformat
    from nbgrader.utils import compute_checksum

    cell = nbformat.v4.new_code_cell(setup_source(version, repository), id=SETUP_ID)
    cell.metadata = {"deletable": False, "editable": False, "nbgrader": {
        "cell_type": "code", "grade": False, "grade_id": SETUP_ID, "locked": True,
        "schema_version": 3, "solution": False, "task": False}}
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    return cell


def is_setup(cell) -> bool:
    """A set-up cell as released (of any version or repository): grading drops it. One a student
    edited is theirs, and is kept as their own cell."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if not isinstance(meta, dict) or meta.get("grade_id") != SETUP_ID:
        return False
    source = cell.get("source", "")
    source = "".join(map(str, source)) if isinstance(source, list) else str(source)
    return PINNED.sub("", source) == PINNED.sub("", TEMPLATE)


def add_setup(path: Path, version: str, repository: str) -> None:
    """Put the set-up cell into a released notebook: after its title cell, else first."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != SETUP_ID]
    first = nb.cells[0] if nb.cells else None
    at = 1 if first is not None and first.cell_type == "markdown" and first.source.startswith("#") else 0
    nb.cells.insert(at, setup_cell(version, repository))
    nbformat.write(nb, path)


# ---------------------------------------------------------------- the "Open in Colab" links


def github(url: str) -> str:
    """owner/name of a GitHub repository URL (a ValueError for any other address)."""
    found = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url or "")
    if not found:
        raise ValueError(f"repository.url {url!r} in {CONFIG} is no https://github.com/OWNER/NAME")
    return f"{found[1]}/{found[2]}"


def colab_url(repository: str, branch: str, notebook: str) -> str:
    """Colab's address of a notebook (a path in the repository) on branch."""
    return f"https://colab.research.google.com/github/{github(repository)}/blob/{branch}/{notebook}"


def links_block(root: Path) -> str:
    """The marked block: one "Open in Colab" link per exercise notebook under root/exercises."""
    settings = read_settings(root)
    repository, branch = settings.get("url", ""), settings.get("branch", "main")
    notebooks = sorted(p.relative_to(root).as_posix() for p in (root / "exercises").glob("*/*.ipynb")
                       if p.stem == p.parent.name)
    rows = [f"| `{Path(n).stem}` | [Open in Colab]({colab_url(repository, branch, n)}) |" for n in notebooks]
    return "\n".join([LINKS[0], "", "| exercise | run it in Colab |", "| --- | --- |", *rows, "",
                      LINKS[1]])


def write_links(root: Path) -> list[Path]:
    """Rewrite the marked block of README.md and book/intro.md; return the files changed."""
    block = links_block(root)
    changed = []
    for name in LINKED:
        path = root / name
        text = path.read_text()
        start, end = text.find(LINKS[0]), text.find(LINKS[1])
        if start < 0 or end < start:
            raise ValueError(f"{path} has no block between {LINKS[0]} and {LINKS[1]}")
        new = text[:start] + block + text[end + len(LINKS[1]):]
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path.cwd()
    try:
        changed = write_links(root)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Colab links: {', '.join(map(str, changed)) or 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
