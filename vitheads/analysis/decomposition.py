"""Where each plot element enters the output, and the claim each element earns (issue 37).

Reads the exact route split of vitheads.interp.decompose ([n, 2, K, 2, T] per variant: direction, component,
changed/other tokens, target). Components are averaged over the two patching orders; their half-difference
is the order interaction. Routes (module doc of vitheads.interp.decompose): stay (embedding and MLPs at the
changed tokens), attention at the changed tokens, moved (heads' writes at the other tokens, per layer and,
in a layer carrying at least HEAD_SPLIT of the whole, per head), MLP on moved information. Routes are signed
and can cancel: a route can exceed the whole.

Per element and target one claim: *insensitive* when the simultaneous upper 95% bound of its mean |change|
lies under paper.ELEMENT_EQUIVALENCE_Z (a real but smaller change is insensitive too: that is an
equivalence claim); else *changes the output* when the simultaneous interval of the mean signed change
excludes 0 or the lower bound of its mean |change| clears the equivalence bound; else *inconclusive*.
Simultaneous: Bonferroni over the element x target cells of the run. Intervals are over test images
(bootstrap): they hold for this trained model, not for training runs.
"""

from __future__ import annotations

import numpy as np

from vitheads.analysis.stats import mean_ci, resampled_means
from vitheads.data.variants import CONTROL_ROLES, variant_spec
from vitheads.paper import ELEMENT_EQUIVALENCE_Z

HEAD_SPLIT = 0.1  # a layer carrying this share of the whole's mean |change| is split by head
ROUTES = ("stay", "attention_at_changed", "moved", "mlp_on_moved")
CHANGED, OTHER = 0, 1


def layout(k: int, depth: int) -> int:
    """Heads per layer from the component count K = 1 + depth * (heads + 1)."""
    heads = (k - 1) // depth - 1
    if 1 + depth * (heads + 1) != k:
        raise ValueError(f"{k} components do not fit {depth} layers")
    return heads


def routes_of(split: np.ndarray, depth: int) -> dict[str, np.ndarray]:
    """Route name -> [n, T] from one direction's (or the average's) split [n, K, 2, T]; per-layer entries
    'moved L{l}' and 'attention_at_changed L{l}', and per-head 'moved L{l}H{h}'."""
    heads = layout(split.shape[1], depth)
    per_layer = split[:, 1:].reshape(len(split), depth, heads + 1, 2, -1)  # [n, L, H + 1, 2, T]
    attn, mlp = per_layer[:, :, :heads], per_layer[:, :, heads]  # [n, L, H, 2, T], [n, L, 2, T]
    out = {
        "stay": split[:, 0, CHANGED] + mlp[:, :, CHANGED].sum(1),
        "attention_at_changed": attn[:, :, :, CHANGED].sum((1, 2)),
        "moved": attn[:, :, :, OTHER].sum((1, 2)),
        "mlp_on_moved": mlp[:, :, OTHER].sum(1),
        "embedding_at_other": split[:, 0, OTHER],  # zero by construction: the check that the token split holds
    }
    for l in range(depth):
        out[f"moved L{l + 1}"] = attn[:, l, :, OTHER].sum(1)
        out[f"attention_at_changed L{l + 1}"] = attn[:, l, :, CHANGED].sum(1)
        out |= {f"moved L{l + 1}H{h + 1}": attn[:, l, h, OTHER] for h in range(heads)}
    return out


def route_rows(
    variant: str, routes: np.ndarray, whole: np.ndarray, weights, depth: int, baseline: str, targets
) -> list:
    """Rows (one per route and target) of the route table: signed mean with CI, mean |route|, its share of
    the whole's mean |change|, and the order interaction (mean |forward - reverse| / 2)."""
    both = [routes_of(routes[:, d], depth) | {"whole": whole} for d in (0, 1)]
    mean_split = {"whole": whole} | routes_of(routes.mean(1), depth)
    whole_abs = np.abs(whole).mean(0)  # [T]
    split = {
        l for l in range(1, depth + 1) if (np.abs(mean_split[f"moved L{l}"]).mean(0) >= HEAD_SPLIT * whole_abs).any()
    }
    rows = []
    for name, values in mean_split.items():
        level = level_of(name)
        if level == "head" and int(name.split("L")[1].split("H")[0]) not in split:
            continue
        mean, low, high = mean_ci(values, weights)
        interaction = np.nanmean(np.abs(both[0][name] - both[1][name]), 0) / 2
        for t, target in enumerate(targets):
            rows.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    "route": name,
                    "level": level,
                    "target": target,
                    "mean": mean[t],
                    "ci_low": low[t],
                    "ci_high": high[t],
                    "mean_abs": np.nanmean(np.abs(values[:, t])),
                    "share_of_whole_abs": np.nanmean(np.abs(values[:, t])) / whole_abs[t] if whole_abs[t] else np.nan,
                    "order_interaction": interaction[t],
                }
            )
    return rows


def level_of(route: str) -> str:
    """'route' (whole, stay, moved, ...), 'layer' (moved L6) or 'head' (moved L6H3)."""
    if " " not in route:
        return "route"
    return "head" if "H" in route.split(" ")[1] else "layer"


def simultaneous_interval(values: np.ndarray, weights: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """[T] bounds of the mean of values [n, T] over images, 95% jointly over `cells` intervals (Bonferroni,
    percentile bootstrap)."""
    resampled = resampled_means(values, weights)  # [R, T]
    tail = 100 * 0.05 / (2 * cells)
    return np.nanpercentile(resampled, tail, axis=0), np.nanpercentile(resampled, 100 - tail, axis=0)


def claim(mean_low: float, mean_high: float, abs_low: float, abs_high: float) -> str:
    """The one claim an element earns for a target (module doc); every bound simultaneous."""
    if abs_high < ELEMENT_EQUIVALENCE_Z:
        return "insensitive"
    if mean_low > 0 or mean_high < 0 or abs_low >= ELEMENT_EQUIVALENCE_Z:
        return "changes the output"
    return "inconclusive"


def claimed_variants(variants: list[str]) -> list[str]:
    """The variants that change a plot element (controls change none): the cells of the simultaneous bounds."""
    return [v for v in variants if variant_spec(v).role not in CONTROL_ROLES]


def element_claims(variant: str, m, weights: np.ndarray, cells: int, depth: int, targets: tuple[str, ...]) -> dict:
    """The variant's claim per target, with its whole change, bounds and main routes (metrics-ready)."""
    change = m.prediction_change  # [n, T]
    low, high = simultaneous_interval(change, weights, cells)
    abs_low, abs_high = simultaneous_interval(np.abs(change), weights, cells)
    routes = routes_of(m.route_changes.mean(1), depth)
    route_se = {name: resampled_means(routes[name], weights).std(0, ddof=1) for name in ROUTES}  # [T] each
    change_se = resampled_means(change, weights).std(0, ddof=1)
    frozen, frozen_low, frozen_high = mean_ci(m.frozen_attention_change, weights)
    r = lambda v: round(float(v), 5)
    out = {"distractor": variant_spec(variant).kind, "equivalence_bound_z": r(ELEMENT_EQUIVALENCE_Z)}
    for t, target in enumerate(targets):
        out[target] = {
            "claim": claim(low[t], high[t], abs_low[t], abs_high[t]),
            "change": r(change[:, t].mean()),
            "change_se": r(change_se[t]),
            "change_simultaneous": [r(low[t]), r(high[t])],
            "abs_change": r(np.abs(change[:, t]).mean()),
            "abs_change_simultaneous": [r(abs_low[t]), r(abs_high[t])],
            **{f"route_{name}": r(routes[name][:, t].mean()) for name in ROUTES},
            **{f"route_{name}_se": r(route_se[name][t]) for name in ROUTES},
            "frozen_attention_change": r(frozen[t]),
            "frozen_attention_change_ci": [r(frozen_low[t]), r(frozen_high[t])],
            "resampled_abs_change": r(np.nanmean(np.abs(m.resampled_change[:, t]))),
        }
    return out


def decomposition_rows(variant: str, m, weights: np.ndarray, depth: int, targets: tuple[str, ...]) -> list[dict]:
    """The route table's rows of one variant: the paired render and the resampled element tokens."""
    rows = route_rows(variant, m.route_changes, m.prediction_change, weights, depth, "paired", targets)
    return rows + route_rows(
        variant, m.resampled_route_changes, m.resampled_change, weights, depth, "resampled", targets
    )


def ruler_test(m, z_true: np.ndarray, weights: np.ndarray, targets: tuple[str, ...]) -> dict:
    """The frame as a ruler: under frame_moved (spines on the bottom-left -> the top-right), the signed change of
    each prediction (z), and its slope against the target's true value with a bootstrap 95% interval. A
    model that measures the chirp from the spines shifts its predictions one way (mean) or in proportion to
    the chirp's distance from them (slope); one that does not leaves both at 0. A ruler whose zero moved from one
    side of the plot to the other would shift a prediction by up to the axis's whole range: the shift is also given
    as a share of the target's range over the test images (z units)."""
    change = m.prediction_change  # [n, T]
    mean, low, high = mean_ci(change, weights)
    slopes = np.stack([slope(weights_row, z_true, change) for weights_row in weights])  # [R, T]
    point = slope(np.ones(len(change)), z_true, change)
    axis = z_true.max(0) - z_true.min(0)  # [T] the target's range in z units
    s_low, s_high = np.nanpercentile(slopes, (2.5, 97.5), axis=0)
    r = lambda v: round(float(v), 5)
    return {
        target: {
            "change": r(mean[t]),
            "change_ci": [r(low[t]), r(high[t])],
            "slope_on_truth": r(point[t]),
            "slope_on_truth_ci": [r(s_low[t]), r(s_high[t])],
            "axis_range_z": r(axis[t]),
            "shift_share_of_axis": r(abs(mean[t]) / axis[t]),
            "shifts_predictions": bool(low[t] > 0 or high[t] < 0 or s_low[t] > 0 or s_high[t] < 0),
        }
        for t, target in enumerate(targets)
    }


def slope(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[T] weighted least-squares slope of y[:, t] on x[:, t] (w: image counts of one resample)."""
    w = w[:, None] / w.sum()
    xc, yc = x - (w * x).sum(0), y - (w * y).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * xc * yc).sum(0) / (w * xc * xc).sum(0)
