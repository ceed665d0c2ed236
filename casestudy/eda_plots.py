"""The EDA figures (book chapter 02_eda): balance, colour, brightness, texture and spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from casestudy import data, plots
from casestudy.features import FEATURE_NAMES, grey, log_magnitude_spectrum, radial_frequencies
from casestudy.plots import plt

EMPTY_BIN = -11.99  # log10 of the floor (1e-12) that compute_features adds: no coefficient in the bin
COLOURS = {"real": "tab:blue", "fake": "tab:red"}
LOG_SCALE = {"laplacian_var"}  # heavy-tailed: shown as log10
FIGURES = [  # file, title, caption: the report shows them in this order
    ("eda_balance.png", "Class balance", "usable images per class and split"),
    ("eda_colour.png", "Mean colour", "per-image mean R, G, B per class (histogram and KDE)"),
    ("eda_brightness.png", "Brightness", "per-image mean luma 0.299 R + 0.587 G + 0.114 B"),
    ("eda_texture.png", "Texture", "mean FFT magnitude (the original measure) and Laplacian variance"),
    ("eda_spectra_examples.png", "Example spectra", "log magnitude spectrum, DC in the centre"),
    ("eda_power_spectrum.png", "Radial power spectrum",
     "azimuthal average, mean and spread per class; where upsampling traces show"),
    ("eda_separability.png", "Separability", "ROC-AUC of each feature alone and of the spectrum baseline"),
]


def plot_all(table: pd.DataFrame, spectra: np.ndarray, summary: dict, config, folder: Path) -> None:
    """Write every eda_*.png of the run."""
    tag = plots.data_tag(config.data)
    plots.save(plot_balance(summary["counts"], tag), folder / "eda_balance.png")
    plots.save(plot_distributions(table, ["mean_r", "mean_g", "mean_b"], tag), folder / "eda_colour.png")
    plots.save(plot_distributions(table, ["luminance"], tag), folder / "eda_brightness.png")
    plots.save(plot_distributions(table, ["fft_magnitude", "laplacian_var"], tag),
               folder / "eda_texture.png")
    plots.save(plot_spectra_examples(table, tag), folder / "eda_spectra_examples.png")
    plots.save(plot_power_spectrum(spectra, table.label.to_numpy(), tag), folder / "eda_power_spectrum.png")
    plots.save(plot_separability(summary, tag), folder / "eda_separability.png")


def plot_balance(counts: dict, tag: str):
    table = pd.DataFrame(counts).T[data.CLASS_NAMES]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    table.plot.bar(ax=ax, color=[COLOURS[c] for c in table.columns], rot=0)
    for bars in ax.containers:
        ax.bar_label(bars, fontsize=8)
    ax.set(ylabel="images", title=f"Is the data balanced?\n{tag}")
    return fig


def plot_distributions(table: pd.DataFrame, features: list[str], tag: str):
    """Histogram and Gaussian KDE of each feature, real against fake."""
    fig, axes = plt.subplots(1, len(features), figsize=(4.2 * len(features), 3.2), squeeze=False)
    for ax, feature in zip(axes[0], features):
        for name, label in data.LABELS.items():
            values = table.loc[table.label == label, feature].to_numpy(np.float64)
            if feature in LOG_SCALE and (values > 0).all():
                values = np.log10(values)
            ax.hist(values, bins=30, density=True, alpha=0.35, color=COLOURS[name], label=name)
            if values.std() > 0:
                grid = np.linspace(values.min(), values.max(), 200)
                ax.plot(grid, stats.gaussian_kde(values)(grid), color=COLOURS[name])
        log = feature in LOG_SCALE and (table[feature] > 0).all()
        ax.set(xlabel=("log10 " if log else "") + FEATURE_NAMES[feature], ylabel="density")
        ax.legend()
    fig.suptitle(tag, fontsize=9)
    return fig


def plot_spectra_examples(table: pd.DataFrame, tag: str, per_class: int = 3):
    """A few images of each class above their log magnitude spectra."""
    fig, axes = plt.subplots(4, per_class, figsize=(2.4 * per_class, 9.6), squeeze=False)
    for row, (name, label) in enumerate(data.LABELS.items()):
        paths = table.loc[table.label == label, "path"].head(per_class)
        for col, path in enumerate(paths):
            rgb = np.asarray(data.read_rgb(path))
            axes[2 * row, col].imshow(rgb)
            axes[2 * row, col].set_title(name, color=COLOURS[name], fontsize=9)
            axes[2 * row + 1, col].imshow(log_magnitude_spectrum(grey(rgb)), cmap="magma")
            axes[2 * row + 1, col].set_title(f"{name}: log|FFT|", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(tag, fontsize=9)
    return fig


def plot_power_spectrum(spectra: np.ndarray, y: np.ndarray, tag: str):
    """Mean +- sd of the log radial power per class, and the fake - real difference."""
    # A radial bin that holds no coefficient at these images' size (small images have fewer
    # distinct frequencies than bins) is left out, not drawn as a spike down to the log's floor.
    held = ~(spectra <= EMPTY_BIN).all(0)
    freq, spectra = radial_frequencies()[held], spectra[:, held]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, label in data.LABELS.items():
        s = spectra[y == label]
        mean, sd = s.mean(0), s.std(0)
        left.plot(freq, mean, color=COLOURS[name], label=f"{name} (n={len(s)})")
        left.fill_between(freq, mean - sd, mean + sd, color=COLOURS[name], alpha=0.2)
    left.set(xlabel="frequency (cycles per pixel)", ylabel="log10 power", title="mean +- sd")
    left.legend()
    real, fake = spectra[y == 0], spectra[y == 1]
    diff = fake.mean(0) - real.mean(0)
    se = np.sqrt(real.var(0, ddof=1) / len(real) + fake.var(0, ddof=1) / len(fake))
    right.plot(freq, diff, color="k")
    right.fill_between(freq, diff - 2 * se, diff + 2 * se, color="grey", alpha=0.3, label="+- 2 SE")
    right.axhline(0, color="grey", lw=0.8)
    right.set(xlabel="frequency (cycles per pixel)", ylabel="log10 power, fake - real",
              title="difference of the means")
    right.legend()
    for ax in (left, right):
        ax.axvline(0.5, color="grey", ls=":", lw=0.8)  # Nyquist; beyond it, the corners
    fig.suptitle(tag, fontsize=9)
    return fig


def plot_separability(summary: dict, tag: str):
    """ROC-AUC of each scalar feature on its own, and of the spectrum baseline (cross-validated)."""
    names = [FEATURE_NAMES[f] for f in summary["features"]] + ["spectrum baseline (LR, CV)"]
    aucs = [f["auc"] for f in summary["features"].values()] + [summary["baseline"]["auc"]]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    colours = ["tab:grey"] * (len(names) - 1) + ["tab:green"]
    ax.barh(names, aucs, color=colours)
    ax.axvline(0.5, color="k", lw=0.8)
    ax.set(xlim=(0, 1), xlabel="ROC-AUC (0.5 = chance; below 0.5 the feature is lower for fakes)",
           title=f"How well does one feature separate real from fake?\n{tag}")
    ax.invert_yaxis()
    return fig
