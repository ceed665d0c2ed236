import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from casestudy import CaseStudyError
from casestudy.evaluate import compute_metrics, perturb

LABELS = np.array([0, 0, 0, 1, 1, 1, 1])  # real = 0, fake = 1
P_FAKE = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.3, 0.7])


def test_metrics_by_hand_with_fake_as_positive():
    m = compute_metrics(LABELS, P_FAKE)
    # predictions 0 1 0 | 1 1 0 1: 3 fakes caught, 1 missed, 1 real called fake, 2 real passed
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["roc_auc"] == pytest.approx(11 / 12)  # 11 of 12 (fake, real) pairs ranked right


def test_positive_means_fake_not_real():
    labels = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0.9, 0.1, 0.9, 0.9, 0.9, 0.1])  # fakes: 3 of 4 caught; 1 of 2 real flagged
    m = compute_metrics(labels, p)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert skm.recall_score(labels, p >= 0.5, pos_label=0) == pytest.approx(1 / 2)  # real's recall


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels, p = rng.integers(0, 2, 50), rng.random(50)
    m = compute_metrics(labels, p)
    assert m["f1"] == pytest.approx(skm.f1_score(labels, p >= 0.5))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, p))


def test_one_class_only_has_no_auc():
    assert compute_metrics(np.ones(4, int), np.full(4, 0.9))["roc_auc"] is None


@pytest.fixture
def batch():
    return torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("spec", ["jpeg:30", "downscale:0.5", "blur:1.5"])
def test_perturbations_keep_the_shape_and_change_the_pixels(batch, spec):
    out = perturb(batch, spec)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert (out.float() - batch.float()).abs().mean() > 5


@pytest.mark.parametrize("spec", ["jpeg:95", "downscale:0.5", "blur:2.0"])
def test_perturbations_leave_a_flat_image_flat(spec):
    flat = torch.full((1, 3, 32, 32), 120, dtype=torch.uint8)
    assert (perturb(flat, spec).int() - 120).abs().max() <= 1


@pytest.mark.parametrize("spec", ["sharpen:1", "jpeg:high"])
def test_bad_perturbations_are_named(batch, spec):
    with pytest.raises(CaseStudyError):
        perturb(batch, spec)
