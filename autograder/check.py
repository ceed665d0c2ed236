"""What a student runs before submitting: the visible tests' score of one notebook."""

from __future__ import annotations

from pathlib import Path

from nbgrader.utils import compute_checksum

from autograder.notebooks import execute, failed_lines, is_test, parts, read_notebook
from autograder.reference import reference_uses


def edited_tests(nb) -> list[str]:
    """Test cells whose text differs from the released one (grading restores the original)."""
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if is_test(c) and "checksum" in c.metadata["nbgrader"]
            and compute_checksum(c) != c.metadata["nbgrader"]["checksum"]]


def check(path: Path, timeout: int) -> tuple[float, float]:
    """Run the notebook beside itself and print each test's result; return (points, out of)."""
    nb = read_notebook(path)
    edited = edited_tests(nb)
    seconds = execute(nb, path.parent, timeout)
    results = parts(nb)
    failed = failed_lines(nb, tests=False)  # the tests' own failures are shown below
    for line in failed:
        print(f"{line} — results after it may be incomplete")
    width = max((len(p.grade_id) for p in results), default=4)
    for p in results:
        mark = "pass" if p.passed else "FAIL"
        print(f"{mark}  {p.grade_id:<{width}}  {p.points:g} point(s)  {p.error}")
    got = sum(p.points for p in results if p.passed)
    total = sum(p.points for p in results)
    print(f"{path.name}: visible tests {got:g}/{total:g} points in {seconds:.0f} s. Hidden tests decide "
          f"the grade; written answers are graded by hand.")
    if failed:
        which = ", ".join(line.split(" ", 2)[1] for line in failed)
        print(f"warning: cell(s) {which} raised an error or timed out, so the score above may be "
              f"incomplete; fix them and check again")
    for use in reference_uses(path.stem, nb):  # the notebook's name is its assignment's
        print(f"warning: {use.reason().replace('; scored 0', '')}: grading scores that part 0")
    for grade_id in edited:
        print(f"warning: you changed the test cell {grade_id}; grading uses the original")
    return got, total
