"""The EDA: every feature on hand-computable images, the statistics on known distributions."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_image
from PIL import Image
from scipy.stats import norm

from casestudy import eda, eda_plots

N = 64


def checkerboard(n=N):
    y, x = np.indices((n, n))
    return ((x + y) % 2).astype(np.float32)  # 0, 1, 0, 1, ...


def sinusoid(k, n=N):
    x = np.arange(n)
    return np.tile(np.sin(2 * np.pi * k * x / n), (n, 1)).astype(np.float32)


def test_constant_image():
    rgb = np.empty((N, N, 3), np.uint8)
    rgb[:] = (200, 100, 50)
    assert np.allclose(eda.mean_colour(rgb), (200, 100, 50))
    assert eda.luminance(rgb) == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    g = eda.grey(rgb)
    assert eda.fft_magnitude(g) == pytest.approx(g[0, 0], rel=1e-5)  # all in the DC term, |F|/N^2 = c
    assert eda.laplacian_variance(g) == pytest.approx(0, abs=1e-6)
    spectrum = eda.radial_power_spectrum(g)
    assert spectrum[0] == pytest.approx(g[0, 0] ** 2, rel=1e-5)
    assert np.allclose(spectrum[1:], 0, atol=1e-6)


@pytest.mark.parametrize("k", [3, 8, 20])
def test_sinusoid_power_sits_at_its_frequency(k):
    spectrum = eda.radial_power_spectrum(sinusoid(k))
    frequencies = eda.radial_frequencies()
    assert frequencies[spectrum.argmax()] == pytest.approx(k / N, abs=0.5 / eda.RADIAL_BINS)
    counts = np.bincount(eda.radial_bins(N, N).ravel(), minlength=len(spectrum))
    assert (spectrum * counts).sum() == pytest.approx(0.5, rel=1e-4)  # Parseval: mean of sin^2
    assert eda.fft_magnitude(sinusoid(k)) == pytest.approx(1.0, rel=1e-4)  # two peaks of N^2/2


def test_checkerboard():
    board = checkerboard()
    assert eda.fft_magnitude(board) == pytest.approx(1.0, rel=1e-5)  # DC and corner, N^2/2 each
    assert eda.laplacian_variance(board) == pytest.approx(16.0)  # the Laplacian is +-4 everywhere
    spectrum = eda.radial_power_spectrum(board)
    assert spectrum[0] == pytest.approx(0.25)  # the mean, 0.5, squared
    assert spectrum[-1] > 0 and np.allclose(spectrum[1:-1], 0, atol=1e-8)  # (0.5, 0.5) cycles/px


def test_a_batch_gives_the_features_of_each_image():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    g = eda.grey(batch)
    for fn in (eda.fft_magnitude, eda.laplacian_variance, eda.radial_power_spectrum):
        assert np.allclose(fn(g), np.stack([fn(one) for one in g]), rtol=1e-5)
    assert eda.mean_colour(batch).shape == (5, 3) and eda.luminance(batch).shape == (5,)
    one = eda.image_features(batch[0])  # shares one FFT between its two spectral features
    assert np.allclose(one["spectrum"], eda.radial_power_spectrum(g[0]), rtol=1e-5)
    assert one["fft_magnitude"] == pytest.approx(eda.fft_magnitude(g[0]), rel=1e-5)


def test_image_modes_are_converted_and_broken_files_skipped(tmp_path):
    rng = np.random.default_rng(1)
    grey8 = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    paths = {
        "grey": write_image(tmp_path / "grey.png", grey8),
        "grey16": write_image(tmp_path / "grey16.png", grey8.astype(np.uint16) * 256),
        "rgba": write_image(tmp_path / "rgba.png", np.dstack([grey8] * 3 + [np.full_like(grey8, 255)])),
        "palette": tmp_path / "palette.png",
    }
    palette = Image.fromarray(np.dstack([grey8] * 3)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(paths["palette"])
    (tmp_path / "text.png").write_text("not an image")
    table, spectra, skipped = eda.compute_features([str(p) for p in paths.values()]
                                                   + [str(tmp_path / "text.png")], progress=False)
    assert list(skipped) == [str(tmp_path / "text.png")]
    assert len(table) == 4 and spectra.shape == (4, len(eda.radial_frequencies()))
    assert (table.width == 24).all() and (table.height == 20).all()
    want = eda.luminance(np.dstack([grey8] * 3))
    lum = dict(zip(paths, table.luminance))
    for name in ("grey", "grey16", "rgba"):
        assert lum[name] == pytest.approx(want, abs=1e-6)
    assert lum["palette"] == pytest.approx(want, abs=2)  # an adaptive palette rounds a little


def gaussians(shift, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, n), rng.normal(shift, 1, n)])
    return x, np.repeat([0, 1], n)


def test_statistics_recover_a_known_shift():
    d = 0.5
    result = eda.compare_feature(*gaussians(d))
    assert result["cohens_d"] == pytest.approx(d, abs=0.03)
    assert result["auc"] == pytest.approx(norm.cdf(d / np.sqrt(2)), abs=0.01)  # P(fake > real)
    assert result["threshold_accuracy"] == pytest.approx(norm.cdf(d / 2), abs=0.015)  # cut at d/2
    assert result["ks_p"] < 1e-10


def test_statistics_on_identical_distributions_find_nothing():
    result = eda.compare_feature(*gaussians(0.0))
    assert abs(result["cohens_d"]) < 0.03 and result["auc"] == pytest.approx(0.5, abs=0.01)
    assert result["ks_p"] > 0.001 and result["threshold_accuracy"] < 0.53


def test_best_threshold_direction():
    x, y = np.array([1.0, 2, 3, 4]), np.array([0, 0, 1, 1])
    assert eda.best_threshold(x, y) == (2.5, 1)
    assert eda.best_threshold(x, 1 - y) == (2.5, -1)
    assert eda.cohens_d(np.ones(3), np.ones(3)) == 0.0


def test_spectrum_baseline_finds_a_peak_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    noise = rng.normal(size=(200, 30))
    assert eda.spectrum_baseline(noise, y)["accuracy"] == pytest.approx(0.5, abs=0.12)
    peaked = noise.copy()
    peaked[y == 1, 25] += 3  # fakes carry extra power at one frequency
    assert eda.spectrum_baseline(peaked, y)["accuracy"] > 0.9


def casestudy(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "casestudy", *args, "--quiet"], cwd=cwd,
                            text=True, capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_eda_command_on_synthetic_data(tmp_path):
    out = casestudy("eda", "--synthetic-per-class", "60", "--synthetic-size", "48", cwd=tmp_path)
    run = tmp_path / "runs" / "demo"
    summary = json.loads((run / "eda_summary.json").read_text())
    assert summary["n_images"] == {"real": 60, "fake": 60}
    # the synthetic fakes differ only in a faint trace: not in brightness, a little in the spectrum
    assert abs(summary["features"]["luminance"]["auc"] - 0.5) < 0.15
    assert 0.6 < summary["baseline"]["accuracy"] < 0.95
    for name, *_ in eda_plots.FIGURES:
        assert (run / "figures" / name).is_file(), name
    assert len((run / "eda.csv").read_text().splitlines()) == 121
    assert summary["answers"]["balanced"].startswith("Yes") and "eda_summary.json" in out
    casestudy("report", cwd=tmp_path)
    report = (run / "report.md").read_text()
    assert "## Exploring the data" in report and summary["answers"]["brightness"] in report


@pytest.mark.slow
def test_eda_command_on_the_real_sample(shared_sample, tmp_path):
    casestudy("eda", "--data", str(shared_sample), "--name", "real", "--eda-per-class", "300", cwd=tmp_path)
    summary = json.loads((tmp_path / "runs" / "real" / "eda_summary.json").read_text())
    assert summary["n_images"] == {"real": 300, "fake": 300}
    assert summary["answers"]["balanced"].startswith("Yes")  # the sample holds 800 of each
    assert summary["features"]["width"]["auc"] == 0.5  # every image is 256 x 256
    assert 0.5 < summary["baseline"]["accuracy"] < 1.0


def test_the_power_spectrum_figure_leaves_out_empty_bins():
    """At 32 px many of the 64 radial bins hold no coefficient: no spike down to the log's floor."""
    from casestudy import eda_plots

    images = np.random.default_rng(0).integers(0, 255, (12, 32, 32)).astype(np.float32)
    spectra = np.log10(np.stack([eda.radial_power_spectrum(g) for g in images]) + 1e-12)
    assert (spectra <= -11.99).all(0).sum() > 10  # the empty bins are there to leave out
    fig = eda_plots.plot_power_spectrum(spectra, np.array([0] * 6 + [1] * 6), "test")
    curves = [line.get_ydata() for ax in fig.axes for line in ax.get_lines() if len(line.get_ydata()) > 2]
    assert curves and min(np.min(y) for y in curves) > -5, "a curve dips to the empty bins' floor"
