"""Statistics: the multiplicity correction on known cases, and studentised p-values against a normal test."""

import numpy as np
import pytest

from vitheads.analysis.stats import benjamini_hochberg, bootstrap_means, bootstrap_weights, studentised_p


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


def test_studentised_p_goes_below_one_over_the_resamples_and_is_calibrated():
    rng = np.random.default_rng(0)
    weights = bootstrap_weights(200, 1000, 1)
    strong = rng.normal(0.5, 1.0, (200, 1))  # mean 0.5, se 0.07: z about 7
    p = studentised_p(strong.mean(0), bootstrap_means(weights, strong), 0.0)
    assert p[0] < 1e-6
    null_p = []
    for seed in range(200):  # under the null, p is roughly uniform: about 5% below 0.05
        x = np.random.default_rng(seed + 10).normal(0.0, 1.0, (200, 1))
        null_p.append(studentised_p(x.mean(0), bootstrap_means(weights, x), 0.0)[0])
    assert 0.02 < np.mean(np.array(null_p) < 0.05) < 0.09
    assert studentised_p(np.array([0.0]), np.zeros((10, 1)), 0.1)[0] == pytest.approx(1.0)  # zero se, below bar
