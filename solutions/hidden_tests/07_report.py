"""Hidden tests of 07_report (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against SciPy's Wilson interval."""

import numpy as np


def given_cases():
    return [(50, 100, 0.95), (59, 60, 0.95), (0, 20, 0.95), (20, 20, 0.9), (17, 30, 0.99), (812, 1000, 0.95)]


def run_test_wilson_interval():
    got = [[float(v) for v in wilson_interval(k, n, c)] for k, n, c in given_cases()]
    return got + [[float(v) for v in wilson_interval(50, 100)]]


def check_test_wilson_interval(got):
    from scipy.stats import binomtest

    assert len(got) == len(given_cases()) + 1
    for (k, n, conf), theirs in zip(given_cases(), got):
        ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
        assert np.allclose(theirs, (ci.low, ci.high), atol=1e-6), \
            f"wilson_interval({k}, {n}, {conf}) gave {np.round(theirs, 5).tolist()}, " \
            f"expected {[round(ci.low, 5), round(ci.high, 5)]}"
    assert np.allclose(got[-1], got[0]), "the default confidence is 0.95"
