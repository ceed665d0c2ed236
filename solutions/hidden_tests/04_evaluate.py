"""Hidden tests of 04_evaluate (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against scikit-learn."""

import numpy as np


def given_cases():
    rng = np.random.default_rng(5)
    cases = [([1, 1, 1, 0, 0], [1, 1, 0, 0, 1]), ([0, 0], [0, 0]), ([1, 0], [0, 0]),
             ([1, 1, 1, 1, 0], [1, 0, 0, 0, 0]), ([1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 1])]
    for n in (7, 40, 50, 200):
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.7, y, 1 - y)
        p[:3] = 1
        cases.append((y, p))
    return cases


def run_test_confusion_counts():
    got = []
    for y, p in given_cases():
        counts = confusion_counts(y, p)
        got.append({str(k): int(v) for k, v in counts.items()})
    return got


def check_test_confusion_counts(got):
    from sklearn.metrics import confusion_matrix

    for (y, p), counts in zip(given_cases(), got, strict=True):
        tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, p, labels=[0, 1]).ravel())
        want = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
        assert counts == want, f"confusion_counts({list(y)[:8]}..., {list(p)[:8]}...) gave {counts}, expected {want}"


def run_test_precision_recall_f1():
    return [[float(v) for v in precision_recall_f1(y, p)] for y, p in given_cases()]


def check_test_precision_recall_f1(got):
    from sklearn.metrics import f1_score, precision_score, recall_score

    for (y, p), theirs in zip(given_cases(), got, strict=True):
        want = [f(y, p, zero_division=0) for f in (precision_score, recall_score, f1_score)]
        assert len(theirs) == 3, f"return (precision, recall, F1): got {len(theirs)} values"
        assert np.allclose(theirs, want), \
            f"labels {list(y)[:8]}..., predictions {list(p)[:8]}...: gave {np.round(theirs, 4).tolist()}, " \
            f"expected {np.round(want, 4).tolist()} (precision, recall, F1)"
