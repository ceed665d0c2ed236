"""Hidden tests of 06_gradcam (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against the grad-cam package."""

import numpy as np


def given_arrays():
    rng = np.random.default_rng(7)
    a = np.zeros((1, 2, 2, 2))
    a[0, 0], a[0, 1] = [[1, 2], [3, 4]], [[4, 0], [0, 0]]
    g = np.zeros_like(a)
    g[0, 0], g[0, 1] = 1.0, -1.0
    return [(a, g), (rng.normal(size=(3, 8, 4, 5)), rng.normal(size=(3, 8, 4, 5)))]


def given_model_batch():
    """A seeded model and batch, and layer4's activations and class-score gradients for them."""
    import torch

    from casestudy.model import build_model

    torch.manual_seed(3)
    net = build_model().eval()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    classes = [0, 1, 1, 0]
    saved = {}
    block = net.layer4[-1]

    def keep(module, inputs, output):
        saved["a"] = output.detach()
        output.register_hook(lambda grad: saved.setdefault("g", grad.detach()))

    handle = block.register_forward_hook(keep)
    try:
        logits = net(x)
        net.zero_grad()
        logits[torch.arange(4), torch.tensor(classes)].sum().backward()
    finally:
        handle.remove()
    return net, x, classes, saved["a"].numpy(), saved["g"].numpy()


def run_test_cam_from():
    got = [np.asarray(cam_from(a, g), dtype=float) for a, g in given_arrays()]
    _, _, _, a, g = given_model_batch()
    return {"arrays": got, "model": np.asarray(cam_from(a, g), dtype=float)}


def check_test_cam_from(got):
    import cv2
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    for (a, g), cam in zip(given_arrays(), got["arrays"], strict=True):
        raw = np.maximum((g.mean(axis=(2, 3))[:, :, None, None] * a).sum(axis=1), 0)
        want = (raw - raw.min(axis=(1, 2), keepdims=True))
        want = want / (1e-7 + want.max(axis=(1, 2), keepdims=True))
        assert cam.shape == want.shape, f"{a.shape} activations gave maps of shape {cam.shape}, expected {want.shape}"
        assert np.allclose(cam, want, atol=1e-5), \
            "channel weights = mean gradient over positions; sum of weighted activations; ReLU; scaled to [0, 1]"
    net, x, classes, _, _ = given_model_batch()
    with GradCAM(model=net, target_layers=[net.layer4[-1]]) as gradcam:
        want = gradcam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    maps = np.stack([cv2.resize(m.astype(np.float32), (64, 64)) for m in got["model"]])
    maps -= maps.min(axis=(1, 2), keepdims=True)
    maps /= 1e-7 + maps.max(axis=(1, 2), keepdims=True)
    assert np.allclose(maps, want, atol=1e-4), "on a real ResNet18 your maps differ from the grad-cam package's"
