"""The factorial study's analysis on synthetic data: a planted main effect is recovered, a null flags nothing at
the corrected level, the detectable difference is the t test's own, and the whole pipeline's simulated power and
family-wise error are what the design promises."""

import json

import numpy as np
import pytest
from scipy import stats

from vitheads.analysis.factorial import FACTORS, PRIMARY, R2_MEAN, analyse, pilot, simulate_power, synthetic

OUTCOMES = list(PRIMARY)


def test_the_mixed_model_recovers_a_planted_main_effect_and_interaction():
    """8 seeds, seed sd 1, residual sd 1: text changes R2 by +1.5 (on - off) and text x frame by -2; nothing else.
    Only the planted main effect is flagged among the 12 primary tests; the interaction (exploratory) is
    recovered within its interval."""
    effects = {R2_MEAN: {"text": 1.5, "text:frame": -2.0}} | {o: {} for o in OUTCOMES[1:]}
    data = synthetic(effects, 8, 1.0, 1.0, np.random.default_rng(3))
    result = analyse(data, OUTCOMES)
    text = result["fits"][R2_MEAN]["terms"]["text"]
    assert text["flagged"] and text["verdict"] == "changes" and text["ci"][0] < 1.5 < text["ci"][1]
    flagged = [(o, f) for o in OUTCOMES for f in FACTORS if result["fits"][o]["terms"][f]["flagged"]]
    assert flagged == [(R2_MEAN, "text")]
    interaction = result["fits"][R2_MEAN]["terms"]["text:frame"]
    assert interaction["family"] == "exploratory" and interaction["ci"][0] < -2.0 < interaction["ci"][1]
    assert result["fits"][R2_MEAN]["df"] == 64 - 8 - 6 and len(result["primary_family"]) == 12
    json.dumps(result, allow_nan=False)


def test_a_null_flags_nothing_at_the_corrected_level():
    data = synthetic({o: {} for o in OUTCOMES}, 8, 1.0, 1.0, np.random.default_rng(0))
    result = analyse(data, OUTCOMES)
    assert not any(t.get("flagged") for f in result["fits"].values() for t in f["terms"].values())
    verdicts = [result["fits"][o]["terms"][f]["verdict"] for o in OUTCOMES for f in FACTORS]
    assert set(verdicts) <= {"no effect", "inconclusive"}


def test_the_detectable_difference_is_the_t_tests_own_and_a_constant_outcome_is_listed():
    """A primary main effect faces Holm's strictest step, alpha / 12; an exploratory term alpha."""
    data = synthetic({o: {} for o in OUTCOMES}, 8, 1.0, 1.0, np.random.default_rng(1))
    data["always 3"] = 3.0
    result = analyse(data, [*OUTCOMES, "always 3"])
    main, pair = result["fits"][R2_MEAN]["terms"]["colorbar"], result["fits"][R2_MEAN]["terms"]["colorbar:frame"]
    t = lambda q: stats.t.ppf(q, 50)
    assert main["detectable"] == pytest.approx((t(1 - 0.05 / 24) + t(0.80)) * main["se"])
    assert pair["detectable"] == pytest.approx((t(0.975) + t(0.80)) * pair["se"])
    assert result["constant"] == {"always 3": 3.0} and "always 3" not in result["fits"]


def test_the_pilot_rule_reads_the_residual_variance_only():
    """Residual sd 0.1 on every outcome: at 8 seeds (df 50, se = 2 x 0.1 / 8) the detectable difference is 0.097,
    inside layer 6's bound (0.17) but not R2's (0.02): 12 seeds."""
    fits = {o: {"residual_variance": 0.01} for o in OUTCOMES}
    rule = pilot(fits)
    expected = (stats.t.ppf(1 - 0.05 / 24, 50) + stats.t.ppf(0.80, 50)) * 2 * 0.1 / 8
    assert rule["mean ablation: layer 6 (%)"]["detectable_at"]["8"] == pytest.approx(expected)
    assert rule["mean ablation: layer 6 (%)"]["within_bound_at_8"] and not rule[R2_MEAN]["within_bound_at_8"]
    assert rule["run_12_seeds"]
    small = {o: {"residual_variance": 1e-6} for o in OUTCOMES}
    assert not pilot(small)["run_12_seeds"]


def test_the_layout_contrast_is_paired_by_seed():
    data = synthetic({R2_MEAN: {}}, 4, 5.0, 0.1, np.random.default_rng(2))
    off = data[(data[list(FACTORS)] == 0).all(axis=1)]
    layout = off.assign(**{R2_MEAN: off[R2_MEAN] + np.array([1.0, 1.1, 0.9, 1.0])})
    entry = analyse(data, [R2_MEAN], layout)["layout"][R2_MEAN]
    assert entry["estimate"] == pytest.approx(1.0) and entry["df"] == 3 and entry["ci"][0] > 0.8  # seed sd 5 cancels


def test_the_simulated_pipeline_has_the_power_it_promises_and_keeps_the_family_wise_error():
    """Two primary outcomes (6 tests); text planted on the first at the size detectable with 80% power at
    alpha / 6 (residual sd 1, 64 runs: se = 2 / 8). Over 200 studies: power 0.8 (the noncentral t gives 0.797)
    within three binomial sds (0.028 each), the family-wise error over the 5 null tests at most 0.05 plus two
    binomial sds (0.015 each)."""
    df = 64 - 8 - 6
    size = (stats.t.ppf(1 - 0.05 / 12, df) + stats.t.ppf(0.80, df)) * 2 / 8
    found = simulate_power({R2_MEAN: {"text": size}, OUTCOMES[1]: {}}, simulations=200, rng_seed=4)
    assert 0.71 <= found["flagged"][f"{R2_MEAN}: text"] <= 0.89
    assert found["familywise_error"] <= 0.08
    assert found["simulations"] == 200 and found["seeds"] == 8


def test_errors_name_the_bad_parameter():
    with pytest.raises(ValueError, match="simulations=0"):
        simulate_power({R2_MEAN: {}}, simulations=0)
    with pytest.raises(ValueError, match="effects: name at least one primary outcome"):
        simulate_power({"other": {}}, simulations=1)
    with pytest.raises(ValueError, match="leave no residual df"):
        analyse(synthetic({R2_MEAN: {}}, 1, 1.0, 1.0, np.random.default_rng(0)).iloc[:7], [R2_MEAN])
