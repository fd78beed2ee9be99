"""The one place for resampling and intervals: paired bootstrap over test images, 95% percentile
intervals, and the interval of a count of passing heads. Every CI in metrics/ and results/ comes from here."""

from __future__ import annotations

import warnings

import numpy as np

PERCENTILES = (2.5, 97.5)  # 95% percentile intervals


def bootstrap_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n_images] multinomial counts: a paired resample of images as one matmul."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=resamples).astype(np.float64)


def bootstrap_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[resamples, K] means of [n, K] values under bootstrap_weights; NaN (a value the image
    lacks, e.g. a region it does not show) is left out of its own resample's mean."""
    valid = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.where(valid, values, 0)) / (weights @ valid)


def percentile_interval(resampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval over axis 0 (the resamples); resamples that are NaN are left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: a region no image shows
        low, high = np.nanpercentile(resampled, PERCENTILES, axis=0)
    return low, high


def resampled_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[R, K] means of [n, ...] values (flattened) under the image resamples weights [R, n]."""
    return bootstrap_means(weights, values.reshape(len(values), -1).astype(np.float64))


def mean_ci(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over images (axis 0) and its bootstrap 95% CI, for [n, ...] values; weights [R, n]."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    low, high = percentile_interval(resampled_means(values, weights))
    shape = values.shape[1:]
    return flat.mean(0).reshape(shape), low.reshape(shape), high.reshape(shape)


def passing_count(passes: np.ndarray, resampled_passes: np.ndarray) -> tuple[int, list[int]]:
    """How many heads pass on the means ([K] bool), and the 95% interval of that count over the image
    resamples ([R, K] bool). A bootstrap of a count near a bar is no sampling interval of it: read it as
    how much the count hangs on which images were drawn."""
    return int(np.sum(passes)), [int(v) for v in np.percentile(np.sum(resampled_passes, axis=1), PERCENTILES)]
