"""The graded benchmark's scoring (issue 38): which heads and routes each method flags on an implanted model,
and per method the detection probability against the implant's effect size, with intervals whose unit is the
implant (vitheads.model.implant; the study: vitheads.study.graded).

An implant is one (seed, element, site, layer, head(s), target) at one gain; the study measures each at
five or more calibrated effect levels and at gain 0 (the control: the trained model itself). Each method
flags heads on the implanted model by its own rule at the thresholds fixed before the runs (params.yaml's
causal section, recorded in the study file's header); the decomposition (vitheads.interp.decompose) flags
components (each head, each MLP, the changed tokens' total) by the repaired rule's bar on its route split.

detected      head: the implanted head flagged; redundant: either of its two (`detected_both`: both); mlp: the
              decomposition flags the layer's MLP; direct: it flags the changed tokens' total. Per-head
              methods have no truth at the mlp and direct sites (NaN): there they are scored on what they
              flag instead (misattribution), which is the blind spot the issue asks to show.
new_flags     heads flagged at this gain that are not the implant's and were not flagged at gain 0 on the same
              model and element: what the implant made the method flag elsewhere.
could_move    the heads that could have been newly flagged: every head but the implant's and those already
              flagged at gain 0. No mask excludes a head, so nothing else is left out. A later head can
              legitimately carry the implant's write on (it reads the stream the implant wrote to), and an
              earlier one can gain effect through the implant's read; new flags are therefore split by position
              (before, in, after the implant's layer): only those in the implant's own layer cannot be on its
              route, and the primary false rate counts them.

Power: per level, k of n implants detected, Wilson 95%; the minimum effect detected with 80% probability is
interpolated on the curve (log effect, linear in the rate) between the last level below 80% and the first at
or above it; "not reached" when no level reaches it. The x of a level is the median achieved effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads.analysis.benchmark import DECOMPOSITION, METHODS, columns
from vitheads.analysis.causal import discoveries, stat
from vitheads.analysis.stats import benjamini_hochberg, proportion_interval

ALL_METHODS = (*METHODS, DECOMPOSITION)
SITES = ("head", "redundant", "mlp", "direct")
HEAD_SITES = ("head", "redundant")
POWER = 0.8


def head_flags(rows: pd.DataFrame, variant: str, fdr: float, targets: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per per-head method (vitheads.analysis.benchmark.METHODS), [L, H] bool: its discoveries on one variant's
    head rows (vitheads.analysis.causal.head_rows), Benjamini-Hochberg at fdr over heads (and targets)."""
    indexed = rows.set_index(["variant", "layer", "head"])
    shape = (int(rows["layer"].max()), int(rows["head"].max()))
    out = {}
    for method, (per_target, column) in METHODS.items():
        out[method] = discoveries(indexed, [variant], columns(indexed, per_target, column, targets), fdr).reshape(shape)
    return out


def component_flags(
    route_changes: np.ndarray, weights: np.ndarray, bars: np.ndarray, fdr: float, depth: int
) -> dict[str, np.ndarray | bool]:
    """The decomposition as a detector: route_changes [n, 2, K, 2, T] (vitheads.interp.decompose.route_changes:
    direction, component, changed/other tokens, target) averaged over the two directions; a component (the
    embedding, each head, each MLP) and the changed tokens' total are flagged when the mean |change| it carries
    of some target exceeds that target's bar (vitheads.analysis.causal.change_bars), one-sided, Benjamini-
    Hochberg at fdr over components x targets. Returns heads [L, H], mlp [L], changed (bool)."""
    split = route_changes.mean(1)  # [n, K, 2, T]
    k = split.shape[1]
    heads = (k - 1) // depth - 1
    components = np.abs(split.sum(2))  # [n, K, T]
    changed = np.abs(split[:, :, 0].sum(1))[:, None]  # [n, 1, T]
    values = np.concatenate([components, changed], 1)  # [n, K + 1, T]
    p = stat(values, weights, bars[None, :])[3]  # [K + 1, T]
    found = benjamini_hochberg(p.reshape(1, -1), fdr).reshape(p.shape).any(-1)  # [K + 1]
    per_layer = found[1:k].reshape(depth, heads + 1)
    return {"heads": per_layer[:, :heads], "mlp": per_layer[:, heads], "changed": bool(found[k])}


def detection_rows(implant: dict, level: dict, flags: dict, zero: dict) -> list[dict]:
    """One row per method for one implant at one level. implant: seed, variant, site, band, layer (0-based),
    heads (0-based), target; level: level (wanted z, 0 for the control), effect (achieved z), gain; flags and
    zero: {method: [L, H] bool} at this gain and at gain 0, and {DECOMPOSITION: component_flags(...)}."""
    truth = {(implant["layer"], h) for h in implant["heads"]}
    rows = []
    for method in ALL_METHODS:
        found = flags[method]["heads"] if method == DECOMPOSITION else flags[method]
        before = zero[method]["heads"] if method == DECOMPOSITION else zero[method]
        layers, n_heads = found.shape
        new = [(l, h) for l in range(layers) for h in range(n_heads) if found[l, h] and not before[l, h]]
        new = [lh for lh in new if lh not in truth]
        could = sum(1 for l in range(layers) for h in range(n_heads) if (l, h) not in truth and not before[l, h])
        hits = [bool(found[lh]) for lh in sorted(truth)]
        detected, both = np.nan, np.nan
        if implant["site"] in HEAD_SITES:
            detected, both = float(any(hits)), float(all(hits))
        elif method == DECOMPOSITION:
            f = flags[method]
            detected = float(f["mlp"][implant["layer"]] if implant["site"] == "mlp" else f["changed"])
        layer = implant["layer"]
        rows.append(
            {
                **{k: implant[k] for k in ("seed", "variant", "site", "band", "layer", "target")},
                "heads": "+".join(str(h) for h in implant["heads"]),
                "level": level["level"],
                "effect": level["effect"],
                "gain": level["gain"],
                "method": method,
                "detected": detected,
                "detected_both": both,
                "new_flags": len(new),
                "new_flags_before": sum(l < layer for l, _ in new),
                "new_flags_same_layer": sum(l == layer for l, _ in new),
                "new_flags_after": sum(l > layer for l, _ in new),
                "could_move": could,
                "could_move_same_layer": sum(
                    1 for h in range(n_heads) if (layer, h) not in truth and layer < layers and not before[layer, h]
                ),
                "flagged": int(found.sum()),
            }
        )
    return rows


IMPLANT_KEY = ("seed", "variant", "site", "band", "layer", "heads", "target")


def power_curve(rows: pd.DataFrame, column: str = "detected") -> list[dict]:
    """Per level (the control, level 0, first): implants, detected, rate and Wilson 95% (unit: the implant),
    and the achieved effects (median, min, max). An implant whose truth the method already flags at gain 0
    (the trained model's own reading) counts in the control row and is left out of the levels above it, where
    its detection would not be the implant's; how many were left out is in each level's row."""
    out = []
    usable = rows.dropna(subset=[column])
    key = [k for k in IMPLANT_KEY if k in usable]
    zero = usable[(usable["level"] == 0) & (usable[column] > 0)]
    flagged_at_zero = set(map(tuple, zero[key].to_numpy().tolist())) if key else set()
    for level, group in usable.groupby("level", sort=True):
        excluded = 0
        if level > 0 and flagged_at_zero:
            keep = [tuple(r) not in flagged_at_zero for r in group[key].to_numpy().tolist()]
            excluded = len(keep) - sum(keep)
            group = group[keep]
        if not len(group):
            continue
        k, n = int(group[column].sum()), len(group)
        out.append(
            {
                "level": float(level),
                "implants": n,
                "detected": k,
                "rate": round(k / n, 4),
                "ci": proportion_interval(k, n),
                "effect_median": float(group["effect"].median()),
                "effect_range": [float(group["effect"].min()), float(group["effect"].max())],
                "left_out_flagged_at_gain_0": excluded,
            }
        )
    return out


def minimum_detectable(curve: list[dict], power: float = POWER) -> dict:
    """The smallest effect detected with probability `power`: interpolated in log effect between the last level
    under it and the first level from which every larger level stays at or above it (on the rate, and on the
    Wilson lower bound: the effect the benchmark assures); None where no level reaches it for good (a curve
    that reaches `power` and falls back has no such effect: `dips` says so), and `below_smallest` when the
    smallest level already does."""
    levels = [c for c in curve if c["level"] > 0]

    def crossing(value) -> tuple[float | None, bool]:
        above = [value(c) >= power for c in levels]
        first = next((i for i in range(len(levels)) if all(above[i:])), None)
        if first is None:
            return None, False
        if first == 0:
            return levels[0]["effect_median"], True
        lo, hi = levels[first - 1], levels[first]
        x0, x1 = np.log(max(lo["effect_median"], 1e-12)), np.log(max(hi["effect_median"], 1e-12))
        t = (power - value(lo)) / (value(hi) - value(lo))
        return float(np.exp(x0 + t * (x1 - x0))), False

    effect, below = crossing(lambda c: c["rate"])
    assured, assured_below = crossing(lambda c: c["ci"][0] if c["ci"] else 0.0)
    return {
        "power": power,
        "effect": effect,
        "reached": effect is not None,
        "below_smallest_level": below,
        "assured_effect": assured,
        "assured_below_smallest_level": assured_below,
        "largest_level": levels[-1]["effect_median"] if levels else None,
        "dips": effect is None and any(c["rate"] >= power for c in levels),
    }


def specificity(rows: pd.DataFrame) -> list[dict]:
    """Per level: implants with a new flag in the implant's own layer (where no head can be on its route; unit:
    the implant, Wilson 95%), implants with any new flag, and the head-level rates over the heads that could
    have moved (for scale, not for inference: the heads of one model and images are not independent)."""
    out = []
    for level, group in rows.groupby("level", sort=True):
        n = len(group)
        same, anywhere = int((group["new_flags_same_layer"] > 0).sum()), int((group["new_flags"] > 0).sum())
        could, could_same = int(group["could_move"].sum()), int(group["could_move_same_layer"].sum())
        out.append(
            {
                "level": float(level),
                "implants": n,
                "with_a_false_flag_in_layer": same,
                "false_in_layer_ci": proportion_interval(same, n),
                "with_any_new_flag": anywhere,
                "any_new_ci": proportion_interval(anywhere, n),
                "new_flags_before_in_after": [
                    int(group[f"new_flags_{p}"].sum()) for p in ("before", "same_layer", "after")
                ],
                "head_rate_in_layer": round(int(group["new_flags_same_layer"].sum()) / could_same, 5)
                if could_same
                else None,
                "head_rate_any": round(int(group["new_flags"].sum()) / could, 5) if could else None,
            }
        )
    return out


def misattribution(rows: pd.DataFrame) -> list[dict]:
    """At the mlp and direct sites (no head is the route): per level, implants on which a per-head method newly
    flags some head (it attributes a non-head route to heads), with Wilson 95%."""
    out = []
    for level, group in rows.groupby("level", sort=True):
        k, n = int((group["new_flags"] > 0).sum()), len(group)
        out.append({"level": float(level), "implants": n, "misattributed": k, "ci": proportion_interval(k, n)})
    return out


def scored(rows: pd.DataFrame, column: str = "detected") -> dict:
    curve = power_curve(rows, column)
    return {"curve": curve, "minimum_detectable": minimum_detectable(curve)}


def score(rows: pd.DataFrame, bands: tuple[str, ...] = ("early", "late")) -> dict:
    """Per method: the power curve and minimum detectable effect at each site (all bands, each band and each
    element: an element's feature sets the gain an implant needs, hence how far from the trained model it is),
    the redundant site (either head; both heads), the mlp and direct sites (the decomposition), specificity
    at the head sites, and misattribution at the non-head sites."""
    out = {}
    for method in ALL_METHODS:
        mine = rows[rows["method"] == method]
        entry = {}
        for site in SITES:
            at = mine[mine["site"] == site]
            if at["detected"].notna().any():
                entry[site] = scored(at)
                for band in bands:
                    inside = at[at["band"] == band]
                    if inside["detected"].notna().any():
                        entry[site][band] = scored(inside)
                entry[site]["by_element"] = {element: scored(part) for element, part in at.groupby("variant")}
            if site == "redundant" and at["detected_both"].notna().any():
                entry["redundant_both"] = scored(at, "detected_both")
        heads = mine[mine["site"].isin(HEAD_SITES)]
        if len(heads):
            entry["specificity"] = specificity(heads)
        other = mine[~mine["site"].isin(HEAD_SITES)]
        if len(other) and method != DECOMPOSITION:
            entry["misattribution"] = misattribution(other)
        out[method] = entry
    return out
