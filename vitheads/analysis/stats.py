"""The one place for resampling, intervals and tests: paired bootstrap over test images, 95% percentile
intervals, p-values from the bootstrap standard error (normal tail), the multiplicity corrections (Holm,
Benjamini-Hochberg) and intervals of a proportion (Wilson, Clopper-Pearson). Corrections and proportion intervals
are statsmodels' (a well-kept library, not hand-written). Every CI in metrics/ and results/ comes from here."""

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


def bootstrap_se_p(mean: np.ndarray, resampled: np.ndarray, bar: np.ndarray | float) -> np.ndarray:
    """One-sided p-value of "the mean exceeds bar" for each column: the excess over the bootstrap standard
    error ([R, K] resampled means), read on the normal tail. Unlike a percentile p-value from R resamples,
    it can go below 1/R, which Benjamini-Hochberg over hundreds of heads needs."""
    se = np.nanstd(resampled, axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (mean - bar) / se
    return normal_tail(np.where(np.isnan(z), -np.inf, np.where(se == 0, np.sign(mean - bar) * np.inf, z)))


def normal_tail(z):
    """P(Z > z) for a standard normal Z: the one-sided p-value of a z-score (NaN reads as no evidence)."""
    from scipy.stats import norm

    return norm.sf(np.where(np.isnan(z), -np.inf, z))


def benjamini_hochberg(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which of the p-values (any shape) are discoveries at false-discovery rate alpha (Benjamini and
    Hochberg 1995: the largest k with p_(k) <= k alpha / m, and every p at or below p_(k))."""
    return corrected(p, alpha, "fdr_bh")


def holm(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which of the p-values (any shape) are rejected at family-wise level alpha (Holm-Bonferroni)."""
    return corrected(p, alpha, "holm")


def corrected(p: np.ndarray, alpha: float, method: str) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    flat = np.asarray(p, dtype=float).ravel()
    if flat.size == 0:
        return np.zeros(np.shape(p), bool)
    return multipletests(flat, alpha=alpha, method=method)[0].reshape(np.shape(p))


def proportion_interval(k: int, n: int, method: str = "wilson") -> list[float] | None:
    """95% interval of a proportion k / n, "wilson" or "clopper-pearson" (exact); None when nothing was counted
    (NaN is not JSON)."""
    from statsmodels.stats.proportion import proportion_confint

    methods = {"wilson": "wilson", "clopper-pearson": "beta"}
    if method not in methods:
        raise ValueError(f"method={method!r}: one of {sorted(methods)}")
    if n == 0:
        return None
    low, high = proportion_confint(k, n, alpha=0.05, method=methods[method])
    return [round(max(float(low), 0.0), 4), round(min(float(high), 1.0), 4)]  # not -0.0 from rounding


def bootstrap_se(resampled: np.ndarray) -> np.ndarray:
    """The standard error of a statistic from its bootstrap resamples (axis 0): their sd, not the width of a
    percentile interval read as normal (which is wrong when the interval is asymmetric)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
        return np.nanstd(resampled, axis=0, ddof=1)
