import hashlib

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from casestudy.synthetic import make_synthetic, upconv2x


def digest(folder):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.png")))).hexdigest()


def load(folder, label):
    files = sorted((folder / label).glob("*.png"))
    return np.stack([np.asarray(Image.open(f), np.float32) / 255 for f in files])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), per_class=120, size=48, seed=3,
                          progress=False)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, synthetic):
    again = make_synthetic(tmp_path / "again", per_class=120, size=48, seed=3, progress=False)
    other = make_synthetic(tmp_path / "other", per_class=120, size=48, seed=4, progress=False)
    assert digest(again) == digest(synthetic)
    assert digest(other) != digest(synthetic)


def test_folder_says_it_is_synthetic(synthetic):
    assert "SYNTHETIC" in (synthetic / "README.txt").read_text()
    assert len(list((synthetic / "real").glob("*.png"))) == 120


def test_colour_and_brightness_do_not_give_the_class_away(synthetic):
    real, fake = load(synthetic, "real"), load(synthetic, "fake")
    labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    for channel in range(3):
        auc = roc_auc_score(labels, np.r_[real[..., channel].mean((1, 2)), fake[..., channel].mean((1, 2))])
        assert 0.35 < auc < 0.65, f"mean of channel {channel} separates the classes (AUC {auc:.2f})"
    luminance = lambda x: (x @ np.array([0.299, 0.587, 0.114], np.float32)).mean((1, 2))  # noqa: E731
    auc = roc_auc_score(labels, np.r_[luminance(real), luminance(fake)])
    assert 0.35 < auc < 0.65, f"brightness separates the classes (AUC {auc:.2f})"


def nyquist_share(images):
    """Share of spectral power on the highest horizontal and vertical frequency."""
    grey = images.mean(-1)
    power = np.abs(np.fft.fft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    n = grey.shape[1] // 2
    return (power[:, n, :].sum(1) + power[:, :, n].sum(1)) / power.sum((1, 2))


def test_power_spectrum_does_give_the_class_away(synthetic):
    real, fake = load(synthetic, "real"), load(synthetic, "fake")
    labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    auc = roc_auc_score(labels, np.r_[nyquist_share(real), nyquist_share(fake)])
    assert auc > 0.95


def band_power(images, low, high):
    """Mean spectral power of the greyscale images between two radial frequencies (cycles/px)."""
    grey = images.mean(-1)
    power = np.abs(np.fft.fft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    f = np.fft.fftfreq(grey.shape[1])
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    return power[:, (radius >= low) & (radius < high)].mean()


def test_classes_have_the_same_detail_and_differ_only_near_nyquist(synthetic):
    """Edges and features (up to 1/4 cycle per pixel) carry the same power in both classes."""
    real, fake = load(synthetic, "real"), load(synthetic, "fake")
    for low, high in ((0.02, 0.08), (0.08, 0.25)):
        ratio = band_power(fake, low, high) / band_power(real, low, high)
        assert 0.7 < ratio < 1.3, f"band {low}-{high}: fake/real power {ratio:.2f}"
    assert band_power(fake, 0.45, 0.71) > 2 * band_power(real, 0.45, 0.71)


@pytest.mark.parametrize("gain", [0.0, 0.1])
def test_upconv_of_a_constant_is_the_checkerboard_of_its_phase_gains(gain):
    out = upconv2x(np.full((4, 4, 3), 0.5, np.float32), phase_gain=gain)
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[0::2, 0::2], 0.5 * (1 + gain) ** 2, rtol=1e-6)
    np.testing.assert_allclose(out[0::2, 1::2], 0.5 * (1 + gain) * (1 - gain), rtol=1e-6)
    np.testing.assert_allclose(out[1::2, 1::2], 0.5 * (1 - gain) ** 2, rtol=1e-6)
    assert out.mean() == pytest.approx(0.5, rel=1e-6)
