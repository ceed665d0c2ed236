"""Measure one image or a batch: colour, brightness (luma), texture, sharpness and spectra.

Book chapter 02_eda. Every feature is computed on whole arrays (no loop over pixels); functions
take one image (H, W, 3) or a batch (N, H, W, 3) alike. The EDA stage (eda.py) measures a
sample with them and the figures (eda_plots.py) show them; neither imports the other's way.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import fft, sparse

from casestudy import data, files

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B
MIN_SIDE = 3  # pixels: the 4-neighbour Laplacian has no interior pixel below 3 x 3
RADIAL_BINS = 64  # bins from DC to the Nyquist frequency; the corners add about 27 more
SCALARS = ["width", "height", "aspect", "mean_r", "mean_g", "mean_b", "luminance",
           "fft_magnitude", "laplacian_var"]
FEATURE_NAMES = {"width": "width (px)", "height": "height (px)", "aspect": "aspect ratio",
                 "mean_r": "mean red", "mean_g": "mean green", "mean_b": "mean blue",
                 "luminance": "brightness (mean luma)", "fft_magnitude": "mean FFT magnitude",
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
    """Brightness (mean luma) of (..., H, W, 3) images: (...)."""
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
