"""python -m vitheads.compare on real experiments of a tiny project (generate stage only, for speed): a known
difference is flagged, two sets of seeds of one configuration are not."""

import json
import sys

import numpy as np
import pytest
from scipy import stats

from vitheads.analysis.stats import holm
from vitheads.compare import compare


def run_generate(project, name, *overrides):
    project.dvc("exp", "run", "generate", "-n", name, *[a for o in overrides for a in ("-S", o)])


def compared(project, a, b):
    out = project.run(sys.executable, "-m", "vitheads.compare", a, b, "--format", "json").stdout
    return {r["metric"]: r for r in json.loads(out[: out.rindex("]") + 1])}


def test_the_colorbar_switched_off_is_flagged_and_other_seeds_of_one_configuration_are_not(project):
    for seed in (1, 2, 3, 4):
        run_generate(project, f"on-{seed}", f"seed={seed}")
    for seed in (1, 2):
        run_generate(project, f"off-{seed}", f"seed={seed}", "distortion.colorbar=false")
    off = compared(project, "on-1,on-2", "off-1,off-2")
    assert off["area share: colorbar"]["differs"] and off["area share: colorbar"]["b"] == 0
    assert off["area share: colorbar"]["noise_from"].endswith("taken as fixed")  # the layout fixes it
    same = compared(project, "on-1,on-2", "on-3,on-4")
    assert same and not any(r["differs"] for r in same.values())


def test_holm_and_the_noise_from_the_study_when_an_arm_has_one_run():
    assert holm(np.array([0.001, 0.04, 0.03]), 0.05).tolist() == [True, False, False]  # 0.03 > 0.05 / 2
    rows = compare([{"x": 1.0}], [{"x": 1.5}], {"x": 0.1})
    assert rows[0]["differs"] and rows[0]["noise_from"] == "the estimates study's runs"
    assert rows[0]["se"] == np.sqrt(2) * 0.1
    assert compare([{"x": 1.0}], [{"x": 1.5}], {}) == []  # no noise estimate: nothing is compared


def test_runs_without_spread_take_the_studys_noise_and_small_samples_use_welch():
    fixed = compare([{"x": 1.0}, {"x": 1.0}], [{"x": 0.0}, {"x": 0.0}, {"x": 0.0}], {})[0]
    assert fixed["differs"] and fixed["noise_from"].endswith("taken as fixed")  # and the table says so
    rows = compare([{"x": 1.0}, {"x": 1.0}], [{"x": 0.0}, {"x": 0.0}], {"x": 1.0})  # z = 1
    assert rows[0]["noise_from"] == "the estimates study's runs" and not rows[0]["differs"]
    rows = compare([{"x": 0.0}, {"x": 1.0}], [{"x": 2.0}, {"x": 3.0}], {})
    assert abs(rows[0]["p"] - 0.1056) < 1e-3  # Welch: t = 2.83 on 2 df; the normal tail would say 0.0047
    assert rows[0]["ci"] == pytest.approx([2 - 3.0426, 2 + 3.0426], abs=1e-3)  # 2 +- t(0.975, 2) x 0.7071


def test_the_detectable_difference_is_the_tests_own_t_at_80_percent_power():
    """By hand: Welch on 2 + 2 runs with equal spreads has 2 df; an exploratory metric faces alpha, a primary one
    alpha / the primary metrics compared (Holm's strictest step)."""
    a, b = [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 2.0}], [{"x": 2.0, "y": 0.0}, {"x": 3.0, "y": 2.0}]
    se = np.sqrt(0.5 / 2 + 0.5 / 2)
    row = compare(a, b, {}, primary=())[0]
    assert row["df"] == pytest.approx(2.0) and row["family"] == "exploratory"
    assert row["detectable"] == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.80, 2)) * se)
    assert row["detectable"] > 1.8 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.80)) * se  # the normal understates it
    rows = {r["metric"]: r for r in compare(a, b, {}, primary=("x", "y"))}
    assert rows["x"]["family"] == "primary" and rows["x"]["correction"] == "holm"
    assert rows["x"]["detectable"] == pytest.approx((stats.t.ppf(1 - 0.05 / 4, 2) + stats.t.ppf(0.80, 2)) * se)
    sd_row = compare([{"x": 1.0}], [{"x": 1.5}], {"x": 0.1}, noise_df=4, primary=())[0]
    assert sd_row["df"] == 4 and sd_row["p"] == pytest.approx(2 * stats.t.sf(0.5 / (np.sqrt(2) * 0.1), 4))


def test_constant_metrics_are_listed_and_left_out_of_both_corrections():
    """A metric with one value in every run tests nothing: with it in, Holm over 2 would miss the primary metric
    at p = 0.04; primary and exploratory metrics are corrected apart."""
    a = [{"p": 0.0, "c": 3.0, "e": 0.0}, {"p": 1.0, "c": 3.0, "e": 1.0}, {"p": 0.5, "c": 3.0, "e": 0.5}]
    b = [{"p": 1.4, "c": 3.0, "e": 1.4}, {"p": 2.4, "c": 3.0, "e": 2.4}, {"p": 1.9, "c": 3.0, "e": 1.9}]
    rows = {r["metric"]: r for r in compare(a, b, {}, primary=("p", "c"))}
    assert rows["c"]["family"] == "constant" and rows["c"]["correction"] is None and not rows["c"]["differs"]
    assert 0.025 < rows["p"]["p"] < 0.05 and rows["p"]["differs"]  # alone in its family: Holm at 0.05
    assert rows["e"]["family"] == "exploratory" and rows["e"]["correction"] == "benjamini-hochberg"
