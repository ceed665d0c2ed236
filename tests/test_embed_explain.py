import numpy as np
import pytest
import torch

from casestudy.embed import extract_embeddings, tsne_2d
from casestudy.evaluate import predict
from casestudy.explain import grad_cam, pick_examples
from casestudy.model import build_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("none").eval()


@pytest.fixture
def batch():
    return torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1))


def test_embeddings_are_what_the_head_classifies(model, batch):
    emb, p_fake = extract_embeddings(model, batch, CPU, batch_size=4)
    assert emb.shape == (10, 512)
    np.testing.assert_allclose(p_fake, predict(model, batch, CPU), atol=1e-5)
    logits = model.fc(torch.from_numpy(emb))
    np.testing.assert_allclose(torch.softmax(logits, 1)[:, 1].detach().numpy(), p_fake, atol=1e-5)


def test_tsne_maps_to_2d_and_is_seeded():
    x = np.random.default_rng(0).normal(size=(60, 512)).astype(np.float32)
    x[30:] += 3  # two groups
    a, b = tsne_2d(x, seed=1), tsne_2d(x, seed=1)
    assert a.shape == (60, 2)
    np.testing.assert_allclose(a, b)
    centre = lambda pts: pts.mean(0)  # noqa: E731
    spread = np.linalg.norm(centre(a[:30]) - centre(a[30:]))
    assert spread > np.linalg.norm(a[:30] - centre(a[:30]), axis=1).mean()


def hooks(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
               for m in model.modules())


def test_grad_cam_maps_are_per_image_in_range_and_leave_no_hooks(model, batch):
    cams = grad_cam(model, batch, [1] * 10, CPU, batch_size=4)
    assert cams.shape == (10, 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1
    assert hooks(model) == 0


def test_grad_cam_removes_its_hooks_when_it_fails(model, batch, monkeypatch):
    import casestudy.explain as explain

    def broken(*args, **kwargs):
        assert hooks(model) > 0  # the CAM's hooks are in place here
        raise RuntimeError("boom")

    monkeypatch.setattr(explain, "ClassifierOutputTarget", broken)
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(model, batch, [0] * 10, CPU)
    assert hooks(model) == 0


def test_examples_are_grouped_by_class_and_correctness():
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 1, 0, 1, 0, 1])
    groups = pick_examples(labels, pred, per_group=5, seed=0)
    assert sorted(groups["real, correct"]) == [0, 2]
    assert list(groups["real, wrong"]) == [1]
    assert sorted(groups["fake, correct"]) == [3, 5]
    assert list(groups["fake, wrong"]) == [4]


@pytest.mark.parametrize("size, layer, side", [(32, "layer2", 4), (48, "layer2", 6), (64, "layer3", 4),
                                               (224, "layer4", 7)])
def test_the_cam_layer_keeps_at_least_4x4_cells(size, layer, side):
    from casestudy.explain import map_side, target_layer

    assert (target_layer(size), map_side(size, target_layer(size))) == (layer, side)


def test_grad_cam_maps_have_structure_on_small_images(model, batch):
    """At 32 px layer4 is 1x1: every map would be blank. The chosen layer gives maps with detail."""
    cams = grad_cam(model, batch, [1] * 10, CPU)
    assert (cams.reshape(10, -1).std(1) > 0.05).mean() >= 0.8, cams.reshape(10, -1).std(1)
    assert cams.mean(0).std() > 0.01  # the mean map is not blank either
    blank = grad_cam(model, batch, [1] * 10, CPU, layer="layer4")
    assert blank.reshape(10, -1).std(1).max() < 1e-6  # what a 1x1 map gives: nothing to see
