"""Hidden tests of 02_eda (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against casestudy's own features."""

import numpy as np


def given_images():
    rng = np.random.default_rng(1)
    flat = np.zeros((4, 5, 3), np.uint8) + np.array([10, 20, 30], np.uint8)
    red, blue = np.zeros((2, 2, 3)), np.zeros((2, 2, 3))
    red[..., 0], blue[..., 2] = 100, 100
    return {"flat": flat, "random_small": rng.integers(0, 256, (7, 9, 3), dtype=np.uint8),
            "random": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
            "white": np.full((64, 64, 3), 255, np.uint8), "red": red, "blue": blue}


def given_greys():
    x = np.mgrid[:32, :32][1]
    rng = np.random.default_rng(3)
    return {"flat": np.full((8, 8), 3.0), "flat16": np.full((16, 16), 2.0),
            "cos4": np.cos(2 * np.pi * 4 * x / 32), "cos5": np.cos(2 * np.pi * 5 * x / 32),
            "noise": rng.normal(size=(24, 40)), "noise32": rng.normal(size=(32, 32)),
            "noise48": rng.normal(size=(48, 48))}


def run_test_mean_colour():
    return {name: np.asarray(mean_colour(img), dtype=float) for name, img in given_images().items()}


def check_test_mean_colour(got):
    from casestudy import features

    for name, img in given_images().items():
        want = features.mean_colour(img)
        assert np.shape(got[name]) == (3,), f"mean_colour of a {img.shape} image: shape {np.shape(got[name])}, expected (3,)"
        assert np.allclose(got[name], want), f"mean_colour of the {name} image: {got[name]}, expected {want} (R, G, B)"


def run_test_luminance():
    return {name: np.asarray(luminance(img), dtype=float) for name, img in given_images().items()}


def check_test_luminance(got):
    from casestudy import features

    for name, img in given_images().items():
        want = features.grey(img)
        assert np.shape(got[name]) == want.shape, f"luma of a {img.shape} image: shape {np.shape(got[name])}"
        assert np.allclose(got[name], want, atol=1e-3), f"luma of the {name} image differs from 0.299 R + 0.587 G + 0.114 B"


def run_test_fft_magnitude():
    return {name: float(fft_magnitude(g)) for name, g in given_greys().items()}


def check_test_fft_magnitude(got):
    from casestudy import features

    for name, g in given_greys().items():
        want = features.fft_magnitude(g)
        assert np.isclose(got[name], want), f"fft_magnitude of the {name} image: {got[name]:.6g}, expected {want:.6g}"


def run_test_radial_power_spectrum():
    return {name: np.asarray(radial_power_spectrum(g), dtype=float) for name, g in given_greys().items()}


def check_test_radial_power_spectrum(got):
    from casestudy import features

    assert np.argmax(got["cos5"]) == 5, "a cosine of 5 cycles puts its power in ring 5"
    for name, g in given_greys().items():
        h, w = g.shape
        n_rings = int(round(np.hypot(h // 2, w // 2))) + 1
        assert len(got[name]) == n_rings, f"{h} x {w} image: {len(got[name])} rings, expected {n_rings}"
        if h == w:
            want = features.radial_power_spectrum(g, n_bins=h // 2)
            assert np.allclose(got[name][:len(want)], want), f"the mean power per ring of the {name} image"
    assert np.isclose(got["flat16"][0], 4.0) and np.allclose(got["flat16"][1:], 0), "a flat image of 2: ring 0 holds 4"
