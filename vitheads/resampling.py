"""Bootstrap over test images, shared by the ablation CIs and the head-role CIs."""

from __future__ import annotations

import numpy as np


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
