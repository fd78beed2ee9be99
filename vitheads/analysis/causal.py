"""The causal rules: per head, does it respond to a distractor, follow it, change the predictions?

Reads the per-image measures of vitheads.interp.causal (a VariantMeasures per variant; its arrays only,
so no torch here). The rule, stated once (RULE_TEXT, the report prints it):
  responds             in a response variant (a content swap; for the frame, painting it over), the 95%
                       CI of the head's output change at the element's patches lies above `min_response`
                       of its typical output norm, and the CI of that change minus its change at the
                       pair's other patches lies above 0 (the positional null)
  follows              the CI of the attention it moves with the moved element (follow score) lies above
                       `min_follow`
  changes predictions  patching its output between a response pair (both ways) moves the predictions by a
                       mean |change| whose CI lies above `min_prediction_change` (z units)
  detector             responds and follows
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads.analysis.stats import mean_ci, passing_count, resampled_means
from vitheads.data.variants import VARIANTS, moved_variant, response_variants
from vitheads.names import DISTRACTOR_KINDS, PATCH_DIRECTIONS, TARGETS, head_name

FOLLOW_BARS = (0.25, 0.5, 0.75, 1.0, 1.5)  # causal.min_follow values the detector counts are also given for


def rule_text(c: dict, images: int, patch_images: int) -> str:
    """The causal rule in words, with this run's thresholds (the report's paragraph)."""
    return (
        f"Per head: *responds* when, in a response variant (a content swap; for the frame, painting it over), the 95% "
        f"CI of its output change at the element's patches lies above {c['min_response']:g} of its typical output norm "
        "and the CI of that change minus its change at the pair's other patches lies above 0 (the positional null: a "
        "head whose output changes everywhere is not responding to the element); *follows* when the CI of "
        "the attention "
        "it moves with the moved element (title left to right, colorbar top to bottom half, frame from left/bottom to "
        f"top/right) lies above {c['min_follow']:g} (a follow score of 2 means all of a uniform head's mass "
        "on the element "
        "moved with it); *changes predictions* when patching its output between a response pair (both ways, first "
        f"{patch_images} of {images} pairs) moves the predictions by a mean |change| whose CI lies above "
        f"{c['min_prediction_change']:g} (z units). A *detector* responds and follows. CIs over images."
    )


def response_conditions(m, c: dict) -> list[tuple[np.ndarray, float]]:
    """`responds` on means: the change at the element above `min_response`, and above the change elsewhere."""
    typical = m.typical_norm.mean(0)
    return [
        (m.sensitivity_element / typical, c["min_response"]),
        ((m.sensitivity_element - m.sensitivity_elsewhere) / typical, 0.0),
    ]


def passing_heads(alternatives: list[list[tuple[np.ndarray, float]]], weights: np.ndarray) -> tuple[int, list[int]]:
    """Heads whose means over images pass any alternative (each a list of (values [n, L, H], threshold),
    all exceeded): how many, and the 95% interval of that count over image resamples (weights [R, n])."""
    point, resampled = False, False
    for conditions in alternatives:
        point = point | np.all([v.mean(0).ravel() > t for v, t in conditions], axis=0)
        resampled = resampled | np.all([resampled_means(v, weights) > t for v, t in conditions], axis=0)
    return passing_count(point, resampled)


def head_rows(variant: str, m, weights: np.ndarray, patch_weights: np.ndarray | None) -> list[dict]:
    """One row per head (1-based layer and head) of one variant: every measure's mean and 95% CI over images."""
    typical = m.typical_norm.mean(0)  # [L, H]
    stats = {
        "sensitivity_element": mean_ci(m.sensitivity_element / typical, weights),
        "sensitivity_elsewhere": mean_ci(m.sensitivity_elsewhere / typical, weights),
        "sensitivity_excess": mean_ci((m.sensitivity_element - m.sensitivity_elsewhere) / typical, weights),
    }
    if m.follow is not None:
        stats["follow"] = mean_ci(m.follow, weights)
    if m.patch_prediction_change is not None:
        stats["patch_prediction_change"] = mean_ci(m.patch_effect, patch_weights)
        stats["patch_squared_error_change"] = mean_ci(m.patch_squared_error_change.mean((-2, -1)), patch_weights)
        for d, direction in enumerate(PATCH_DIRECTIONS):
            stats[f"patch_prediction_change_{direction}"] = mean_ci(
                m.patch_prediction_change[..., d, :].mean(-1), patch_weights
            )
        for t, target in enumerate(TARGETS):
            stats[f"patch_prediction_change_{target}"] = mean_ci(
                m.patch_prediction_change[..., t].mean(-1), patch_weights
            )
            stats[f"patch_squared_error_change_{target}"] = mean_ci(
                m.patch_squared_error_change[..., t].mean(-1), patch_weights
            )
    layers, heads = typical.shape
    rows = []
    for l in range(layers):
        for h in range(heads):
            row = {"variant": variant, "distractor": VARIANTS[variant].kind, "layer": l + 1, "head": h + 1}
            for name, (mean, low, high) in stats.items():
                row |= {name: mean[l, h], f"{name}_ci_low": low[l, h], f"{name}_ci_high": high[l, h]}
            rows.append(row)
    return rows


def model_effect(variant: str, m, weights: np.ndarray) -> dict:
    """The distractor alone: mean change and mean |change| of each prediction (z units), and the
    change of the MSE in percent of the clean MSE, with 95% CIs over images."""
    change, low, high = mean_ci(m.prediction_change, weights)
    size, size_low, size_high = mean_ci(np.abs(m.prediction_change), weights)
    err, err_low, err_high = mean_ci(
        m.squared_error_change.mean(1, keepdims=True) / m.squared_error.mean() * 100, weights
    )
    r = lambda v: round(float(v), 5)
    return {
        "distractor": VARIANTS[variant].kind,
        "images": len(m.prediction_change),
        "mse_change_pct": r(err[0]),
        "mse_change_pct_ci": [r(err_low[0]), r(err_high[0])],
        **{f"{t}_change": r(change[i]) for i, t in enumerate(TARGETS)},
        **{f"{t}_change_ci": [r(low[i]), r(high[i])] for i, t in enumerate(TARGETS)},
        **{f"{t}_abs_change": r(size[i]) for i, t in enumerate(TARGETS)},
        **{f"{t}_abs_change_ci": [r(size_low[i]), r(size_high[i])] for i, t in enumerate(TARGETS)},
    }


def responds(v: pd.DataFrame, c: dict) -> pd.Series:
    """The `responds` rule on one variant's rows (module doc)."""
    return (v["sensitivity_element_ci_low"] > c["min_response"]) & (v["sensitivity_excess_ci_low"] > 0)


def head_evidence(rows: pd.DataFrame, c: dict) -> pd.DataFrame:
    """Per head (1-based), per distractor kind: responds, follows, changes predictions and detector (module doc)."""
    table = rows.set_index(["variant", "layer", "head"])
    variants = list(dict.fromkeys(rows["variant"]))
    out = pd.DataFrame(index=table.loc[variants[0]].index)
    for kind in DISTRACTOR_KINDS:
        tested = response_variants(kind, variants)
        if not tested:
            continue
        out[f"responds_{kind}"] = np.any([responds(table.loc[v], c) for v in tested], axis=0)
        patched = [
            table.loc[v]["patch_prediction_change_ci_low"] for v in tested if "patch_prediction_change_ci_low" in table
        ]
        if patched and all(p.notna().all() for p in patched):
            out[f"changes_predictions_{kind}"] = np.any([p > c["min_prediction_change"] for p in patched], axis=0)
        moved = moved_variant(kind, variants)
        out[f"follows_{kind}"] = table.loc[moved]["follow_ci_low"] > c["min_follow"] if moved else False
        out[f"{kind}_detector"] = out[f"responds_{kind}"] & out[f"follows_{kind}"]
    changes = [col for col in out if col.startswith("changes_predictions_")]
    out["task_relevant"] = out[changes].any(axis=1) if changes else False
    return out.astype(bool).reset_index()


def counted(name: str, alternatives: list, weights: np.ndarray) -> dict:
    """Heads whose means over images pass (the rule, on CI bounds, is stricter), with the 95% interval of that count."""
    count, interval = passing_heads(alternatives, weights)
    return {f"{name}_mean_above": count, f"{name}_mean_above_ci": interval}


def kind_summary(kind: str, evidence: pd.DataFrame, measures: dict, weights, patch_weights, c: dict) -> dict:
    """How many heads respond to, follow and are changed by one distractor kind: the rule's counts, and
    counts on means over images with 95% intervals over image resamples."""
    variants = list(measures)
    tested, moved = response_variants(kind, variants), moved_variant(kind, variants)
    out = {
        "variants": [v for v in variants if VARIANTS[v].kind == kind],
        "response_variants": tested,
        "moved_variant": moved,
        "heads_responding": int(evidence[f"responds_{kind}"].sum()),
    }
    out |= counted("heads_responding", [response_conditions(measures[v], c) for v in tested], weights)
    if f"changes_predictions_{kind}" in evidence:
        out["heads_changing_predictions"] = int(evidence[f"changes_predictions_{kind}"].sum())
        out |= counted(
            "heads_changing_predictions",
            [[(measures[v].patch_effect, c["min_prediction_change"])] for v in tested],
            patch_weights,
        )
    if moved:
        out["heads_following"] = int(evidence[f"follows_{kind}"].sum())
        out |= counted("heads_following", [[(measures[moved].follow, c["min_follow"])]], weights)
    out["detectors"] = int(evidence[f"{kind}_detector"].sum())
    out["detectors_task_irrelevant"] = int((evidence[f"{kind}_detector"] & ~evidence["task_relevant"]).sum())
    return out


def task_relevant_detail(table: pd.DataFrame, evidence: pd.DataFrame) -> dict:
    """Per task-relevant head, its largest patching effect (variant): the mean |prediction change| (z)
    each way and on each target, with 95% CIs over the patched pairs."""
    patched = table.dropna(subset=["patch_prediction_change"])
    out = {}
    for head in evidence[evidence["task_relevant"]].itertuples():
        rows = patched[(patched["layer"] == head.layer) & (patched["head"] == head.head)]
        top = rows.loc[rows["patch_prediction_change"].idxmax()]
        parts = ["", *(f"_{d}" for d in PATCH_DIRECTIONS), *(f"_{t}" for t in TARGETS)]
        out[head_name(head.layer, head.head)] = {
            "variant": top["variant"],
            **{
                f"change{part}": [
                    round(float(top[f"patch_prediction_change{part}{s}"]), 5) for s in ("", "_ci_low", "_ci_high")
                ]
                for part in parts
            },
        }
    return out


def detectors_by_bar(table: pd.DataFrame, c: dict, kinds: list[str]) -> dict:
    """Detectors per kind with the follow bar moved, the others kept: does a verdict hang on the bar?"""
    bars = sorted({*FOLLOW_BARS, c["min_follow"]})
    return {
        f"{bar:g}": {
            kind: int(head_evidence(table, c | {"min_follow": bar})[f"{kind}_detector"].sum()) for kind in kinds
        }
        for bar in bars
    }


def causal_metrics(
    table: pd.DataFrame,
    evidence: pd.DataFrame,
    measures: dict,
    effects: dict,
    weights,
    patch_weights,
    c: dict,
    outside: int,
) -> dict:
    """metrics/causal.json, direct attribution aside."""
    kinds = [kind for kind in DISTRACTOR_KINDS if any(VARIANTS[v].kind == kind for v in measures)]
    n = len(next(iter(measures.values())).prediction_change)
    return {
        "images": n,
        "patch_images": c["patch_images"],
        "pixels_changed_outside_element": outside,
        "task_relevant_heads": int(evidence["task_relevant"].sum()),
        "task_relevant_detail": task_relevant_detail(table, evidence),
        "detectors_by_min_follow": detectors_by_bar(table, c, kinds),
        **{kind: kind_summary(kind, evidence, measures, weights, patch_weights, c) for kind in kinds},
        "model_effect": effects,
    }
