"""Statistics: the multiplicity corrections and proportion intervals (statsmodels) on known cases and on the values
the hand-written versions they replace gave, p-values from the bootstrap standard error (normal tail) against a
normal test, and random-effects pooling (statsmodels' combine_effects) against the hand-written DerSimonian-Laird
values of commit b1e2f13."""

import numpy as np
import pytest

from vitheads.analysis.pooling import equivalence, random_effects, seed_interval, tau2_reml
from vitheads.analysis.stats import (
    benjamini_hochberg,
    bootstrap_means,
    bootstrap_se,
    bootstrap_se_p,
    bootstrap_weights,
    holm,
    proportion_interval,
)


def test_benjamini_hochberg_on_the_textbook_case():
    """Benjamini and Hochberg (1995), table 1 style: 15 p-values, FDR 0.05: the 4 smallest are discoveries
    (p_(4) = 0.0095 <= 4 x 0.05 / 15 = 0.0133; p_(5) = 0.0201 > 0.0167), although 0.0201 < 0.05."""
    p = np.array(
        [
            0.0001,
            0.0004,
            0.0019,
            0.0095,
            0.0201,
            0.0278,
            0.0298,
            0.0344,
            0.0459,
            0.3240,
            0.4262,
            0.5719,
            0.6528,
            0.7590,
            1.0000,
        ]
    )
    found = benjamini_hochberg(np.random.default_rng(0).permutation(p).reshape(3, 5))
    assert found.sum() == 4
    assert benjamini_hochberg(p).tolist() == [True] * 4 + [False] * 11
    assert benjamini_hochberg(np.full(144, 0.01)).all()  # all equal at 0.01 <= 0.05: all pass
    assert not benjamini_hochberg(np.array([0.04] + [0.9] * 143)).any()  # alone at 0.04: not after 144 tests


def test_bootstrap_se_p_goes_below_one_over_the_resamples_and_is_calibrated():
    rng = np.random.default_rng(0)
    weights = bootstrap_weights(200, 1000, 1)
    strong = rng.normal(0.5, 1.0, (200, 1))  # mean 0.5, se 0.07: z about 7
    p = bootstrap_se_p(strong.mean(0), bootstrap_means(weights, strong), 0.0)
    assert p[0] < 1e-6
    null_p = []
    for seed in range(200):  # under the null, p is roughly uniform: about 5% below 0.05
        x = np.random.default_rng(seed + 10).normal(0.0, 1.0, (200, 1))
        null_p.append(bootstrap_se_p(x.mean(0), bootstrap_means(weights, x), 0.0)[0])
    assert 0.02 < np.mean(np.array(null_p) < 0.05) < 0.09
    assert bootstrap_se_p(np.array([0.0]), np.zeros((10, 1)), 0.1)[0] == pytest.approx(1.0)  # zero se, below bar


def test_random_effects_pooling_on_a_case_worked_by_hand():
    """y = 0.1, 0.3, 0.5 with se 0.1 each: fixed 0.3, Q = 8 (p = e^-4), C = 200, tau^2 = (8 - 2) / 200 = 0.03,
    weights 1 / 0.04 = 25, Hartung-Knapp factor (25 x 0.08) / 2 = 1, se = sqrt(1 / 75), t(2) = 4.303."""
    pooled = random_effects([0.1, 0.3, 0.5], [0.1, 0.1, 0.1])
    assert pooled.estimate == pytest.approx(0.3)
    assert pooled.q == pytest.approx(8.0) and pooled.q_p == pytest.approx(np.exp(-4))
    assert pooled.tau2 == pytest.approx(0.03) and pooled.i2 == pytest.approx(0.75)
    assert pooled.se == pytest.approx(np.sqrt(1 / 75))
    assert pooled.ci[1] - pooled.estimate == pytest.approx(4.302653 * np.sqrt(1 / 75), rel=1e-5)
    assert pooled.fixed_ci[1] - 0.3 == pytest.approx(1.959964 * np.sqrt(1 / 300), rel=1e-5)
    assert pooled.prediction is None  # fewer than 5 runs
    low, high = pooled.tau2_ci
    assert low < 0.03 < high


def test_the_modified_interval_is_never_narrower_than_the_fixed_effect_one():
    """Seeds that agree better than their own errors say (Q < k - 1): Hartung-Knapp's factor would shrink the
    interval below the fixed-effect one; the modification keeps the factor at 1."""
    pooled = random_effects([0.30, 0.301, 0.299, 0.3, 0.3005], [0.1] * 5)
    assert pooled.tau2 == 0 and pooled.ci[1] - pooled.ci[0] >= pooled.fixed_ci[1] - pooled.fixed_ci[0]
    assert pooled.prediction is not None


def test_seed_interval_and_equivalence():
    counts = seed_interval([14, 6, 3])
    assert counts["mean"] == pytest.approx(23 / 3, abs=1e-4) and counts["ci"][0] < 0 < counts["ci"][1]
    assert equivalence((0.30, 0.38), 0.34, 0.17) and not equivalence((0.0, 0.6), 0.34, 0.17)


def test_holm_and_bh_equal_the_hand_written_versions_they_replace():
    """Values of the hand-written Holm (vitheads.compare) and Benjamini-Hochberg of commit b1e2f13."""
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.0125, 0.011])
    assert holm(p, 0.05).tolist() == [True, False, False, False, False, False]  # 0.011 > 0.05 / 5
    assert benjamini_hochberg(p).tolist() == [True, True, True, False, True, True]  # p_(5) = 0.04 <= 5 x 0.05 / 6
    assert holm(np.array([0.001, 0.04, 0.03]), 0.05).tolist() == [True, False, False]
    assert holm(np.array([])).shape == (0,)


def test_proportion_intervals_equal_the_hand_written_wilson_and_clopper_pearson_is_exact():
    """Wilson values of the hand-written summaries.wilson (commit b1e2f13); Clopper-Pearson's upper bound for
    0 of n is 1 - 0.025^(1/n)."""
    assert proportion_interval(3, 6) == [0.1876, 0.8124]
    assert proportion_interval(0, 432) == [0.0, 0.0088] and proportion_interval(13, 14) == [0.6853, 0.9873]
    assert proportion_interval(2, 288) == [0.0019, 0.025] and proportion_interval(0, 0) is None
    assert proportion_interval(0, 432, "clopper-pearson")[1] == pytest.approx(1 - 0.025 ** (1 / 432), abs=1e-4)
    with pytest.raises(ValueError, match="method='exact'"):
        proportion_interval(1, 2, "exact")


HAND_DL = {  # (y, se): random_effects(y, se).as_dict() of the hand-written DerSimonian-Laird, commit b1e2f13
    "equal errors": (
        ([0.1, 0.3, 0.5], [0.1, 0.1, 0.1]),
        {"estimate": 0.3, "se": 0.11547, "ci": [-0.196828, 0.796828], "tau2": 0.03, "q": 8.0, "prediction": None},
    ),
    "tau2 at 0": (
        ([0.304, 0.381, 0.427, 0.204, 0.151], [0.12, 0.2, 0.15, 0.1, 0.18]),
        {
            "estimate": 0.276825,
            "se": 0.060886,
            "ci": [0.107779, 0.445871],
            "tau2": 0.0,
            "q": 2.343917,
            "prediction": [0.083059, 0.470591],
        },
    ),
    "Q below k - 1": (
        ([0.30, 0.301, 0.299, 0.3, 0.3005], [0.1] * 5),
        {
            "estimate": 0.3001,
            "se": 0.044721,
            "ci": [0.175934, 0.424266],
            "tau2": 0.0,
            "q": 0.00022,
            "prediction": [0.157777, 0.442423],
        },
    ),
    "unequal errors": (
        ([0.1, 0.6, 0.2, 0.9, 0.4], [0.1, 0.2, 0.15, 0.3, 0.12]),
        {
            "estimate": 0.36245,
            "se": 0.126423,
            "ci": [0.011443, 0.713457],
            "tau2": 0.040844,
            "q": 11.344444,
            "prediction": [-0.396196, 1.121097],
            "tau2_ci": [0.000387, 0.79656],
            "i2": 0.647405,
            "q_p": 0.022954,
        },
    ),
}


@pytest.mark.parametrize("case", HAND_DL)
def test_statsmodels_pooling_equals_the_hand_written_dersimonian_laird(case):
    """statsmodels' DL tau^2 is not truncated at 0 (Q below k - 1 gives a negative one): the wrapper truncates it,
    as the hand-written version did."""
    (y, se), expected = HAND_DL[case]
    pooled = random_effects(y, se, "dl").as_dict()
    assert pooled["estimator"] == "dl"
    for key, value in expected.items():
        assert pooled[key] == (None if value is None else pytest.approx(value, abs=2e-6)), key


def test_reml_solves_its_estimating_equation_and_equals_dl_for_equal_errors():
    """REML's tau^2 > 0 satisfies tau^2 = sum w^2 ((y - mu)^2 - v) / sum w^2 + 1 / sum w (Viechtbauer 2005); with
    equal errors both estimators give the seeds' variance minus the error variance."""
    y, v = np.array([0.1, 0.6, 0.2, 0.9, 0.4]), np.array([0.1, 0.2, 0.15, 0.3, 0.12]) ** 2
    t = tau2_reml(y, v)
    w = 1 / (v + t)
    mu = (w * y).sum() / w.sum()
    assert t == pytest.approx((w**2 * ((y - mu) ** 2 - v)).sum() / (w**2).sum() + 1 / w.sum(), rel=1e-5)
    assert random_effects([0.1, 0.3, 0.5], [0.1] * 3, "reml").tau2 == pytest.approx(0.03, abs=1e-6)
    assert tau2_reml(np.array([0.3, 0.3001, 0.2999]), np.full(3, 0.01)) == 0.0
    with pytest.raises(ValueError, match="estimator='pm'"):
        random_effects(y, np.sqrt(v), "pm")


def test_a_runs_standard_error_is_its_bootstraps_sd_not_an_asymmetric_intervals_width():
    resampled = np.random.default_rng(0).lognormal(0.0, 1.0, (4000, 1))  # skewed: the interval is asymmetric
    low, high = np.percentile(resampled, [2.5, 97.5], axis=0)
    assert bootstrap_se(resampled)[0] == pytest.approx(resampled.std(ddof=1))
    assert abs((high - low)[0] / 3.92 - bootstrap_se(resampled)[0]) > 0.1 * bootstrap_se(resampled)[0]
