"""Explore the data: colour, brightness, texture and spectra of real and fake faces.

Book chapter 02_eda. Every feature is computed on whole arrays (no loop over pixels);
functions take one image (H, W, 3) or a batch (N, H, W, 3) alike. The statistics say
how far each feature separates the classes on its own, and a logistic regression on
the radial power spectrum gives a simple baseline for the CNN.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft, sparse, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from casestudy import CaseStudyError, data, files

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B
MIN_SIDE = 3  # pixels: the 4-neighbour Laplacian has no interior pixel below 3 x 3
RADIAL_BINS = 64  # bins from DC to the Nyquist frequency; the corners add about 27 more
SCALARS = ["width", "height", "aspect", "mean_r", "mean_g", "mean_b", "luminance",
           "fft_magnitude", "laplacian_var"]
FEATURE_NAMES = {"width": "width (px)", "height": "height (px)", "aspect": "aspect ratio",
                 "mean_r": "mean red", "mean_g": "mean green", "mean_b": "mean blue",
                 "luminance": "brightness (luminance)", "fft_magnitude": "mean FFT magnitude",
                 "laplacian_var": "sharpness (Laplacian variance)"}


# ---------------------------------------------------------------- features


def mean_colour(rgb: np.ndarray) -> np.ndarray:
    """Return the mean R, G, B of (..., H, W, 3) images: (..., 3)."""
    rgb = np.asarray(rgb)
    return np.stack([rgb[..., c].mean(axis=(-2, -1), dtype=np.float64) for c in range(3)], axis=-1)


def grey(rgb: np.ndarray) -> np.ndarray:
    """Luminance 0.299 R + 0.587 G + 0.114 B of (..., H, W, 3) images: (..., H, W)."""
    return np.asarray(rgb, np.float32) @ LUMA.astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Mean luminance (brightness) of (..., H, W, 3) images: (...)."""
    return mean_colour(rgb) @ LUMA


def fft_magnitude(grey_img: np.ndarray) -> np.ndarray:
    """Mean |FFT| of (..., H, W) greyscale images, the original course's texture measure.

    A constant image of value c gives c (all of it in the DC term).
    """
    return np.abs(fft.fft2(grey_img, axes=(-2, -1))).mean(axis=(-2, -1))


def log_magnitude_spectrum(grey_img: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|) with the DC term in the centre, for showing a spectrum as an image."""
    return np.log1p(np.abs(fft.fftshift(fft.fft2(grey_img, axes=(-2, -1)), axes=(-2, -1))))


def laplacian_variance(grey_img: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian over the interior pixels (sharpness): (...)."""
    g = np.asarray(grey_img, np.float32)
    lap = (g[..., :-2, 1:-1] + g[..., 2:, 1:-1] + g[..., 1:-1, :-2] + g[..., 1:-1, 2:]
           - 4 * g[..., 1:-1, 1:-1])
    return lap.astype(np.float64).var(axis=(-2, -1))


@functools.lru_cache(maxsize=8)
def radial_bins(height: int, width: int, n_bins: int = RADIAL_BINS) -> np.ndarray:
    """Bin number of every FFT coefficient by its radial frequency: (H, W) int.

    Bin k holds frequencies nearest to k / (2 n_bins) cycles per pixel, so bin n_bins is
    the Nyquist frequency (0.5) and bins above it are the corners of the spectrum.
    """
    fy, fx = np.meshgrid(fft.fftfreq(height), fft.fftfreq(width), indexing="ij")
    bins = np.rint(np.hypot(fy, fx) * 2 * n_bins).astype(np.int64)
    bins.flags.writeable = False  # shared by every call (cached)
    return bins


def radial_frequencies(n_bins: int = RADIAL_BINS) -> np.ndarray:
    """Frequency (cycles per pixel) at the centre of each radial bin."""
    return np.arange(int(np.rint(np.sqrt(0.5) * 2 * n_bins)) + 1) / (2 * n_bins)


def radial_power_spectrum(grey_img: np.ndarray, n_bins: int = RADIAL_BINS) -> np.ndarray:
    """Azimuthally averaged power |FFT / (H W)|^2 of (..., H, W) images: (..., n_freq).

    Averaging over rings keeps frequencies apart (unlike the mean |FFT|), which is where
    the periodic traces of a generator's upsampling show.
    """
    h, w = grey_img.shape[-2:]
    return radial_average(np.abs(fft.fft2(np.asarray(grey_img, np.float32), axes=(-2, -1))) ** 2
                          / float(h * w) ** 2, n_bins)


@functools.lru_cache(maxsize=8)
def ring_means(height: int, width: int, n_bins: int = RADIAL_BINS) -> sparse.csr_matrix:
    """The (n_freq, H*W) matrix that averages FFT-ordered values over each ring (cached)."""
    bins = radial_bins(height, width, n_bins).ravel()
    n_freq = len(radial_frequencies(n_bins))
    counts = np.bincount(bins, minlength=n_freq)
    weights = 1.0 / counts[bins]
    return sparse.csr_matrix((weights, (bins, np.arange(bins.size))), shape=(n_freq, bins.size))


def radial_average(values: np.ndarray, n_bins: int = RADIAL_BINS) -> np.ndarray:
    """Average (..., H, W) values given in FFT order over rings of equal frequency: (..., n_freq)."""
    h, w = values.shape[-2:]
    flat = values.reshape(-1, h * w)
    means = np.asarray(ring_means(h, w, n_bins) @ flat.T.astype(np.float64)).T
    return means.reshape(*values.shape[:-2], means.shape[-1])


def too_small(height: int, width: int) -> str | None:
    """Why an image is too small to measure (the Laplacian needs an interior pixel); None if it is not."""
    if min(height, width) < MIN_SIDE:
        return (f"too small to measure ({width} x {height} px; the sharpness needs at least "
                f"{MIN_SIDE} x {MIN_SIDE})")
    return None


def image_features(rgb: np.ndarray) -> dict:
    """Every scalar feature of one (H, W, 3) image, and its radial power spectrum.

    Raises ValueError for an image under MIN_SIDE pixels high or wide.
    """
    g = grey(rgb)
    h, w = g.shape
    if too_small(h, w):
        raise ValueError(f"image {too_small(h, w)}")
    magnitude = np.abs(fft.fft2(g))  # one FFT for both spectral features
    colour = mean_colour(rgb)
    r, gr, b = colour.tolist()
    return {"width": w, "height": h, "aspect": w / h, "mean_r": r, "mean_g": gr, "mean_b": b,
            "luminance": float(colour @ LUMA), "fft_magnitude": float(magnitude.mean()),
            "laplacian_var": float(laplacian_variance(g)),
            "spectrum": radial_average(magnitude**2 / float(h * w) ** 2)}


def _features_of_file(path: str) -> dict:
    try:
        rgb = np.asarray(data.read_rgb(path))
        if too_small(*rgb.shape[:2]):
            return {"error": too_small(*rgb.shape[:2])}
        return image_features(rgb)
    except (OSError, ValueError, data.Image.DecompressionBombError) as err:
        return {"error": f"{type(err).__name__}: {err}"}


def compute_features(paths: list[str], progress: bool = True, workers: int = 0):
    """Decode each image at its own size and measure it, in parallel over all cores.

    Return (table of scalar features per readable image, log10 spectra (N, n_freq),
    {path: reason} of the files that could not be read or are too small to measure).
    """
    rows, spectra, skipped = [], [], {}
    measured = files.parallel_map(_features_of_file, paths, "eda features", "img", progress, workers)
    for path, feats in zip(paths, measured):
        if "error" in feats:
            skipped[path] = feats["error"]
            continue
        spectra.append(np.log10(feats.pop("spectrum") + 1e-12))
        rows.append({"path": path, **feats})
    n_freq = len(radial_frequencies())
    return pd.DataFrame(rows, columns=["path", *SCALARS]), np.array(spectra).reshape(-1, n_freq), skipped


# ---------------------------------------------------------------- statistics


def cohens_d(real: np.ndarray, fake: np.ndarray) -> float:
    """Effect size (mean fake - mean real) / pooled standard deviation."""
    n1, n2 = len(real), len(fake)
    pooled = np.sqrt(((n1 - 1) * np.var(real, ddof=1) + (n2 - 1) * np.var(fake, ddof=1)) / (n1 + n2 - 2))
    diff = float(np.mean(fake) - np.mean(real))
    if pooled == 0:
        return 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
    return diff / float(pooled)


def best_threshold(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Threshold and direction (+1: fake above it, -1: fake below) of highest accuracy on (x, y)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    # cutting after position i: fakes at or below, reals above, for every i at once
    fake_below = np.concatenate([[0], np.cumsum(ys)])
    real_below = np.concatenate([[0], np.cumsum(1 - ys)])
    acc_up = (real_below + (ys.sum() - fake_below)) / len(ys)  # fake above the cut
    acc_down = 1 - acc_up
    valid = np.concatenate([[True], xs[1:] != xs[:-1], [True]])  # cut only between distinct values
    cuts = np.concatenate([[xs[0] - 1], (xs[1:] + xs[:-1]) / 2, [xs[-1] + 1]])
    up, down = np.where(valid, acc_up, -1), np.where(valid, acc_down, -1)
    if up.max() >= down.max():
        return float(cuts[up.argmax()]), 1
    return float(cuts[down.argmax()]), -1


def threshold_accuracy(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Accuracy on a held-out half of a threshold chosen on the other half (stratified, seeded)."""
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    cut, sign = best_threshold(x_fit, y_fit)
    predicted = (sign * (x_test - cut) > 0).astype(int)
    return float((predicted == y_test).mean())


def compare_feature(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Two-sample KS test, Cohen's d, ROC-AUC and held-out threshold accuracy of one feature."""
    x, y = np.asarray(x, np.float64), np.asarray(y)
    real, fake = x[y == 0], x[y == 1]
    ks = stats.ks_2samp(real, fake)
    return {"real_mean": float(real.mean()), "real_sd": float(real.std(ddof=1)),
            "fake_mean": float(fake.mean()), "fake_sd": float(fake.std(ddof=1)),
            "ks_statistic": float(ks.statistic), "ks_p": float(ks.pvalue),
            "cohens_d": cohens_d(real, fake), "auc": float(roc_auc_score(y, x)),
            "threshold_accuracy": threshold_accuracy(x, y, seed)}


def spectrum_baseline(spectra: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 5) -> dict:
    """Cross-validated logistic regression on the log radial power spectrum (the baseline)."""
    y = np.asarray(y)
    folds = min(folds, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        raise CaseStudyError("the spectrum baseline needs at least 2 images of each class")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_validate(model, spectra, y, cv=cv, scoring=("accuracy", "roc_auc"))
    acc, auc = scores["test_accuracy"], scores["test_roc_auc"]
    return {"model": "standardise + logistic regression (C=0.1) on log10 radial power spectrum",
            "folds": folds, "accuracy": float(acc.mean()), "accuracy_sd": float(acc.std(ddof=1)),
            "auc": float(auc.mean()), "auc_sd": float(auc.std(ddof=1))}


# ---------------------------------------------------------------- the stage


def sample_images(index: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """A seeded sample of at most `per_class` usable images of each class, from every split."""
    used = index[index.split != ""]
    parts = [group.sample(n=min(per_class, len(group)) if per_class else len(group), random_state=seed)
             for _, group in used.groupby("label")]
    return pd.concat(parts).reset_index(drop=True)


def run_eda(config, progress: bool = True) -> dict:
    """Measure a sample of the run's dataset; write eda.csv, eda_summary.json and figures."""
    from casestudy import eda_plots

    started = time.perf_counter()
    index = data.load_index(data.prepare_for(config, progress=progress))
    sample = sample_images(index, config.eda_per_class, config.seed)
    table, spectra, skipped = compute_features(sample.path.tolist(), progress)
    table = sample[["path", "label", "split"]].merge(table, on="path")
    y = table.label.to_numpy()
    if np.bincount(y, minlength=2).min() < 2:
        raise CaseStudyError(f"EDA needs at least 2 readable images of each class in {config.data}")
    features = {name: compare_feature(table[name].to_numpy(), y, config.seed) for name in SCALARS}
    counts = data.summarize(index)
    summary = {
        "data": config.data, "per_class": config.eda_per_class, "seed": config.seed,
        "n_images": {name: int((y == label).sum()) for name, label in data.LABELS.items()},
        "counts": {split: {k: int(v) for k, v in row.items()} for split, row in counts.iterrows()},
        "excluded_in_index": int((index.status != "ok").sum()),
        "files": data.tally(index),  # found = used + skipped, per reason
        "skipped": skipped,
        "describe": {name: table[table.label == label][SCALARS].describe().to_dict()
                     for name, label in data.LABELS.items()},
        "features": features,
        "frequencies": radial_frequencies().tolist(),
        "spectrum": {name: {"mean": spectra[y == label].mean(0).tolist(),
                            "sd": spectra[y == label].std(0, ddof=1).tolist()}
                     for name, label in data.LABELS.items()},
        "baseline": spectrum_baseline(spectra, y, config.seed),
    }
    summary["answers"] = answers(summary)
    out = config.run_dir
    psd = pd.DataFrame(spectra, columns=[f"log10_power_f{f:.4f}" for f in radial_frequencies()])
    files.write_csv(pd.concat([table, psd], axis=1), out / "eda.csv")
    eda_plots.plot_all(table, spectra, summary, config, out / "figures")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    files.write_json(summary, out / "eda_summary.json")
    return summary


def load_summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "eda_summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------- the answers, in words


def effect_size_word(d: float) -> str:
    """Cohen's conventional names for |d|."""
    d = abs(d)
    return "negligible" if d < 0.2 else "small" if d < 0.5 else "medium" if d < 0.8 else "large"


def usefulness(accuracy: float) -> str:
    if accuracy < 0.6:
        return "not useful on its own"
    return "a weak cue on its own" if accuracy < 0.75 else "a strong cue on its own"


def evidence(f: dict) -> str:
    return (f"d = {f['cohens_d']:+.2f} ({effect_size_word(f['cohens_d'])}), KS p = {f['ks_p']:.2g}, "
            f"AUC {f['auc']:.2f}, held-out threshold accuracy {f['threshold_accuracy']:.2f}")


def answers(summary: dict) -> dict:
    """State each of the course's EDA questions' answer in one sentence with its evidence."""
    counts = pd.DataFrame(summary["counts"]).T
    total = counts.sum()
    worst = float((counts.min(axis=1) / counts.max(axis=1)).min())
    balanced = worst >= 0.9
    balance = (f"{'Yes' if balanced else 'No'}: {total['real']} real and {total['fake']} fake usable "
               f"images; the least even split has a minority/majority ratio of {worst:.2f}"
               f"{'' if balanced else ', so weight the classes or report balanced accuracy'}.")
    features, base = summary["features"], summary["baseline"]
    lum, mag = features["luminance"], features["fft_magnitude"]
    brightness = (f"Brightness (mean luminance) is {lum['real_mean']:.1f} for real and "
                  f"{lum['fake_mean']:.1f} for fake images: {evidence(lum)}: "
                  f"{usefulness(lum['threshold_accuracy'])}.")
    same = mag["ks_p"] >= 0.05
    spectrum = (f"Mean FFT magnitude: {evidence(mag)}; "
                + ("the two distributions cannot be told apart" if same else
                   "the distributions differ" + (" but overlap heavily" if
                                                 max(mag["auc"], 1 - mag["auc"]) < 0.6 else ""))
                + f"; as a detector it is {usefulness(mag['threshold_accuracy'])}.")
    if base["accuracy"] >= 0.6:
        cnn = (f"No: one averaged number hides where the power lies, while the radial power spectrum "
               f"alone separates the classes with cross-validated accuracy {base['accuracy']:.2f} "
               f"(AUC {base['auc']:.2f}) in a logistic regression, and a CNN sees far more than that.")
    else:
        cnn = (f"Not by itself: even the full radial power spectrum separates the classes only with "
               f"cross-validated accuracy {base['accuracy']:.2f} (AUC {base['auc']:.2f}), so any "
               f"difference is subtler than global statistics, which is what a CNN can learn.")
    best = max(summary["features"].items(), key=lambda kv: abs(kv[1]["auc"] - 0.5))
    strongest = (f"The single feature that separates best is {FEATURE_NAMES[best[0]]} "
                 f"(AUC {best[1]['auc']:.2f}, held-out accuracy {best[1]['threshold_accuracy']:.2f}); "
                 f"the spectrum baseline reaches {base['accuracy']:.2f}.")
    return {"balanced": balance, "brightness": brightness, "spectrum": spectrum,
            "cnn_possible": cnn, "strongest": strongest}
