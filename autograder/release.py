"""Regenerate exercises/ from solutions/ with nbgrader, after checking every solution."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from autograder import GradingError, hidden
from autograder.colab import CONFIG, add_setup, release_setup
from autograder.course import EXERCISES, SOLUTIONS, api, assignments, current, first_line, nbgrader_config
from autograder.notebooks import execute, failed_lines, read_notebook


def check_solution(name: str, timeout: int, solutions: Path = SOLUTIONS) -> float:
    """Run a solution notebook in a scratch folder; raise unless every cell, not only the tests,
    runs without an error or a timeout, and every hidden test passes."""
    nb = read_notebook(solutions / name / f"{name}.ipynb")
    verdicts: list[hidden.Verdict] = []
    with tempfile.TemporaryDirectory(prefix=f"check-{name}-") as folder:
        seconds = execute(nb, Path(folder), timeout, hidden.load(solutions, name), verdicts)
    failed = failed_lines(nb) + [f"hidden test {v.line()}" for v in verdicts if not v.passed]
    if failed:
        path = solutions / name / f"{name}.ipynb"
        raise GradingError(f"solution {name} does not run clean, so nothing was released: "
                           f"{'; '.join(failed)} ({path}; fix it and release again)")
    return seconds


def generate(names: list[str], out: Path, solutions: Path = SOLUTIONS) -> None:
    """Write the student version of each assignment into out/<name>/ (replacing it), each notebook
    with the set-up cell that installs the package on Colab and Kaggle (autograder/colab.py)."""
    setup = release_setup(current().root)
    if setup is None:
        print(f"no repository.url in {current().root / CONFIG}: the exercises get no Colab set-up cell")
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        root = Path(tmp)
        (root / "solutions").symlink_to(solutions.resolve(), target_is_directory=True)
        grader = api(nbgrader_config(root, source="solutions", release="exercises"))
        for name in names:
            result = grader.generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise GradingError(f"nbgrader could not generate {name}: "
                                   f"{first_line(result.get('log'), result.get('error'))}")
            if setup:
                add_setup(root / "exercises" / name / f"{name}.ipynb", *setup)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:  # all generated: only now replace the old release
            staged = out / f".{name}.new"
            shutil.rmtree(staged, ignore_errors=True)
            shutil.copytree(root / "exercises" / name, staged)
            shutil.rmtree(out / name, ignore_errors=True)
            staged.rename(out / name)


def release(out: Path = EXERCISES, check: bool = True, timeout: int = 300,
            solutions: Path = SOLUTIONS, only: list[str] | None = None) -> list[str]:
    """Check each solution against its own tests, then regenerate the exercises; return names."""
    names = only or assignments(solutions)
    for name in names:
        if check:
            seconds = check_solution(name, timeout, solutions)
            print(f"{name}: every cell of the solution runs clean ({seconds:.0f} s)", flush=True)
    generate(names, out, solutions)
    print(f"released {len(names)} assignment(s) into {out}/")
    return names
