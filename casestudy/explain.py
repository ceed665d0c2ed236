"""Explain the detector: Grad-CAM heat maps with the grad-cam package.

Book chapter 06_gradcam. A CAM shows where a convolutional block's evidence for a class lies.
The target is the deepest block whose map still has at least MIN_CELLS x MIN_CELLS cells for
the run's image size (layer4 from 97 px: 7x7 at 224 px; layer3 or layer2 on small images, where
layer4's map is 1x1 or 2x2 and would normalise to nothing). Every figure names the layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from casestudy import feed, plots
from casestudy.config import RunConfig
from casestudy.data import CLASS_NAMES
from casestudy.evaluate import predict
from casestudy.runs import RunFolder
from casestudy.runtime import pick_device

MIN_CELLS = 4  # a map of fewer cells a side says little about "where"
LAYERS = ("layer4", "layer3", "layer2", "layer1")  # deepest first


def map_side(image_size: int, layer: str) -> int:
    """Cells a side of a ResNet18 block's map: each stride-2 step halves the size, rounding up."""
    halvings = {"layer1": 2, "layer2": 3, "layer3": 4, "layer4": 5}[layer]
    side = image_size
    for _ in range(halvings):
        side = -(-side // 2)
    return side


def target_layer(image_size: int) -> str:
    """The deepest block whose map has at least MIN_CELLS cells a side at this image size."""
    return next((layer for layer in LAYERS if map_side(image_size, layer) >= MIN_CELLS), "layer1")


def grad_cam(model: nn.Module, images: torch.Tensor, classes: list[int], device: torch.device,
             batch_size: int = 32, layer: str | None = None) -> np.ndarray:
    """Return Grad-CAM maps (N, H, W) in [0, 1] of uint8 images (N, 3, H, W) for `classes`.

    The target is the last block of `layer` (default: target_layer of the image size). The CAM
    object is a context manager: its hooks are removed even when a batch fails.
    """
    model.eval()
    maps = []
    layer = layer or target_layer(images.shape[-1])
    with GradCAM(model=model, target_layers=[getattr(model, layer)[-1]]) as cam:
        for i, (x, _) in enumerate(feed.in_order(images, batch_size, device)):
            targets = [ClassifierOutputTarget(c) for c in classes[i * batch_size : (i + 1) * batch_size]]
            maps.append(cam(input_tensor=x, targets=targets))
    return np.concatenate(maps) if maps else np.zeros((0, *images.shape[-2:]), np.float32)


def overlay(image: torch.Tensor, cam: np.ndarray) -> np.ndarray:
    """Blend a CAM over its (3, H, W) uint8 image: (H, W, 3) uint8."""
    rgb = image.permute(1, 2, 0).numpy().astype(np.float32) / 255
    return show_cam_on_image(rgb, cam, use_rgb=True, image_weight=0.55)


def pick_examples(labels: np.ndarray, pred: np.ndarray, per_group: int, seed: int) -> dict:
    """Choose up to `per_group` images of each (true class, correct or wrong) group."""
    rng = np.random.default_rng(seed)
    groups = {}
    for label in (0, 1):
        for correct in (True, False):
            idx = np.flatnonzero((labels == label) & ((pred == labels) == correct))
            name = f"{CLASS_NAMES[label]}, {'correct' if correct else 'wrong'}"
            groups[name] = np.sort(rng.choice(idx, min(per_group, len(idx)), replace=False))
    return groups


def plot_examples(images, cams, p_fake, groups: dict, path: Path, title: str) -> Path:
    cols = max(1, max(len(v) for v in groups.values()))
    fig, axes = plots.plt.subplots(len(groups), cols, figsize=(2.1 * cols, 2.3 * len(groups)),
                                   squeeze=False)
    for row, (name, idx) in enumerate(groups.items()):
        for col in range(cols):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(idx):
                i = idx[col]
                ax.imshow(overlay(images[i], cams[i]))
                ax.set_title(f"p(fake)={p_fake[i]:.2f}", fontsize=8)
        axes[row][0].text(-0.1, 0.5, name if len(idx) else f"{name}: none", rotation=90,
                          transform=axes[row][0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return plots.save(fig, path)


def plot_mean_cams(cams: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    fig, axes = plots.plt.subplots(1, 2, figsize=(7, 3.4))
    for label, ax in zip((0, 1), axes):
        mask = labels == label
        mean = cams[mask].mean(0) if mask.any() else np.zeros(cams.shape[1:])
        shown = ax.imshow(mean, cmap="jet", vmin=0, vmax=1)
        ax.set_title(f"mean CAM, {CLASS_NAMES[label]} (n={mask.sum()})", fontsize=9)
        ax.axis("off")
    fig.colorbar(shown, ax=axes, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return plots.save(fig, path)


def run_gradcam(config: RunConfig, progress: bool = True) -> list[Path]:
    """Write Grad-CAM overlays and per-class mean CAMs of the test split into figures/."""
    run = RunFolder.of(config)
    config = run.trained_config(config)
    device = pick_device(config.device)
    model, _ = run.load_model(config, device)
    [(images, labels, _)] = run.load_images(config, "test", progress=progress)
    labels = labels.numpy()
    p_fake = predict(model, images, device)
    pred = (p_fake >= 0.5).astype(int)
    groups = pick_examples(labels, pred, config.gradcam_per_group, config.seed)
    chosen = np.concatenate(list(groups.values())).astype(int)
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(len(images), min(config.gradcam_max_mean, len(images)), False))
    todo = np.union1d(chosen, sample)
    cams = np.zeros((len(images), *images.shape[-2:]), np.float32)
    cams[todo] = grad_cam(model, images[todo], pred[todo].tolist(), device)  # explain the decision
    tag = plots.data_tag(config.data)
    layer = target_layer(config.image_size)
    where = f"{layer}[-1], {map_side(config.image_size, layer)}x{map_side(config.image_size, layer)} cells"
    return [
        plot_examples(images, cams, p_fake, groups, run.figure("gradcam_examples.png"),
                      f"Grad-CAM of the predicted class at {where}, test split ({tag})"),
        plot_mean_cams(cams[sample], labels[sample], run.figure("gradcam_mean.png"),
                       f"Mean Grad-CAM per true class at {where} ({tag})"),
    ]
