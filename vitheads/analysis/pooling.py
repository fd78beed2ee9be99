"""Estimates over training runs: each seed gives an estimate with its within-seed standard error (from
its bootstrap CI over test images); random-effects pooling treats seeds as draws from the distribution of
training runs, which is the estimand (a trained model is one draw).

  random_effects   DerSimonian-Laird between-run variance tau^2, the pooled mean with the modified
                   Hartung-Knapp interval (t with k-1 df, the spread factor at least 1: never narrower
                   than the fixed-effect interval), Cochran's Q and its p, tau^2's Q-profile interval, and
                   the prediction interval for a new run (Higgins et al. 2009; reported from 5 seeds on)
  seed_interval    for a quantity without a within-seed error (a count of heads): the t interval of the
                   seeds' mean and the prediction interval of a new seed
  equivalence      two one-sided tests at 5% (the 90% interval inside the paper's value +- the smallest
                   effect of interest)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

Z95 = stats.norm.ppf(0.975)


def se_from_ci(low: float, high: float) -> float:
    """The standard error behind a 95% interval, read as normal."""
    return (high - low) / (2 * Z95)


@dataclass(frozen=True)
class Pooled:
    k: int
    estimate: float
    se: float
    ci: tuple[float, float]  # modified Hartung-Knapp, 95%
    ci90: tuple[float, float]  # the same at 90%, for the equivalence test
    fixed_ci: tuple[float, float]  # fixed effect, 95%: the modified HK interval is never narrower
    tau2: float
    tau: float
    tau2_ci: tuple[float, float]  # Q-profile, 95%
    q: float
    q_p: float
    i2: float
    prediction: tuple[float, float] | None  # 95% prediction interval for a new training run (k >= 5)

    def as_dict(self) -> dict:
        return {
            k: (round(v, 6) if isinstance(v, float) else [round(x, 6) for x in v] if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }


def generalised_q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1 / (v + tau2)
    mu = (w * y).sum() / w.sum()
    return float((w * (y - mu) ** 2).sum())


def tau2_interval(y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """The Q-profile 95% interval of tau^2 (Viechtbauer 2007): where the generalised Q meets the chi^2
    quantiles with k - 1 df."""
    df = len(y) - 1
    upper_q, lower_q = stats.chi2.ppf(0.975, df), stats.chi2.ppf(0.025, df)
    top = 100 * (np.var(y, ddof=1) + v.max()) + 1e-12

    def root(target: float) -> float:
        f = lambda t: generalised_q(y, v, t) - target
        if f(0.0) <= 0:
            return 0.0
        return float(optimize.brentq(f, 0.0, top)) if f(top) < 0 else float(top)

    return root(upper_q), root(lower_q)


def random_effects(y, se) -> Pooled:
    """Pool per-seed estimates y with their within-seed standard errors se (module doc)."""
    y, v = np.asarray(y, float), np.asarray(se, float) ** 2
    k = len(y)
    if k < 2:
        raise ValueError("pooling needs at least 2 training runs")
    v = np.maximum(v, 1e-12)
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = float((w * (y - fixed) ** 2).sum())
    c = w.sum() - (w**2).sum() / w.sum()
    tau2 = max(0.0, (q - (k - 1)) / c)
    ws = 1 / (v + tau2)
    mu = float((ws * y).sum() / ws.sum())
    spread = max(1.0, float((ws * (y - mu) ** 2).sum() / (k - 1)))  # modified Hartung-Knapp
    se_mu = float(np.sqrt(spread / ws.sum()))
    t95, t90 = stats.t.ppf(0.975, k - 1), stats.t.ppf(0.95, k - 1)
    fixed_se = float(np.sqrt(1 / w.sum()))
    prediction = None
    if k >= 5:
        half = stats.t.ppf(0.975, k - 2) * np.sqrt(tau2 + se_mu**2)
        prediction = (mu - half, mu + half)
    return Pooled(
        k=k,
        estimate=mu,
        se=se_mu,
        ci=(mu - t95 * se_mu, mu + t95 * se_mu),
        ci90=(mu - t90 * se_mu, mu + t90 * se_mu),
        fixed_ci=(fixed - Z95 * fixed_se, fixed + Z95 * fixed_se),
        tau2=tau2,
        tau=float(np.sqrt(tau2)),
        tau2_ci=tau2_interval(y, v),
        q=q,
        q_p=float(stats.chi2.sf(q, k - 1)),
        i2=max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
        prediction=prediction,
    )


def seed_interval(values) -> dict:
    """Mean over seeds of a quantity with no within-seed error, its t interval, and the prediction interval
    of one more seed."""
    x = np.asarray(values, float)
    k, mean, sd = len(x), float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0
    t = stats.t.ppf(0.975, k - 1) if k > 1 else np.nan
    return {
        "k": k,
        "values": [float(v) for v in x],
        "mean": round(mean, 4),
        "sd": round(sd, 4),
        "ci": [round(mean - t * sd / np.sqrt(k), 4), round(mean + t * sd / np.sqrt(k), 4)],
        "prediction": [round(mean - t * sd * np.sqrt(1 + 1 / k), 4), round(mean + t * sd * np.sqrt(1 + 1 / k), 4)],
    }


def equivalence(ci90: tuple[float, float], value: float, margin: float) -> bool:
    """Two one-sided tests at 5%: the 90% interval lies inside value +- margin."""
    return value - margin <= ci90[0] and ci90[1] <= value + margin
