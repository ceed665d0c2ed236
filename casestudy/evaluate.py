"""Evaluate the detector: metrics with "positive" = fake, figures, and robustness checks.

Book chapter 04_evaluate.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn import metrics as skm
from torch import nn
from tqdm import tqdm

from casestudy import CaseStudyError, data, feed, files, plots
from casestudy.config import RunConfig
from casestudy.data import CLASS_NAMES
from casestudy.runs import RunFolder
from casestudy.runtime import autocast, pick_device


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64,
            progress: bool = False) -> np.ndarray:
    """Return p(fake) for each image: (N, 3, H, W) uint8 -> (N,) float."""
    model.eval()
    out = []
    for x, _ in tqdm(feed.in_order(images, batch_size, device), desc="predict", unit="batch",
                     total=-(-len(images) // batch_size), disable=not progress):
        with autocast(device):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
    return torch.cat(out).numpy()


def compute_metrics(labels: np.ndarray, p_fake: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1 (positive = fake = 1), ROC-AUC and confusion counts."""
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(p_fake) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, pred, labels=[0, 1]).ravel()
    both = len(np.unique(labels)) == 2
    return {
        "n": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, pred)),
        "precision": float(skm.precision_score(labels, pred, pos_label=1, zero_division=0)),
        "recall": float(skm.recall_score(labels, pred, pos_label=1, zero_division=0)),
        "f1": float(skm.f1_score(labels, pred, pos_label=1, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, p_fake)) if both else None,
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "threshold": threshold,
    }


# ---------------------------------------------------------------- perturbations


def perturb(images: torch.Tensor, spec: str) -> torch.Tensor:
    """Apply one named perturbation to uint8 images: "jpeg:Q", "downscale:F" or "blur:SIGMA"."""
    kind, _, value = spec.partition(":")
    try:
        amount = float(value)
    except ValueError:
        raise CaseStudyError(f"perturbation {spec!r}: write jpeg:50, downscale:0.5 or blur:1.0") from None
    if kind == "jpeg":
        return torch.stack([jpeg(img, int(amount)) for img in images])
    x = images.float()
    if kind == "downscale":
        size = images.shape[-1]
        small = F.interpolate(x, scale_factor=amount, mode="bilinear", antialias=True)
        x = F.interpolate(small, size=(size, size), mode="bilinear")
    elif kind == "blur":
        radius = max(1, int(3 * amount))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(t**2) / (2 * amount**2))
        kernel /= kernel.sum()
        x = F.pad(x, (radius,) * 4, mode="reflect")
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    else:
        raise CaseStudyError(f"unknown perturbation {kind!r}: use jpeg, downscale or blur")
    return x.round().clamp(0, 255).to(torch.uint8)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Re-encode one (3, H, W) uint8 image as JPEG at `quality` and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)


# ---------------------------------------------------------------- figures


def plot_confusion(labels, p_fake, path: Path, title: str) -> Path:
    fig, ax = plots.plt.subplots(figsize=(4.2, 3.8))
    skm.ConfusionMatrixDisplay.from_predictions(labels, (p_fake >= 0.5).astype(int), labels=[0, 1],
                                                display_labels=CLASS_NAMES, ax=ax,
                                                colorbar=False, cmap="Blues")
    ax.set_title(title, fontsize=9)
    return plots.save(fig, path)


def plot_roc(labels, p_fake, path: Path, title: str) -> Path:
    fig, ax = plots.plt.subplots(figsize=(4.2, 3.8))
    skm.RocCurveDisplay.from_predictions(labels, p_fake, pos_label=1, name="ResNet18", ax=ax)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate (real called fake)",
           ylabel="true positive rate (fakes caught)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    return plots.save(fig, path)


def plot_robustness(results: dict, path: Path, title: str) -> Path:
    names = list(results)
    fig, ax = plots.plt.subplots(figsize=(6, 3.5))
    acc = [results[n]["accuracy"] for n in names]
    auc = [results[n]["roc_auc"] or 0 for n in names]
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, acc, 0.4, label="accuracy")
    ax.bar(pos + 0.2, auc, 0.4, label="ROC-AUC")
    ax.set_xticks(pos, names, rotation=20)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set(ylim=(0, 1.05), title=title)
    ax.legend()
    return plots.save(fig, path)


# ---------------------------------------------------------------- the stage


def evaluate(config: RunConfig, eval_data: str | None = None, progress: bool = True) -> dict:
    """Evaluate runs/<name>/checkpoint.pt on the test split (or on another dataset).

    Writes metrics.json, predictions.csv and figures into the run folder; another
    dataset's results go into runs/<name>/eval/<dataset>/.
    """
    run = RunFolder.of(config)
    config = run.trained_config(config)
    device = pick_device(config.device)
    model, _ = run.load_model(config, device)
    source = eval_data or config.data
    if eval_data is None:  # the run's own test split, as it was split when training started
        [(images, labels, paths)] = run.load_images(config, "test", progress=progress)
        split, out_dir = "test", run.path
    else:  # another dataset: every usable image
        [(images, labels, paths)] = data.load_for_run(config, "all", source=source, progress=progress)
        split, out_dir = "all", run.eval_dir(data.dataset_name(eval_data))
    labels = labels.numpy()
    p_fake = predict(model, images, device, progress=progress)
    result = compute_metrics(labels, p_fake)
    result.update({"dataset": data.dataset_name(source), "split": split})
    tag = plots.data_tag(source)
    figures = out_dir / "figures"
    plot_confusion(labels, p_fake, figures / "confusion_matrix.png",
                   f"Confusion matrix, {split} split\n({tag})")
    if result["roc_auc"] is not None:
        plot_roc(labels, p_fake, figures / "roc.png", f"ROC, {split} split ({tag})")
    robustness = {"clean": result}
    for spec in tqdm(config.perturbations, desc="perturbations", disable=not progress):
        robustness[spec] = compute_metrics(labels, predict(model, perturb(images, spec), device))
    if len(robustness) > 1:
        plot_robustness(robustness, figures / "robustness.png",
                        f"Test images perturbed ({tag})")
    result["perturbations"] = {k: v for k, v in robustness.items() if k != "clean"}
    write_outputs(out_dir, result, paths, labels, p_fake)
    return result


def run_evaluation(config: RunConfig, progress: bool = True) -> list[dict]:
    """Evaluate the run on its test split, then on every dataset of eval_data (`casestudy evaluate`)."""
    for other in config.eval_data:  # before any work: a wrong folder replaces no result
        if not all((Path(other) / label).is_dir() for label in CLASS_NAMES):
            raise CaseStudyError(f"--eval-data {other}: not a folder with {' and '.join(CLASS_NAMES)}/ "
                                 f"below it")
    return [evaluate(config, progress=progress),
            *[evaluate(config, eval_data=other, progress=progress) for other in config.eval_data]]


def write_outputs(out_dir: Path, result: dict, paths, labels, p_fake) -> None:
    """predictions.csv, then metrics.json: metrics.json is there only once everything is."""
    out = RunFolder(out_dir)
    files.write_csv(pd.DataFrame({"path": paths, "label": labels, "p_fake": p_fake}), out.predictions)
    files.write_json(result, out.metrics)


def load_metrics(run_dir: Path) -> dict:
    path = RunFolder(Path(run_dir)).metrics
    if not path.is_file():
        raise CaseStudyError(f"no metrics at {path}: run `casestudy evaluate` first")
    return json.loads(path.read_text())
