"""The grader itself, around the sandbox: a class of 01_data submissions graded in ONE batch.

Each submission attacks or confuses what runs outside the sandbox (copying the student's files
out, reading the submissions folder, writing the feedback) or exhausts a resource within the
per-cell limits; each must get its row in grades.csv, scored as it deserves, with what happened
in its status, while nothing of the instructor's leaks and nothing outside the student's folder
changes.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course import EXERCISES, REPO, SOLUTIONS

FIRST = "01_data"
MARKER = "fake_looking" + "_name"  # only in 01_data's hidden tests (and so in the gradebook and .git)
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed: these submissions run only sandboxed")
ROOT = os.getuid() == 0


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solved() -> nbformat.NotebookNode:
    """01_data as a good student hands it in: both parts solved."""
    nb = nbformat.read(EXERCISES / FIRST / f"{FIRST}.ipynb", 4)
    solution = nbformat.read(SOLUTIONS / FIRST / f"{FIRST}.ipynb", 4)
    for grade_id in ("label_of", "stratified_split"):
        cell(nb, grade_id).source = cell(solution, grade_id).source
    return nb


def with_code(after: str) -> nbformat.NotebookNode:
    nb = solved()
    cell(nb, "label_of").source += "\n" + after
    return nb


def save(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


SEARCH = f"""
import os, subprocess, zlib
marker = {MARKER[:8]!r} + {MARKER[8:]!r}
secret_names = ("gradebook.db", "solutions", "submitted", "autograded", ".git")
for root, dirs, files in os.walk("/", followlinks=False):
    if root in ("/proc", "/sys", "/dev", "/usr/lib", "/usr/share") or root.endswith("site-packages"):
        dirs[:] = []  # the kernel's own processes; the system and installed packages, as on any host
        continue
    for name in dirs + files:
        path = os.path.join(root, name)
        if name in secret_names:
            print("FOUND name", path)
        if name == ".git" and os.path.isdir(path):
            dump = subprocess.run(["git", "-c", "safe.directory=*", "--git-dir", path, "cat-file",
                                   "--batch-all-objects", "--batch"], capture_output=True).stdout
            if marker.encode() in dump:
                print("FOUND in git objects", path)
    for name in files:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or os.path.getsize(path) > 2**20:
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        try:
            data += zlib.decompress(data)  # a loose git object
        except zlib.error:
            pass
        if marker.encode() in data:
            print("FOUND marker", path)
print("searched")
"""


def class_of(subs: Path, grading: Path, target: Path) -> None:
    """Every submission of the class, each one case of the issue."""
    notebooks = {
        "correct": nbformat.read(SOLUTIONS / FIRST / f"{FIRST}.ipynb", 4),
        "searcher": with_code(SEARCH),
        "linker": with_code(f"""
import os
from pathlib import Path
for name, goal in {{"gradebook": {str(grading / "gradebook.db")!r}, "solutions": {str(SOLUTIONS)!r},
                   "passwd": "/etc/passwd", "outside": {str(target)!r}, "root": "/"}}.items():
    os.symlink(goal, name)
os.symlink({str(target)!r}, "{FIRST}.ipynb")  # the notebook the grader writes, made a link
Path("own.txt").write_text("mine")
os.link("own.txt", "hard.txt")
os.mkfifo("fifo")
Path("fine.txt").write_text("kept")
"""),
        "warner": with_code("""
import numpy as np
_label_of = label_of
def label_of(path):
    np.log(np.zeros(1))  # RuntimeWarning: divide by zero, printed to stderr in the test cell
    return _label_of(path)
"""),
        "bigfiles": with_code("""
for name in ("a.bin", "b.bin"):
    with open(name, "wb") as f:
        f.truncate(700 * 2**20)  # each under the 1 GB per-file cap
"""),
        "manyfiles": with_code("""
for i in range(8000):
    open(f"empty{i}", "w").close()
"""),
        "forkers": with_code("""
import os, time
children = []
for _ in range(3):  # each under the per-process cap; 2.4 GB together
    pid = os.fork()
    if pid == 0:
        block = b"x" * (800 * 2**20)
        time.sleep(8)
        os._exit(0)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
with open("forkers.txt", "w") as f:
    f.write(str(sum(os.WIFEXITED(c) and os.WEXITSTATUS(c) == 0 for c in codes)))
"""),
        "xss": with_code("""
from IPython.display import HTML, Javascript, display
display(HTML('<b>ok</b><img src=x onerror=alert("xss-3")><script>alert("xss-4")</script>'))
display(Javascript('alert("xss-5")'))
"""),
    }
    notebooks.update(cheaters())
    chatty = solved()
    chatty.cells += [nbformat.v4.new_code_cell('print("y" * 1_900_000)') for _ in range(30)]
    notebooks["chatty"] = chatty
    cell(notebooks["xss"], "q_balance").source = (
        '<script>alert("xss-1")</script><img src=x onerror=alert("xss-2")> balanced. '
        '![t](http://198.51.100.1/x.png)')
    odd = solved()  # flags, ids, order, duplicates, format and kernelspec altered
    test = cell(odd, "test_label_of")
    odd.cells.remove(test)
    odd.cells.insert(1, test)
    odd.cells.append(copy.deepcopy(cell(odd, "test_stratified_split")))
    cell(odd, "label_of").metadata.nbgrader.update(solution=False, locked=True)
    for c in odd.cells:
        c.id = "same"
    odd.metadata.kernelspec = {"name": "python2", "display_name": "Python 2", "language": "python"}
    odd.nbformat_minor = 4
    notebooks["odd"] = odd
    for student, nb in notebooks.items():
        if student == "odd":
            path = subs / student / FIRST / f"{FIRST}.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(nb))  # nbformat.write would refuse the duplicate ids
        else:
            save(nb, subs / student / FIRST / f"{FIRST}.ipynb")
    save(solved(), subs / "copycat" / FIRST / f"{FIRST}.ipynb")
    shutil.copy(EXERCISES / FIRST / f"{FIRST}.ipynb", subs / "copycat" / FIRST / f"{FIRST}-Copy1.ipynb")
    save(solved(), subs / f"Ana Li_123_assignsubmission_file_{FIRST}.ipynb")
    save(solved(), root_of(subs) / "upper.ipynb")
    with zipfile.ZipFile(subs / "UPPER.ZIP", "w") as z:
        z.write(root_of(subs) / "upper.ipynb", f"{FIRST}.ipynb")
    with zipfile.ZipFile(subs / "bomb.zip", "w") as z:
        z.write(root_of(subs) / "upper.ipynb", f"{FIRST}.ipynb")
        for i in range(20_000):
            z.writestr(f"tiny/{i}", "")
    (subs / "linkfile").symlink_to(SOLUTIONS / FIRST / f"{FIRST}.ipynb")
    (subs / "linkdir").symlink_to(SOLUTIONS, target_is_directory=True)
    for name in ("José García", "Josè García", "Li Na", "Li_Na"):
        (subs / name).mkdir()


WRONG = """
def label_of(path):
    return 0  # wrong for every fake
"""

CHEATS = {  # each answers label_of wrongly, then tries to pass its tests anyway
    "patcher": WRONG + """
import builtins, numpy as np
np.allclose = np.isclose = np.array_equal = lambda *a, **k: True
builtins.AssertionError = type("Never", (Exception,), {})
""",
    "transformer": WRONG + """
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: ["pass\\n"])  # every later cell becomes pass
""",
    "hooker": WRONG + """
from IPython.display import display
ip = get_ipython()
def points(info):
    display(2)  # what nbgrader reads as partial credit
    print("@@autograder-" + "0" * 32 + "@@{}@@autograder-" + "0" * 32 + "@@")  # a fake reply
ip.events.register("pre_run_cell", points)
""",
    "alwayseq": """
class Any(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__

def label_of(path):
    return Any(0)
""",
}


def cheaters() -> dict:
    """Each cheat of CHEATS in place of label_of, after which stratified_split is correct."""
    found = {}
    for student, code in CHEATS.items():
        nb = solved()
        cell(nb, "label_of").source = code
        found[student] = nb
    return found


def root_of(subs: Path) -> Path:
    return subs.parent


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Grade the class once, as the instructor would, from the command line."""
    root = tmp_path_factory.mktemp("safety")
    subs, grading, target = root / "submissions", root / "grading", root / "instructor.txt"
    subs.mkdir()
    target.write_text("the instructor's file")
    class_of(subs, grading, target)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(grading),
                          "--assignment", FIRST, "--jobs", "2", "--timeout", "60", "--memory-mb", "2560",
                          "--require-sandbox"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with (grading / "grades.csv").open() as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    print(f"graded the class in {seconds:.0f} s")
    return run, grading, rows, target


def scores(row) -> list[float]:
    return [float(row[p] or 0) for p in ("test_label_of", "test_stratified_split", "total", "max")]


def files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")] if folder.exists() else []


def size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in files(folder))


def outputs(grading: Path, student: str) -> str:
    nb = json.loads((grading / "autograded" / student / FIRST / f"{FIRST}.ipynb").read_text())
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_every_submission_has_a_row(batch):
    run, _, rows, _ = batch
    assert run.returncode == 0, run.stderr[-2000:]
    expected = {*CHEATS, "correct", "searcher", "linker", "warner", "bigfiles", "manyfiles", "forkers", "xss",
                "chatty", "odd", "copycat", "Ana_Li_123", "UPPER", "bomb", "linkfile", "linkdir",
                "José_García", "Josè_García"}
    assert expected <= set(rows), sorted(rows)
    assert rows["correct"]["status"] == "graded" and scores(rows["correct"]) == [2, 3, 5, 5]


def test_nothing_in_the_kernel_changes_a_hidden_verdict(batch):
    """The verdicts are computed in the grader (autograder/hidden.py): patched NumPy, input
    transformers, IPython hooks and objects equal to everything all leave label_of at 0."""
    _, grading, rows, _ = batch
    for student in CHEATS:
        row = rows[student]
        assert row["status"].startswith("graded"), row
        assert float(row["test_label_of"]) == 0, row
        assert "test_label_of 0/2: " in row["status"], row
        page = (grading / "feedback" / student / FIRST / f"{FIRST}.html").read_text()
        assert "test_label_of 0/2" in page, student
    assert float(rows["transformer"]["test_stratified_split"]) == 0, "its own transformer ate the tests"
    for student in ("patcher", "hooker", "alwayseq"):
        assert scores(rows[student]) == [0, 3, 3, 5], rows[student]
    assert "gave 0, expected 1" in rows["patcher"]["status"], rows["patcher"]


def test_nothing_of_the_instructors_is_visible_in_the_sandbox(batch):
    _, grading, rows, _ = batch
    seen = outputs(grading, "searcher")
    assert "searched" in seen, seen[:2000]
    assert "FOUND" not in seen, re.findall(r"FOUND[^\\]*", seen)[:20]
    assert scores(rows["searcher"]) == [2, 3, 5, 5]


def test_the_grader_never_follows_the_students_links(batch):
    _, grading, rows, target = batch
    row = rows["linker"]
    assert target.read_text() == "the instructor's file"
    for folder in (grading / "autograded" / "linker", grading / "feedback" / "linker"):
        for path in files(folder):
            assert not path.is_symlink() and (path.is_dir() or path.is_file()), path
            assert b"SQLite format 3" not in (path.read_bytes() if path.is_file() else b""), path
        assert not list(folder.rglob("*solutions*")) and not list(folder.rglob("gradebook*"))
    assert (grading / "autograded" / "linker" / FIRST / "fine.txt").read_text() == "kept"
    assert not (grading / "autograded" / "linker" / FIRST / "own.txt").exists(), "a hard link is refused"
    assert scores(row) == [2, 3, 5, 5], row
    for what in ("symlinks not copied", "special files", "hard links not copied"):
        assert what in row["status"], row


def test_symlinked_submissions_are_not_followed(batch):
    _, grading, rows, _ = batch
    for student in ("linkfile", "linkdir"):
        assert rows[student]["status"].startswith(f"not graded: {student} is a symlink"), rows[student]
        assert not (grading / "submitted" / student).exists()


def test_lms_shapes_each_get_their_row(batch):
    _, _, rows, _ = batch
    for student in ("UPPER", "Ana_Li_123"):
        assert rows[student]["status"] == "graded" and scores(rows[student]) == [2, 3, 5, 5], rows[student]
    row = rows["copycat"]
    assert scores(row) == [2, 3, 5, 5], row
    assert f"graded {FIRST}/{FIRST}.ipynb, ignored {FIRST}/{FIRST}-Copy1.ipynb" in row["status"], row


def test_a_warning_costs_no_points(batch):
    _, grading, rows, _ = batch
    assert "RuntimeWarning" in outputs(grading, "warner"), "the warning is shown"
    assert scores(rows["warner"]) == [2, 3, 5, 5], rows["warner"]


def test_the_students_files_come_back_within_quotas(batch):
    _, grading, rows, _ = batch
    for student in ("bigfiles", "manyfiles"):
        for folder in ("autograded", "feedback"):
            assert size(grading / folder / student) < 25 * 2**20, f"{folder}/{student}"
            assert len(files(grading / folder / student)) < 300, f"{folder}/{student}"
        assert scores(rows[student]) == [2, 3, 5, 5], rows[student]
    assert "files over the size quota not copied" in rows["bigfiles"]["status"], rows["bigfiles"]
    assert "7800 files over the file-count quota not copied" in rows["manyfiles"]["status"]
    assert float(rows["manyfiles"]["seconds"]) < 120, rows["manyfiles"]


@pytest.mark.skipif(not ROOT, reason="not root: no memory cgroup, so memory is capped per process only")
def test_memory_is_capped_per_sandbox_not_per_process(batch):
    _, grading, rows, _ = batch
    survivors = grading / "autograded" / "forkers" / FIRST / "forkers.txt"
    died = "the kernel died" in rows["forkers"]["status"]
    assert died or int(survivors.read_text()) < 3, "three children held 2.4 GB in a 2.5 GB sandbox"


def test_output_is_capped_per_notebook(batch):
    _, grading, rows, _ = batch
    assert scores(rows["chatty"]) == [2, 3, 5, 5], rows["chatty"]
    assert "output truncated" in rows["chatty"]["status"], rows["chatty"]
    for folder in ("autograded", "feedback"):
        assert size(grading / folder / "chatty") < 15 * 2**20, folder


def test_a_zip_of_many_members_is_refused(batch):
    _, _, rows, _ = batch
    assert rows["bomb"]["status"].startswith("not graded: bomb.zip: cannot be read (it holds 20001 entries")


def test_feedback_and_formgrader_are_safe_to_view(batch):
    _, grading, rows, _ = batch
    page = (grading / "feedback" / "xss" / FIRST / f"{FIRST}.html").read_text()
    graded = json.loads((grading / "autograded" / "xss" / FIRST / f"{FIRST}.ipynb").read_text())
    shown = json.dumps([c["source"] if c["cell_type"] == "markdown" else c.get("outputs")
                        for c in graded["cells"]])  # what formgrader renders as HTML; code is escaped
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    for text in (page, shown):
        assert not re.search(r"<img\b[^>]*onerror", text, re.I)
        assert not re.search(r"<script\b[^>]*>[^<]*xss-", text, re.I)
        assert "198.51.100.1" not in text
    assert "xss-5" not in json.dumps([c.get("outputs") for c in graded["cells"]])
    assert scores(rows["xss"]) == [2, 3, 5, 5]
    assert "unsafe HTML removed" in rows["xss"]["status"], rows["xss"]


def test_odd_notebooks_are_restored_and_graded(batch):
    _, _, rows, _ = batch
    row = rows["odd"]
    assert row["status"].startswith("graded"), row
    assert scores(row) == [2, 3, 5, 5], row  # the duplicated test earns nothing twice
    assert "restored from the release: cell order, cell flags of label_of, kernelspec, notebook format" \
        in row["status"], row
    assert "duplicated cells not graded again: test_stratified_split" in row["status"], row


def test_student_ids_stay_distinct(batch):
    _, _, rows, _ = batch
    assert rows["José_García"]["status"] == "missing" and rows["Josè_García"]["status"] == "missing"
    li = sorted(s for s in rows if s.startswith("Li_Na"))
    assert len(li) == 2 and all(re.fullmatch(r"Li_Na_[0-9a-f]{6}", s) for s in li), li
    for s in li:
        assert "makes the same id as" in rows[s]["status"], rows[s]


def test_the_terminal_shows_one_bar_and_one_line_per_problem(batch):
    run, _, rows, _ = batch
    text = run.stdout + run.stderr
    assert "Warning" not in text, text[-3000:]
    lines = [line for line in re.split(r"[\r\n]+", text) if line.strip() and "autograde:" not in line]
    problems = [r for r in rows.values() if r["status"].startswith(("not graded", "failed"))]
    assert len(lines) == len(problems) + 1, lines  # and the summary
    assert run.stdout.strip().splitlines()[-1].startswith("graded "), run.stdout
