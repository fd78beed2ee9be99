"""Estimates over training runs: each seed gives an estimate with its within-seed standard error (the sd of its
bootstrap over test images); random-effects pooling treats seeds as draws from the distribution of training runs,
which is the estimand (a trained model is one draw).

  random_effects   the between-run variance tau^2 by a named estimator (DerSimonian-Laird or REML), the pooled
                   mean with the modified Hartung-Knapp interval (t with k-1 df, the spread factor at least 1:
                   never narrower than the fixed-effect interval), Cochran's Q and its p, tau^2's Q-profile
                   interval, and the prediction interval for a new run (Higgins et al. 2009; from 5 seeds on).
                   The pooling itself is statsmodels' combine_effects; statsmodels 0.15 has no REML, no Q-profile
                   interval and no modified Hartung-Knapp floor (its DL tau^2 is also not truncated at 0): those
                   few lines are here.
  seed_interval    for a quantity without a within-seed error (a count of heads): the t interval of the
                   seeds' mean and the prediction interval of a new seed
  equivalence      two one-sided tests at 5% (the 90% interval inside the paper's value +- the smallest
                   effect of interest)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.meta_analysis import combine_effects

Z95 = stats.norm.ppf(0.975)
ESTIMATORS = ("dl", "reml")  # DerSimonian-Laird (moments), restricted maximum likelihood


def se_from_ci(low: float, high: float) -> float:
    """The standard error behind a 95% interval, read as normal: only for runs gathered before their metrics
    kept the bootstrap's sd (it misreads an asymmetric interval)."""
    return (high - low) / (2 * Z95)


@dataclass(frozen=True)
class Pooled:
    estimator: str  # of tau^2: ESTIMATORS
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


def tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate of tau^2: the maximum of the restricted log-likelihood over [0, a bound far above the
    spread of y] (statsmodels' combine_effects offers DL and Paule-Mandel only)."""

    def minus_loglik(t: float) -> float:
        w = 1 / (v + t)
        mu = (w * y).sum() / w.sum()
        return 0.5 * (np.log(v + t).sum() + np.log(w.sum()) + (w * (y - mu) ** 2).sum())

    top = 10 * (np.var(y, ddof=1) + v.max())
    found = optimize.minimize_scalar(minus_loglik, bounds=(0.0, top), method="bounded", options={"xatol": 1e-12})
    return 0.0 if minus_loglik(0.0) <= found.fun else float(found.x)


def fixed_effect(y: np.ndarray, v: np.ndarray):
    """statsmodels' combine_effects, read for its fixed-effect part and DL's tau^2. Where Q < k - 1 its own
    random-effects part takes the untruncated tau^2 < 0 and warns about a NaN sd: that part is not read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return combine_effects(y, v, method_re="dl")


def random_effects(y, se, estimator: str = "dl") -> Pooled:
    """Pool per-seed estimates y with their within-seed standard errors se, tau^2 by `estimator` (module doc)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}: one of {ESTIMATORS}")
    y, v = np.asarray(y, float), np.maximum(np.asarray(se, float) ** 2, 1e-12)
    k = len(y)
    if k < 2:
        raise ValueError("pooling needs at least 2 training runs")
    plain = fixed_effect(y, v)  # Q, I^2, the fixed-effect pool and DL's tau^2
    tau2 = max(0.0, float(plain.tau2)) if estimator == "dl" else tau2_reml(y, v)
    pool = fixed_effect(y, v + tau2)  # the fixed-effect pool on v + tau^2 is the random-effects pool
    mu = float(pool.mean_effect_fe)
    se_mu = float(np.sqrt(max(1.0, pool.scale_hksj_fe) * pool.var_eff_w_fe))  # modified Hartung-Knapp
    t95, t90 = stats.t.ppf(0.975, k - 1), stats.t.ppf(0.95, k - 1)
    fixed, fixed_se = float(plain.mean_effect_fe), float(np.sqrt(plain.var_eff_w_fe))
    prediction = None
    if k >= 5:
        half = stats.t.ppf(0.975, k - 2) * np.sqrt(tau2 + se_mu**2)
        prediction = (mu - half, mu + half)
    q = float(plain.q)
    return Pooled(
        estimator=estimator,
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
