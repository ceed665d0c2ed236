"""Embed the test images: 512-d penultimate features, mapped to 2-D with t-SNE.

Book chapter 05_tsne. t-SNE keeps neighbours together but distorts distances and
cluster sizes: read the figure for "are there clusters", not "how far apart".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import nn

from casestudy import CaseStudyError, feed, files, plots
from casestudy.config import RunConfig
from casestudy.data import CLASS_NAMES
from casestudy.model import penultimate
from casestudy.runs import RunFolder
from casestudy.runtime import autocast, pick_device


@torch.inference_mode()
def extract_embeddings(model: nn.Module, images: torch.Tensor, device: torch.device,
                       batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Return the embeddings (N, 512) and p(fake) (N,) of uint8 images (N, 3, H, W)."""
    model.eval()
    feats, probs = [], []
    for x, _ in feed.in_order(images, batch_size, device):
        with autocast(device):
            z = penultimate(model, x)
            logits = model.fc(z)
        feats.append(z.float().cpu())
        probs.append(torch.softmax(logits.float(), 1)[:, 1].cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def tsne_2d(embeddings: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """Map (N, D) embeddings to (N, 2): PCA to 50 dimensions first, then t-SNE."""
    n = len(embeddings)
    if n < 5:
        raise CaseStudyError(f"t-SNE needs at least 5 images, the test split has {n}")
    x = embeddings
    if x.shape[1] > 50 and n > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (n - 1) / 3)  # t-SNE needs perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(x)


def plot_tsne(points: np.ndarray, labels: np.ndarray, p_fake: np.ndarray, path: Path,
              title: str) -> Path:
    """Scatter the 2-D map coloured by true label; misclassified images get a black cross."""
    fig, ax = plots.plt.subplots(figsize=(6, 5))
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        mask = labels == label
        ax.scatter(*points[mask].T, s=14, c=colour, alpha=0.7,
                   label=f"{CLASS_NAMES[label]} (n={mask.sum()})")
    wrong = (p_fake >= 0.5).astype(int) != labels
    ax.scatter(*points[wrong].T, s=40, marker="x", c="black",
               label=f"misclassified (n={wrong.sum()})")
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(loc="best", fontsize=8)
    return plots.save(fig, path)


def run_tsne(config: RunConfig, progress: bool = True) -> Path:
    """Embed the test split of runs/<name>, save embeddings.npz and figures/tsne.png."""
    run = RunFolder.of(config)
    config = run.trained_config(config)
    device = pick_device(config.device)
    model, _ = run.load_model(config, device)
    [(images, labels, paths)] = run.load_images(config, "test", progress=progress)
    if len(images) > config.tsne_max_points:  # a seeded subsample keeps t-SNE quick
        keep = np.sort(np.random.default_rng(config.seed).choice(len(images),
                                                                 config.tsne_max_points, False))
        images, labels, paths = images[keep], labels[keep], [paths[i] for i in keep]
    embeddings, p_fake = extract_embeddings(model, images, device)
    points = tsne_2d(embeddings, config.tsne_perplexity, config.seed)
    labels = labels.numpy()
    out = run.embeddings
    with files.atomic_write(out) as file:
        np.savez_compressed(file, embeddings=embeddings, tsne=points, labels=labels, p_fake=p_fake,
                            paths=np.array(paths))
    plot_tsne(points, labels, p_fake, run.figure("tsne.png"),
              f"t-SNE of ResNet18 embeddings, test split\n({plots.data_tag(config.data)})")
    return out
