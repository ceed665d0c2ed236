"""The student edition: what students get (the exercises, the package, the book without the
exercises' solutions), written into a folder and checked to hold nothing of the instructors'.

    autograder student-edition OUT [--course DIR]

The course's solutions/ and tests/ stay behind; the book's sources lose their {solution}
blocks. Before OUT is written, every file of the edition is searched for every line of every
solution region, hidden-test region and model answer of the solution notebooks, and of the
hidden tests in solutions/hidden_tests/; one found is an error and nothing is written.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from autograder import GradingError, hidden

INCLUDED = ["casestudy", "autograder", "exercises", "book", "README.md", "LICENSE", "pyproject.toml",
            "constraints.txt", "data_manifest.yaml"]
SKIPPED = {"__pycache__", ".ipynb_checkpoints", "_build", "node_modules", "data", "runs", ".jupyter_cache"}
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
SOLUTION_BLOCK = re.compile(r"^(`{3,}|~{3,})\{solution\}.*?^\1[ \t]*\n", re.S | re.M)
PACKAGES = {"casestudy", "autograder"}
MIN_SECRET = 30  # characters: shorter lines (`return splits`) are no secret


def secrets(solutions: Path) -> dict[str, set[str]]:
    """The lines of the solution notebooks that students must not get: "solution" (solution
    regions) and "hidden" (hidden tests, in the notebooks or in hidden_tests/, and model
    answers), less the lines the notebooks also have outside them (those a release keeps)."""
    found = {"solution": set(), "hidden": set()}
    everywhere: set[str] = set()  # lines some notebook keeps in its release
    for notebook in sorted(solutions.glob("*/*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        regions, kept = [], []
        for cell in cells:
            text, flags = "".join(cell["source"]), cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] == "markdown" and flags.get("solution") and not REGION.search(text):
                regions.append(("hidden", text))  # a model answer, all of it
                continue
            secret_kind = "hidden" if cell["cell_type"] == "markdown" else "solution"  # a model answer
            regions += [(secret_kind if m.group(1) == "SOLUTION" else "hidden", m.group(2))
                        for m in REGION.finditer(text)]  # around it: a template the release keeps
            kept.append(REGION.sub("", text))
        public = {line.strip() for text in kept for line in text.splitlines()}
        everywhere |= public
        for kind, part in regions:
            found[kind] |= {line.strip() for line in part.splitlines() if is_secret(line, public)}
    shipped = everywhere | package_lines()  # a hidden test may share a line with the package
    for path in sorted((solutions / hidden.FOLDER).glob("*.py")):
        lines = path.read_text().splitlines()
        found["hidden"] |= {line.strip() for line in lines if is_secret(line, shipped)}
    return found


def package_lines() -> set[str]:
    """Every line of the packages students get (public by definition)."""
    root = Path(__file__).resolve().parents[1]
    return {line.strip() for name in PACKAGES for path in (root / name).rglob("*.py")
            for line in path.read_text().splitlines()}


def is_secret(line: str, public: set[str]) -> bool:
    """A line long enough to give something away, not an import, and not kept by the release."""
    line = line.strip()
    return len(line) >= MIN_SECRET and not re.match(r"(from \S+ )?import ", line) and line not in public


def leaks(folder: Path, secret: dict[str, set[str]]) -> list[str]:
    """Where in folder a secret line appears ("path: line"), or a book page keeps a {solution}.

    Solution lines are not searched in the package itself: it is the reference implementation
    the course ships, and some of its lines are the answers' lines. Hidden tests and model
    answers are searched everywhere.
    """
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if path.suffix == ".ipynb":  # search the cells' text, not its JSON escaping
            text = notebook_text(text)
        relative = path.relative_to(folder)
        searched = secret["hidden"] | (set() if relative.parts[0] in PACKAGES else secret["solution"])
        hits = [line for line in searched if line in text]
        if relative.parts[0] == "book" and "{solution}" in text:
            hits.append("{solution}")
        found += [f"{relative}: {hit[:60]}" for hit in hits]
    return found


def notebook_text(raw: str) -> str:
    """Every cell's source and text output of a notebook file, as plain text."""
    try:
        cells = json.loads(raw).get("cells", [])
    except (ValueError, AttributeError):
        return raw
    return "\n".join("".join(cell.get("source", "")) + "".join(
        "".join(out.get("text", "")) for out in cell.get("outputs", [])) for cell in cells)


def copy_tree(source: Path, target: Path) -> None:
    def ignored(folder, names):
        return [n for n in names if n in SKIPPED or n.endswith(".egg-info")]

    shutil.copytree(source, target, symlinks=False, ignore=ignored)


def strip_solutions(book: Path) -> None:
    """Remove every {solution} block from the book's MyST pages."""
    for page in book.glob("*.md"):
        page.write_text(SOLUTION_BLOCK.sub("", page.read_text()))


def export_student_edition(course_root: Path, solutions: Path, out: Path) -> Path:
    """Write the student edition into out (a new folder); refuse when anything would leak."""
    out = Path(out).resolve()
    if out.exists():
        raise GradingError(f"{out} exists: give a new folder for the student edition")
    repo = Path(course_root)
    missing = [name for name in INCLUDED if not (repo / name).exists()]
    if missing:
        raise GradingError(f"{repo} lacks {', '.join(missing)}: run this from the course's repository")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        stage = Path(tmp) / "edition"
        stage.mkdir()
        for name in INCLUDED:
            source = repo / name
            copy_tree(source, stage / name) if source.is_dir() else shutil.copy2(source, stage / name)
        strip_solutions(stage / "book")
        found = leaks(stage, secrets(solutions))
        if found:
            raise GradingError(f"the student edition would leak {len(found)} solution or hidden-test "
                               f"line(s), e.g. {found[0]}; nothing was written")
        stage.rename(out)
    return out
