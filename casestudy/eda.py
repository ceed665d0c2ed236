"""Explore the data: colour, brightness, texture and spectra of real and fake faces.

Book chapter 02_eda. Every feature is computed on whole arrays (no loop over pixels);
functions take one image (H, W, 3) or a batch (N, H, W, 3) alike. The statistics say
how far each feature separates the classes on its own, and a logistic regression on
the radial power spectrum gives a simple baseline for the CNN.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from casestudy import CaseStudyError, data, files
from casestudy.features import (  # noqa: F401 - eda.<feature> stays the notebooks' name
    FEATURE_NAMES,
    LUMA,
    MIN_SIDE,
    RADIAL_BINS,
    SCALARS,
    _features_of_file,
    compute_features,
    fft_magnitude,
    grey,
    image_features,
    laplacian_variance,
    log_magnitude_spectrum,
    luminance,
    mean_colour,
    radial_average,
    radial_bins,
    radial_frequencies,
    radial_power_spectrum,
    ring_means,
    too_small,
)
from casestudy.runs import RunFolder

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
    run = RunFolder.of(config)
    psd = pd.DataFrame(spectra, columns=[f"log10_power_f{f:.4f}" for f in radial_frequencies()])
    files.write_csv(pd.concat([table, psd], axis=1), run.eda_table)
    eda_plots.plot_all(table, spectra, summary, config, run.figures)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    files.write_json(summary, run.eda_summary)
    return summary


def load_summary(run_dir: Path) -> dict | None:
    path = RunFolder(Path(run_dir)).eda_summary
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
    brightness = (f"Brightness (mean luma) is {lum['real_mean']:.1f} for real and "
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
