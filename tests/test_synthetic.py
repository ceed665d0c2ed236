"""The synthetic tier: no single number gives a fake away, the spectrum a little, the trace a lot."""

import hashlib

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from casestudy import CaseStudyError, eda
from casestudy.synthetic import RED_GREEN, main, make_synthetic

SCALARS = ["mean_r", "mean_g", "mean_b", "luminance", "fft_magnitude", "laplacian_var"]


def digest(folder):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.png")))).hexdigest()


def load(folder, label):
    files = sorted((folder / label).glob("*.png"))
    return np.stack([np.asarray(Image.open(f)) for f in files])


def labelled(folder):
    real, fake = load(folder, "real"), load(folder, "fake")
    return np.concatenate([real, fake]), np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), per_class=150, size=32, seed=3, progress=False)


@pytest.fixture(scope="module")
def features(synthetic):
    images, y = labelled(synthetic)
    measured = [eda.image_features(img) for img in images]
    spectra = np.log10(np.stack([m.pop("spectrum") for m in measured]) + 1e-12)
    return measured, spectra, y


def stripes(images):
    """Signed red-against-green stripe strength of each image: even rows minus odd rows."""
    colour = np.asarray(images, np.float32) @ RED_GREEN  # (N, H, W)
    return colour[:, 0::2].mean((1, 2)) - colour[:, 1::2].mean((1, 2))


def checker(images):
    """Strength of a period-2 checkerboard in any colour, per image."""
    x = np.asarray(images, np.float32)
    sign = np.where(np.indices(x.shape[1:3]).sum(0) % 2 == 0, 1.0, -1.0)[None, :, :, None]
    return np.abs((x * sign).mean((1, 2))).sum(-1)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = make_synthetic(tmp_path / "first", per_class=6, size=32, seed=3, progress=False)
    again = make_synthetic(tmp_path / "again", per_class=6, size=32, seed=3, progress=False)
    other = make_synthetic(tmp_path / "other", per_class=6, size=32, seed=4, progress=False)
    assert digest(again) == digest(first)
    assert digest(other) != digest(first)


def test_folder_says_it_is_synthetic_and_which_generator(synthetic):
    readme = (synthetic / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "generator A" in readme
    assert len(list((synthetic / "real").glob("*.png"))) == 150


@pytest.mark.parametrize("name", SCALARS)
def test_no_single_number_gives_the_class_away(features, name):
    measured, _, y = features
    auc = roc_auc_score(y, [m[name] for m in measured])
    assert 0.35 < auc < 0.65, f"{name} separates the classes on its own (AUC {auc:.2f})"


def test_the_spectrum_baseline_is_better_than_chance_but_not_perfect(features):
    _, spectra, y = features
    accuracy = eda.spectrum_baseline(spectra, y)["accuracy"]
    assert 0.6 < accuracy < 0.95


def test_the_sign_of_the_colour_stripes_is_what_a_cnn_can_learn(synthetic):
    """The trace is there (AUC near 1 for the right statistic), while no scalar of the EDA sees it."""
    images, y = labelled(synthetic)
    assert roc_auc_score(y, stripes(images)) > 0.9


def test_generator_b_leaves_another_trace(tmp_path, synthetic):
    other = make_synthetic(tmp_path / "b", per_class=60, size=32, seed=3, progress=False, generator="B")
    assert "generator B" in (other / "README.txt").read_text()
    def pngs(folder):
        return {p.read_bytes() for p in folder.rglob("*.png")}

    assert not pngs(other) & pngs(synthetic)
    fake_a, fake_b, real_b = load(synthetic, "fake")[:60], load(other, "fake"), load(other, "real")
    assert np.median(stripes(fake_a)) > 0
    assert abs(np.median(stripes(fake_b))) < 0.2 * np.median(stripes(fake_a))
    assert np.median(checker(fake_b)) > 3 * np.median(checker(fake_a))
    assert np.median(stripes(real_b)) < 0  # B's real images come from the same camera as A's


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(CaseStudyError, match="generator"):
        make_synthetic(tmp_path, per_class=4, size=16, generator="C")
    with pytest.raises(CaseStudyError, match="even"):
        make_synthetic(tmp_path, per_class=4, size=17)


def test_module_command_writes_a_generator_b_set(tmp_path, capsys):
    assert main([str(tmp_path / "b"), "--per-class", "4", "--size", "16"]) == 0
    assert len(list((tmp_path / "b" / "fake").glob("*.png"))) == 4
    assert "generator B" in capsys.readouterr().out
    assert main([str(tmp_path / "c"), "--per-class", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
