"""The graded benchmark's scoring (vitheads.analysis.graded) on synthetic detection tables: power curves with
the implant as the unit, the minimum detectable effect, specificity over the heads that could have moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitheads.analysis.benchmark import METHODS, RULE
from vitheads.analysis.graded import (
    ALL_METHODS,
    DECOMPOSITION,
    component_flags,
    detection_rows,
    head_flags,
    minimum_detectable,
    power_curve,
    score,
    specificity,
)
from vitheads.analysis.stats import proportion_interval
from vitheads.names import TARGETS

LEVELS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def table(hits: list[int], n: int = 10, site: str = "head", method: str = RULE) -> pd.DataFrame:
    """n implants per level (and a control level 0 with none detected), hits[i] detected at LEVELS[i]; the
    achieved effect is the level itself."""
    rows = []
    for level, k in zip((0.0, *LEVELS), (0, *hits)):
        for i in range(n):
            rows.append(
                {
                    "seed": i % 3,
                    "site": site,
                    "variant": "frame_grey" if i < n // 2 else "tick_labels_text",
                    "band": "early" if i % 2 else "late",
                    "level": level,
                    "effect": level,
                    "method": method,
                    "detected": float(i < k),
                    "detected_both": float(i < k // 2),
                    "new_flags": int(i == 0 and level > 0.05),
                    "new_flags_before": 0,
                    "new_flags_same_layer": int(i == 0 and level > 0.05),
                    "new_flags_after": 0,
                    "could_move": 143,
                    "could_move_same_layer": 11,
                }
            )
    return pd.DataFrame(rows)


def test_the_power_curve_counts_implants_with_wilson_intervals():
    curve = power_curve(table([0, 1, 3, 6, 9, 10]))
    assert [c["level"] for c in curve] == [0.0, *LEVELS]
    assert [c["detected"] for c in curve] == [0, 0, 1, 3, 6, 9, 10]
    assert all(c["implants"] == 10 for c in curve)
    assert curve[0]["ci"] == proportion_interval(0, 10) == [0.0, 0.2775]
    assert curve[-1]["ci"] == [0.7225, 1.0]


def test_an_implant_whose_truth_is_flagged_at_gain_0_leaves_the_levels_above():
    rows = table([0, 1, 3, 6, 9, 10])
    rows["layer"], rows["heads"] = 2, "1"
    rows.loc[(rows["level"] == 0) & (rows["seed"] == 0) & (rows.index % 10 == 0), "detected"] = 1.0  # implant 0
    curve = power_curve(rows)
    assert curve[0]["detected"] == 1 and curve[0]["implants"] == 10
    # implant 0 shares seed and band with implant 6 but not its element: only implant 0 leaves the levels above
    assert all(c["implants"] == 9 and c["left_out_flagged_at_gain_0"] == 1 for c in curve[1:])


def test_the_minimum_detectable_effect_is_interpolated_in_log_effect():
    mde = minimum_detectable(power_curve(table([0, 1, 3, 6, 9, 10])))
    expected = np.exp(np.log(0.03) + (0.8 - 0.6) / (0.9 - 0.6) * (np.log(0.1) - np.log(0.03)))
    assert mde["reached"] and mde["effect"] == pytest.approx(expected)
    assert not mde["below_smallest_level"]
    assert mde["assured_effect"] is None  # 10 implants a level: the Wilson lower bound of 10/10 is 0.72
    assured = minimum_detectable(power_curve(table([0, 4, 12, 24, 36, 40], n=40)))["assured_effect"]
    assert 0.1 < assured < 0.3  # 36/40: lower bound 0.77; 40/40: 0.91
    never = minimum_detectable(power_curve(table([0, 0, 0, 1, 2, 7])))
    assert never["effect"] is None and not never["reached"] and never["largest_level"] == 0.3
    always = minimum_detectable(power_curve(table([9] * 6)))
    assert always["effect"] == 0.001 and always["below_smallest_level"]
    dipping = minimum_detectable(power_curve(table([0, 1, 3, 9, 6, 9])))  # 90% at 0.03, 60% at 0.1, 90% at 0.3
    expected = np.exp(np.log(0.1) + (0.8 - 0.6) / (0.9 - 0.6) * (np.log(0.3) - np.log(0.1)))
    assert dipping["effect"] == pytest.approx(expected) and not dipping["dips"]  # from where it stays above
    fallen = minimum_detectable(power_curve(table([0, 1, 3, 9, 9, 6])))  # reaches 90% and falls back to 60%
    assert fallen["effect"] is None and fallen["dips"]


def test_specificity_counts_implants_with_a_false_flag_in_their_own_layer():
    found = specificity(table([0, 1, 3, 6, 9, 10]))
    by_level = {s["level"]: s for s in found}
    assert by_level[0.3]["with_a_false_flag_in_layer"] == 1 and by_level[0.3][
        "false_in_layer_ci"
    ] == proportion_interval(1, 10)
    assert by_level[0.01]["with_a_false_flag_in_layer"] == 0
    assert by_level[0.3]["head_rate_in_layer"] == pytest.approx(1 / 110, abs=1e-5)


def test_detection_rows_split_new_flags_by_position_and_count_heads_that_could_move():
    layers, heads = 4, 3
    zero = np.zeros((layers, heads), bool)
    zero[0, 0] = True  # the trained model's own flag: not the implant's doing
    now = zero.copy()
    now[2, 1] = True  # the implanted head
    now[2, 0] = True  # a head in the implant's own layer: cannot be on its route
    now[3, 2] = True  # a later head
    flags = dict.fromkeys(METHODS, now)
    zeros = dict.fromkeys(METHODS, zero)
    components = {"heads": now, "mlp": np.zeros(layers, bool), "changed": False}
    flags[DECOMPOSITION], zeros[DECOMPOSITION] = components, {**components, "heads": zero}
    implant = {"seed": 1, "variant": "title_text", "site": "head", "band": "early", "layer": 2, "heads": (1,)}
    rows = detection_rows({**implant, "target": 0}, {"level": 0.1, "effect": 0.11, "gain": 3.0}, flags, zeros)
    assert [r["method"] for r in rows] == list(ALL_METHODS)
    r = rows[0]
    assert r["detected"] == 1.0 and r["heads"] == "1"
    assert (r["new_flags"], r["new_flags_before"], r["new_flags_same_layer"], r["new_flags_after"]) == (2, 0, 1, 1)
    assert r["could_move"] == layers * heads - 1 - 1  # all but the implant's head and the one flagged at gain 0
    assert r["could_move_same_layer"] == heads - 1
    mlp = detection_rows(
        {**implant, "site": "mlp", "heads": (), "target": 0}, {"level": 0.1, "effect": 0.1, "gain": 1}, flags, zeros
    )
    assert np.isnan(mlp[0]["detected"]) and mlp[-1]["detected"] == 0.0  # per-head methods have no truth there


def test_component_flags_find_the_component_that_carries_the_change():
    rng = np.random.default_rng(0)
    n, depth, heads, t = 30, 2, 3, 3
    k = 1 + depth * (heads + 1)
    routes = rng.normal(0, 1e-4, (n, 2, k, 2, t))
    carrying = 1 + 1 * (heads + 1) + 2  # layer 2 (index 1), head 3 (index 2)
    routes[:, :, carrying, 1, 0] += 0.2 + rng.normal(0, 0.01, (n, 2))
    weights = rng.multinomial(n, np.full(n, 1 / n), size=200) / n
    found = component_flags(routes, weights, np.full(t, 0.01), 0.05, depth)
    assert found["heads"].sum() == 1 and found["heads"][1, 2]
    assert not found["mlp"].any() and not found["changed"]


def test_head_flags_read_each_methods_p_values_for_the_variant():
    rows = []
    for l in range(1, 3):
        for h in range(1, 3):
            strong = (l, h) == (2, 1)
            row = {"variant": "title_text", "layer": l, "head": h, "attention_auroc_p": 1e-6 if strong else 0.5}
            row |= {f"kv_prediction_change_{t}_p": (1e-8 if strong and t == TARGETS[0] else 0.9) for t in TARGETS}
            rows.append(row)
    found = head_flags(pd.DataFrame(rows), "title_text", 0.05, TARGETS)
    assert found[RULE].tolist() == [[False, False], [True, False]]
    assert found["attention AUROC (ceiling-free)"].tolist() == [[False, False], [True, False]]
    assert not found["head patching"].any()  # no column: nothing flagged


def test_score_gives_every_method_its_curves_and_the_non_head_sites_their_own_scores():
    rows = pd.concat(
        [
            table([0, 1, 3, 6, 9, 10], method=m, site=s)
            for m in (RULE, DECOMPOSITION)
            for s in ("head", "redundant", "mlp")
        ]
    )
    rows.loc[(rows["site"] == "mlp") & (rows["method"] != DECOMPOSITION), "detected"] = np.nan
    scored = score(rows)
    assert scored[RULE]["head"]["minimum_detectable"]["reached"]
    assert {"early", "late"} <= scored[RULE]["head"].keys()
    assert "mlp" not in scored[RULE] and "misattribution" in scored[RULE]
    assert "mlp" in scored[DECOMPOSITION] and "misattribution" not in scored[DECOMPOSITION]
    assert "redundant_both" in scored[RULE] and "specificity" in scored[RULE]
    by_element = scored[RULE]["head"]["by_element"]  # implants i < 5 are frame_grey: the detected ones (i < k)
    assert set(by_element) == {"frame_grey", "tick_labels_text"}
    assert [c["detected"] for c in by_element["tick_labels_text"]["curve"]] == [0, 0, 0, 0, 1, 4, 5]
