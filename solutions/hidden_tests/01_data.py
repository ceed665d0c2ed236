"""Hidden tests of 01_data (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader."""

import numpy as np


def given_paths():
    """Paths and their labels: None where label_of must raise ValueError."""
    return {
        "data/real/img_001.png": 0,
        "data/fake/img_001.png": 1,
        "real/ffhq/00000/00001.png": 0,
        "fake/stylegan/psi-0.7/000000/000123.png": 1,
        "real/fake_looking_name.png": 0,
        "faces/fake/real_0001.jpg": 1,
        "/home/me/fake-faces/real/a.png": 0,
        "/data/real/old/fake/a.png": 1,
        "other/a.png": None,
        "a.png": None,
        "realistic/a.png": None,
    }


def run_test_label_of():
    from pathlib import Path

    got = {}
    for path in given_paths():
        for form in (path, Path(path)):
            try:
                got[(path, type(form).__name__)] = int(label_of(form))
            except ValueError:
                got[(path, type(form).__name__)] = "ValueError"
            except Exception as err:
                got[(path, type(form).__name__)] = f"raised {type(err).__name__}: {err}"
    return got


def check_test_label_of(got):
    for path, label in given_paths().items():
        for form in ("str", "PosixPath"):
            answer = got.get((path, form), "nothing")
            gave = answer if str(answer).startswith("raised") else f"gave {answer!r}"
            if label is None:
                assert answer == "ValueError", f"label_of({path!r}) {gave}: it must raise ValueError"
            else:
                assert answer == label, f"label_of({path!r}) {gave}, expected {label}"


def given_label_sets():
    return [np.array([0] * 90 + [1] * 10), np.array([1, 0] * 37 + [1] * 3), np.array([0] * 7 + [1] * 13),
            np.array([0] * 60 + [1] * 40), np.array([0] * 100 + [1] * 100)]


def run_test_stratified_split():
    got = []
    for labels in given_label_sets():
        for seed in (0, 1, 2, 5):
            splits = stratified_split(labels.copy(), seed=seed)
            again = stratified_split(labels.copy(), seed=seed)
            got.append([[str(s) for s in splits], [str(s) for s in again]])
    return got


def check_test_stratified_split(got):
    sets = given_label_sets()
    assert len(got) == 4 * len(sets), "stratified_split did not run on every hidden input"
    for i, labels in enumerate(sets):
        runs = got[4 * i: 4 * i + 4]
        for seed, (splits, again) in zip((0, 1, 2, 5), runs):
            splits = np.array(splits)
            assert len(splits) == len(labels), f"{len(labels)} labels gave {len(splits)} split names"
            assert splits.tolist() == list(again), f"seed {seed}: the same seed gave another split"
            for label in (0, 1):
                n = int((labels == label).sum())
                n_train, n_val = round(0.70 * n), round(0.15 * n)
                want = {"train": n_train, "val": n_val, "test": n - n_train - n_val}
                have = {s: int((splits[labels == label] == s).sum()) for s in want}
                assert have == want, f"class {label} of {n} images, seed {seed}: {have}, expected {want}"
        assert any(a[0] != b[0] for a, b in zip(runs, runs[1:])), "another seed must give another split"
        first = np.array(runs[0][0])
        for label in (0, 1):
            members = first[labels == label]
            n_train = round(0.70 * len(members))
            if len(members) >= 20:
                assert not (members[:n_train] == "train").all(), "shuffle within each class before splitting"
