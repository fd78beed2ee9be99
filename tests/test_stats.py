"""Statistics: the multiplicity correction on known cases, and p-values from the bootstrap standard error
(normal tail) against a normal test."""

import numpy as np
import pytest

from vitheads.analysis.pooling import equivalence, random_effects, seed_interval
from vitheads.analysis.stats import benjamini_hochberg, bootstrap_means, bootstrap_se_p, bootstrap_weights


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
