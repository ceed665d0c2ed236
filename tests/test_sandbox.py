"""Untrusted student code: a class of malicious and broken 01_data notebooks graded in one batch.

Each submission attacks the grader or the machine (reads the hidden tests, writes outside its
folder, opens a connection, forks, eats memory, prints gigabytes, sleeps, kills its kernel,
tampers with the tests, is not JSON). Each must be contained, scored as it deserves and
reported in grades.csv's status, while the correct submission in the same batch gets full
marks. The batch is first killed with SIGKILL part-way and re-run; the gradebook must come out
consistent.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import GradingError
from autograder.cli import main
from autograder.course import EXERCISES, REPO, SOLUTIONS
from autograder.grade import sandbox_for
from autograder.sandbox import Sandbox

FIRST = "01_data"
BWRAP = Path("/usr/bin/bwrap").exists() or shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap (/usr/bin/bwrap) is not installed: "
                                 "these submissions are only graded inside the sandbox")
HIDDEN = "fake_looking_name"  # only in the hidden tests of 01_data
DANGEROUS = {"peek", "vandal", "netcat", "forker", "hog", "chatty"}  # run only in the sandbox


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solved() -> nbformat.NotebookNode:
    """01_data as a good student hands it in: both parts solved."""
    nb, solution = nbformat.read(EXERCISES / FIRST / f"{FIRST}.ipynb", 4), nbformat.read(
        SOLUTIONS / FIRST / f"{FIRST}.ipynb", 4)
    for grade_id in ("label_of", "stratified_split"):
        cell(nb, grade_id).source = cell(solution, grade_id).source
    return nb


def with_code(before: str = "", after: str = "") -> nbformat.NotebookNode:
    """A solved notebook with code run before or after the student's label_of."""
    nb = solved()
    cell(nb, "label_of").source = before + "\n" + cell(nb, "label_of").source + "\n" + after
    return nb


def class_of(subs: Path, grading: Path, port: int) -> None:
    """Write every submission as <student>/01_data/01_data.ipynb."""
    secrets = [SOLUTIONS / FIRST / f"{FIRST}.ipynb", grading / "gradebook.db",
               grading / "source" / FIRST / f"{FIRST}.ipynb",
               grading / "submitted" / "correct" / FIRST / f"{FIRST}.ipynb",
               subs / "correct" / FIRST / f"{FIRST}.ipynb"]
    deleted = solved()
    cell(deleted, "test_label_of").source = "pass  # no tests here"
    deleted.cells.remove(cell(deleted, "test_stratified_split"))
    quitter = solved()
    cell(quitter, "stratified_split").source += "\nimport os\nos._exit(1)  # the kernel dies\n"
    repointed = solved()
    cell(repointed, "test_label_of").metadata.nbgrader.points = 100
    notebooks = {
        "correct": nbformat.read(SOLUTIONS / FIRST / f"{FIRST}.ipynb", 4),
        "peek": with_code(before=f"""
from pathlib import Path
for p in {[str(s) for s in secrets]} + [str(Path.cwd().parents[2] / "gradebook.db")]:
    try:
        data = Path(p).read_bytes()
        print("LEAKED", p, data[data.find(b"{HIDDEN}") - 500:][:2000].decode("latin-1"))
    except OSError as err:
        print("hidden:", p, type(err).__name__)
"""),
        "vandal": with_code(after=f"""
from pathlib import Path
Path("mine.txt").write_text("my own folder is writable")
for p in {[str(grading / "pwned.txt"), str(grading / "autograded" / "correct" / "pwned.txt"),
           str(Path.home() / "pwned.txt"), str(subs / "pwned.txt")]}:
    try:
        Path(p).write_text("pwned")
    except OSError as err:
        print("refused:", p, err)
Path({str(REPO / "pwned.txt")!r}).write_text("pwned")  # uncaught: the status shows it
"""),
        "netcat": with_code(after=f"""
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"the answers, please")
"""),
        "forker": with_code(before="""
import os, time
while True:  # every child sleeps; the parent forks until the process limit stops it
    if os.fork() == 0:
        time.sleep(3600)
        os._exit(0)
"""),
        "hog": with_code(before="""
def grab():
    chunks = []
    while True:
        chunks.append(bytearray(2**27))
grab()
"""),
        "chatty": with_code(after="""
print("y" * 300_000_000)  # one message larger than the grader accepts
for _ in range(100_000):  # then 100 GB, line by line
    print("x" * 1_000_000)
"""),
        "sleeper": with_code(before="import time\ntime.sleep(10**6)\n"),
        "deleter": deleted,
        "quitter": quitter,
        "repointed": repointed,
    }
    for student, nb in notebooks.items():
        if BWRAP or student not in DANGEROUS:
            path = subs / student / FIRST / f"{FIRST}.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(nb, path)
    (subs / "garbled" / FIRST).mkdir(parents=True)
    (subs / "garbled" / FIRST / f"{FIRST}.ipynb").write_text('{"cells": [')


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(proc.name)] = (ppid, cmdline[:200])
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Grade the class: first killed with SIGKILL once a notebook is graded, then run again."""
    root = tmp_path_factory.mktemp("sandbox")
    subs, grading = root / "submissions", root / "grading"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    class_of(subs, grading, listener.getsockname()[1])
    args = ["grade", str(subs), "--out", str(grading), "--assignment", FIRST, "--jobs", "2",
            "--timeout", "20", "--memory-mb", "4096"] + (["--require-sandbox"] if BWRAP else [])
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    first = subprocess.Popen([sys.executable, "-m", "autograder", *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and first.poll() is None and not list(
            (grading / "feedback").glob(f"*/{FIRST}/{FIRST}.html")):
        time.sleep(1)
    workers = [pid for pid, (ppid, _) in processes().items() if ppid == first.pid]
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(3)
    orphans = [cmd for pid, (_, cmd) in processes().items()
               if pid in workers or (str(grading) in cmd and pid != os.getpid())]
    start = time.perf_counter()
    code = main(args)
    seconds = time.perf_counter() - start
    try:
        conn, _ = listener.accept()
        connected = conn.recv(100) or b"(connected)"
    except TimeoutError:
        connected = b""
    listener.close()
    with (grading / "grades.csv").open() as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    print(f"graded the class in {seconds:.0f} s")
    return code, grading, rows, orphans, connected


def scores(row) -> list[float]:
    return [float(row[p] or 0) for p in ("test_label_of", "test_stratified_split", "total", "max")]


def outputs(grading: Path, student: str) -> str:
    nb = json.loads((grading / "autograded" / student / FIRST / f"{FIRST}.ipynb").read_text())
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_correct_submission_gets_full_marks(batch):
    code, _, rows, _, _ = batch
    assert code == 0
    assert rows["correct"]["status"] == "graded", rows["correct"]
    assert scores(rows["correct"]) == [2, 3, 5, 5]


@needs_bwrap
def test_cheater_sees_neither_solutions_nor_gradebook(batch):
    _, grading, rows, _, _ = batch
    seen = outputs(grading, "peek")
    assert "hidden:" in seen and seen.count("hidden:") == 6, seen[:2000]
    assert "LEAKED" not in seen and HIDDEN not in seen
    assert scores(rows["peek"]) == [2, 3, 5, 5] and rows["peek"]["status"] == "graded"


@needs_bwrap
def test_writes_outside_its_folder_vanish(batch):
    _, grading, rows, _, _ = batch
    for path in (grading / "pwned.txt", grading / "autograded" / "correct" / "pwned.txt",
                 Path.home() / "pwned.txt", grading.parent / "submissions" / "pwned.txt",
                 REPO / "pwned.txt"):
        assert not path.exists(), f"{path} was written by a student"
    assert (grading / "autograded" / "vandal" / FIRST / "mine.txt").is_file()
    assert scores(rows["vandal"]) == [2, 3, 5, 5]
    blocked = r"blocked \((OSError: \[Errno 30\] Read-only file system|PermissionError: \[Errno 13\])"
    assert re.search(blocked, rows["vandal"]["status"]), rows["vandal"]  # the repository is not even there


@needs_bwrap
def test_no_network(batch):
    _, _, rows, _, connected = batch
    assert connected == b"", f"a student reached the host: {connected!r}"
    assert scores(rows["netcat"]) == [2, 3, 5, 5]
    assert "blocked (" in rows["netcat"]["status"], rows["netcat"]


@needs_bwrap
def test_fork_bomb_is_contained(batch):
    _, _, rows, _, _ = batch
    assert scores(rows["forker"]) == [0, 3, 3, 5], rows["forker"]
    assert "cell 5 hit the process limit" in rows["forker"]["status"], rows["forker"]


@needs_bwrap
def test_memory_hog_is_contained(batch):
    _, _, rows, _, _ = batch
    assert scores(rows["hog"]) == [0, 3, 3, 5], rows["hog"]
    assert "cell 5 ran out of memory" in rows["hog"]["status"], rows["hog"]


@needs_bwrap
def test_gigabytes_of_output_are_cut(batch):
    _, grading, rows, _, _ = batch
    assert scores(rows["chatty"]) == [2, 3, 5, 5], rows["chatty"]
    assert "cell 5 output truncated" in rows["chatty"]["status"], rows["chatty"]
    for folder in ("autograded", "feedback"):
        size = sum(p.stat().st_size for p in (grading / folder / "chatty").rglob("*") if p.is_file())
        assert size < 20 * 2**20, f"{folder}/chatty holds {size} bytes"


def test_sleeper_is_interrupted(batch):
    _, _, rows, _, _ = batch
    assert scores(rows["sleeper"]) == [0, 3, 3, 5], rows["sleeper"]
    assert "cell 5 timed out" in rows["sleeper"]["status"], rows["sleeper"]


def test_a_dead_kernel_costs_only_the_cells_it_did_not_run(batch):
    _, _, rows, _, _ = batch
    row = rows["quitter"]
    assert scores(row) == [2, 0, 2, 5], row
    assert "the kernel died in cell 8" in row["status"], row


def test_edited_and_deleted_tests_are_restored_or_zero(batch):
    _, _, rows, _, _ = batch
    row = rows["deleter"]
    assert scores(row) == [2, 0, 2, 5], row
    assert "tests restored: test_label_of (edited), test_stratified_split (deleted)" in row["status"], row


def test_changed_points_are_restored(batch):
    _, _, rows, _, _ = batch
    row = rows["repointed"]
    assert scores(row) == [2, 3, 5, 5], row
    assert "tests restored: test_label_of (points 100)" in row["status"], row


def test_invalid_json_is_reported(batch):
    _, _, rows, _, _ = batch
    assert rows["garbled"]["status"].startswith("not graded: 01_data.ipynb is not a valid notebook")


def test_killed_grading_reruns_consistently(batch):
    _, grading, rows, orphans, _ = batch
    from nbgrader.api import Gradebook

    assert not orphans, f"SIGKILL left processes grading: {orphans}"
    assert all(r["status"].startswith(("graded", "not graded")) for r in rows.values()), rows
    with Gradebook(f"sqlite:///{grading / 'gradebook.db'}") as gb:
        students = [s.student_id for s in gb.assignment_submissions(FIRST)]
    graded = sorted(s for s, r in rows.items() if r["status"].startswith("graded"))
    assert sorted(students) == graded, "one submission per student, none lost or doubled"


def test_grading_refuses_or_warns_without_a_sandbox(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("autograder.grade.unavailable", lambda: "bubblewrap is not installed")
    with pytest.raises(GradingError, match="cannot sandbox the students' code: bubblewrap is not"):
        sandbox_for(Sandbox(), True, tmp_path / "grading", tmp_path / "subs")
    box = sandbox_for(Sandbox(), False, tmp_path / "grading", tmp_path / "subs")
    assert not box.enabled
    assert "WARNING: students' code runs UNSANDBOXED" in capsys.readouterr().err


def test_graders_on_one_machine_claim_different_uids():
    """Two graders' workers sharing a uid would reap each other's kernels (sandbox.reap)."""
    import subprocess
    import sys

    from autograder.sandbox import claim_slot

    holder = subprocess.Popen([sys.executable, "-c", "from autograder.sandbox import claim_slot; "
                               "print(claim_slot(), flush=True); import time; time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(holder.stdout.readline())
        mine = claim_slot()
        assert theirs != mine and claim_slot() == mine  # one per process, held until it exits
    finally:
        holder.kill()
        holder.wait()
