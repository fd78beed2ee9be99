"""The causal rules: per head, does it respond to a distractor, follow it, change the predictions?

Reads the per-image measures of vitheads.interp.causal (a VariantMeasures per variant; its arrays only,
so no torch here). The rules are stated once, in rule_text (the report prints it; docs/methods.md explains
them): one-sided tests of a mean over pairs against a bar, Benjamini-Hochberg over every head, variant and
target a label tests; per-target bars relative to the whole model's change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads.analysis.attention import auroc, excess_share
from vitheads.analysis.stats import benjamini_hochberg, bootstrap_se_p, mean_ci, normal_tail, resampled_means
from vitheads.data.variants import moved_variant, response_variants, variant_spec
from vitheads.names import DISTRACTOR_KINDS, PATCH_DIRECTIONS, TARGETS, head_name

FOLLOW_BARS = (0.25, 0.5, 0.75, 1.0, 1.5)  # causal.min_follow values the detector counts are also given for


def rule_text(c: dict, images: int, patch_images: int) -> str:
    """The causal rules in words, with this run's thresholds (the report's paragraph)."""
    fdr = (
        f"Benjamini-Hochberg at a false-discovery rate of {c['fdr']:g} over every head, variant and target a "
        "label tests"
    )
    return (
        "Per head, each a one-sided test on the mean over pairs (a normal test on the bootstrap standard error, "
        f"{fdr}): *responds* when its "
        f"output change at the element's patches exceeds {c['min_response']:g} of its typical output norm (its change "
        "elsewhere, the broadcast, is reported beside it, not subtracted); *reads* when swapping only its own keys and "
        "values at the tokens the element reaches (queries and all else from the same image) changes its output by "
        f"more than {c['min_response']:g} of its typical norm; *follows* when the attention it moves with a moved "
        f"element exceeds {c['min_follow']:g} (2: all of a uniform head's mass on the element moved with it); "
        "*changes predictions* (head output patched between the pair, both ways) and *reads into the output* (keys "
        "and values patched) when the mean |change| of some target's prediction exceeds the larger of "
        f"{c['min_prediction_change']:g} z and {c['relative_change']:g} of the variant's whole-model mean |change| "
        f"of that target (first {patch_images} of {images} pairs). A *detector* reads and follows."
    )


def stat(values: np.ndarray, weights: np.ndarray, bar=None) -> tuple[np.ndarray, ...]:
    """Mean over images (axis 0), its 95% CI, and (with a bar) the one-sided p of "mean > bar" (bootstrap_se_p)."""
    mean, low, high = mean_ci(values, weights)
    if bar is None:
        return mean, low, high
    resampled = resampled_means(values, weights).reshape(len(weights), *values.shape[1:])
    return mean, low, high, bootstrap_se_p(mean, resampled, bar)


def change_bars(m, c: dict) -> np.ndarray:
    """[T] per target: the prediction change a head must exceed, min_prediction_change or relative_change of
    the variant's whole-model mean |change|, whichever is larger."""
    return np.maximum(c["min_prediction_change"], c["relative_change"] * np.abs(m.prediction_change).mean(0))


def head_stats(m, weights, patch_weights, targets: tuple[str, ...], c: dict) -> dict[str, tuple]:
    """Every measure of one variant as name -> (mean, CI low, CI high[, p]) arrays [L, H]."""
    typical = m.typical_norm.mean(0)  # [L, H]
    out = {
        "sensitivity_element": stat(m.sensitivity_element / typical, weights, c["min_response"]),
        "sensitivity_elsewhere": stat(m.sensitivity_elsewhere / typical, weights),
    }
    if m.follow is not None:
        out["follow"] = stat(m.follow, weights, c["min_follow"])
    bars = change_bars(m, c)
    for kind, change in (("patch", m.patch_prediction_change), ("kv", m.kv_prediction_change)):
        if change is None:
            continue
        out[f"{kind}_prediction_change"] = stat(change.mean((-2, -1)), patch_weights)
        for d, direction in enumerate(PATCH_DIRECTIONS):
            out[f"{kind}_prediction_change_{direction}"] = stat(change[..., d, :].mean(-1), patch_weights)
        for t, target in enumerate(targets):
            out[f"{kind}_prediction_change_{target}"] = stat(change[..., t].mean(-1), patch_weights, bars[t])
    if m.patch_prediction_change is not None:
        out["patch_squared_error_change"] = stat(m.patch_squared_error_change.mean((-2, -1)), patch_weights)
        out["patch_estimate"] = stat(np.abs(m.patch_estimate).mean((-2, -1)), patch_weights)
    if m.kv_read is not None:
        patched_typical = m.typical_norm[: len(m.kv_read)].mean(0)
        out["kv_read"] = stat(m.kv_read.mean(-1) / patched_typical, patch_weights, c["min_response"])
        out["kv_broadcast"] = stat(m.kv_broadcast.mean(-1) / patched_typical, patch_weights)
    if m.baselines is not None:
        out |= baseline_stats(m, patch_weights, bars, targets, c)
    return out


def baseline_stats(m, weights, bars: np.ndarray, targets: tuple[str, ...], c: dict) -> dict[str, tuple]:
    """The planted controls' baselines (vitheads.interp.baselines), each against the bar of the rule it mirrors."""
    b = m.baselines
    tokens = b["tokens"]  # [n, P] the changed tokens
    patched_typical = m.typical_norm[: len(tokens)].mean(0)
    out = {
        "attention_auroc": stat(auroc(b["received"], tokens), weights, c["min_auroc"]),
        "rollout_excess": stat(excess_share(b["rollout"], tokens.mean(1)), weights, c["min_rollout"]),
        "linearised": stat(b["linearised"] / patched_typical, weights, c["min_response"]),
    }
    for t, target in enumerate(targets):
        out[f"direct_change_{target}"] = stat(np.abs(b["direct"][..., t]), weights, bars[t])
        out[f"patch_estimate_{target}"] = stat(np.abs(m.patch_estimate[..., t]).mean(-1), weights, bars[t])
    return out


def head_rows(
    variant: str, m, weights: np.ndarray, patch_weights: np.ndarray | None, c: dict, targets: tuple[str, ...] = TARGETS
) -> list[dict]:
    """One row per head (1-based layer and head) of one variant: every measure's mean, 95% CI over images,
    and, for a measure a rule tests, its p-value (`<measure>_p`, before the multiplicity correction)."""
    stats = head_stats(m, weights, patch_weights, targets, c)
    layers, heads = m.typical_norm.shape[1:]
    rows = []
    for l in range(layers):
        for h in range(heads):
            row = {"variant": variant, "distractor": variant_spec(variant).kind, "layer": l + 1, "head": h + 1}
            for name, values in stats.items():
                row |= {name: values[0][l, h], f"{name}_ci_low": values[1][l, h], f"{name}_ci_high": values[2][l, h]}
                if len(values) == 4:
                    row[f"{name}_p"] = values[3][l, h]
            rows.append(row)
    return rows


def model_effect(variant: str, m, weights: np.ndarray, targets: tuple[str, ...] = TARGETS) -> dict:
    """The distractor alone: mean change and mean |change| of each prediction (z units), and the
    change of the MSE in percent of the clean MSE, with 95% CIs over images."""
    change, low, high = mean_ci(m.prediction_change, weights)
    size, size_low, size_high = mean_ci(np.abs(m.prediction_change), weights)
    err, err_low, err_high = mean_ci(
        m.squared_error_change.mean(1, keepdims=True) / m.squared_error.mean() * 100, weights
    )
    r = lambda v: round(float(v), 5)
    return {
        "distractor": variant_spec(variant).kind,
        "images": len(m.prediction_change),
        "mse_change_pct": r(err[0]),
        "mse_change_pct_ci": [r(err_low[0]), r(err_high[0])],
        **{f"{t}_change": r(change[i]) for i, t in enumerate(targets)},
        **{f"{t}_change_ci": [r(low[i]), r(high[i])] for i, t in enumerate(targets)},
        **{f"{t}_abs_change": r(size[i]) for i, t in enumerate(targets)},
        **{f"{t}_abs_change_ci": [r(size_low[i]), r(size_high[i])] for i, t in enumerate(targets)},
    }


def discoveries(table: pd.DataFrame, variants: list[str], columns: list[str], fdr: float) -> np.ndarray:
    """[heads] bool: heads with a discovery among the p-value columns of the variants, Benjamini-Hochberg over
    all of them at once (heads x variants x columns): the multiplicity control of one label."""
    present = [(v, col) for v in variants for col in columns if col in table and table.loc[v][col].notna().any()]
    if not present:
        return np.zeros(len(table.loc[variants[0]]), bool)
    p = np.stack([table.loc[v][col].fillna(1.0).to_numpy() for v, col in present])  # [tests, heads]
    return benjamini_hochberg(p, fdr).any(0)


def label_columns(table: pd.DataFrame, measure: str, targets: tuple[str, ...]) -> list[str]:
    """The p-value columns of a per-target measure (`<measure>_<target>_p`)."""
    return [f"{measure}_{t}_p" for t in targets]


def head_evidence(rows: pd.DataFrame, c: dict, targets: tuple[str, ...] = TARGETS) -> pd.DataFrame:
    """Per head (1-based), per distractor kind: the labels of the module doc, each with its own
    Benjamini-Hochberg correction. A kind's tested variants are its response variants and its planted cue's."""
    table = rows.set_index(["variant", "layer", "head"])
    variants = list(dict.fromkeys(rows["variant"]))
    out = pd.DataFrame(index=table.loc[variants[0]].index)
    fdr = c["fdr"]
    for kind in DISTRACTOR_KINDS:
        tested = response_variants(kind, variants) + [v for v in variants if v == f"{kind}_cue"]
        if not tested:
            continue
        out[f"responds_{kind}"] = discoveries(table, tested, ["sensitivity_element_p"], fdr)
        out[f"reads_{kind}"] = discoveries(table, tested, ["kv_read_p"], fdr)
        patched = label_columns(table, "patch_prediction_change", targets)
        out[f"changes_predictions_{kind}"] = discoveries(table, tested, patched, fdr)
        out[f"reads_into_output_{kind}"] = discoveries(
            table, tested, label_columns(table, "kv_prediction_change", targets), fdr
        )
        moved = moved_variant(kind, variants)
        out[f"follows_{kind}"] = discoveries(table, [moved], ["follow_p"], fdr) if moved else False
        reads = out[f"reads_{kind}"] if "kv_read_p" in table else out[f"responds_{kind}"]
        out[f"{kind}_detector"] = reads & out[f"follows_{kind}"]
    if "margin_line" in variants:  # a line where no element is: responding to it is not frame-specific
        out["responds_margin_line"] = discoveries(table, ["margin_line"], ["sensitivity_element_p"], fdr)
    if "blob" in variants:  # a bright spot away from the chirp: following it is following brightness
        out["follows_blob"] = discoveries(table, ["blob"], ["follow_p"], fdr)
    changes = [col for col in out if col.startswith("changes_predictions_")]
    out["task_relevant"] = out[changes].any(axis=1) if changes else False
    return out.astype(bool).reset_index()


LABELS = ("responds", "reads", "follows", "changes_predictions", "reads_into_output", "detector")


def kind_summary(kind: str, evidence: pd.DataFrame, variants: list[str]) -> dict:
    """How many heads carry each label for one distractor kind (after the multiplicity correction), and
    which variants tested it."""
    label = lambda name: f"{kind}_detector" if name == "detector" else f"{name}_{kind}"
    return {
        "variants": [v for v in variants if variant_spec(v).kind == kind],
        "response_variants": response_variants(kind, variants),
        "moved_variant": moved_variant(kind, variants),
        **{f"heads_{name}": int(evidence[label(name)].sum()) for name in LABELS if label(name) in evidence},
        "detectors_task_irrelevant": int((evidence[f"{kind}_detector"] & ~evidence["task_relevant"]).sum()),
    }


def task_relevant_detail(table: pd.DataFrame, evidence: pd.DataFrame, targets: tuple[str, ...] = TARGETS) -> dict:
    """Per task-relevant head, its largest patching effect (variant): the mean |prediction change| (z)
    each way and on each target, with 95% CIs over the patched pairs."""
    if "patch_prediction_change" not in table:
        return {}  # no variant was patched (every element off: only the controls ran), so no head is task-relevant
    patched = table.dropna(subset=["patch_prediction_change"])
    out = {}
    for head in evidence[evidence["task_relevant"]].itertuples():
        rows = patched[(patched["layer"] == head.layer) & (patched["head"] == head.head)]
        top = rows.loc[rows["patch_prediction_change"].idxmax()]
        parts = ["", *(f"_{d}" for d in PATCH_DIRECTIONS), *(f"_{t}" for t in targets)]
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


def detectors_by_bar(table: pd.DataFrame, c: dict, kinds: list[str], targets: tuple[str, ...]) -> dict:
    """Detectors per kind with the follow bar moved, the others kept: does a verdict hang on the bar? The
    follow p-values for another bar come from each mean and its CI (normal approximation)."""
    out = {}
    for bar in sorted({*FOLLOW_BARS, c["min_follow"]}):
        moved = table.copy()
        if "follow" in moved:
            se = (moved["follow_ci_high"] - moved["follow_ci_low"]) / (2 * 1.96)
            moved["follow_p"] = normal_tail((moved["follow"] - bar) / se)
        evidence = head_evidence(moved, c | {"min_follow": bar}, targets)
        out[f"{bar:g}"] = {kind: int(evidence[f"{kind}_detector"].sum()) for kind in kinds}
    return out


def control_summary(evidence: pd.DataFrame) -> dict:
    """How many heads respond to a line where no element is (of those responding to the frame), and how many
    follow a bright blob."""
    out = {}
    if "responds_margin_line" in evidence:
        frame = evidence.get("responds_frame", False)
        out["heads_responding_to_a_margin_line"] = int(evidence["responds_margin_line"].sum())
        out["frame_responders_also_responding_to_it"] = int((evidence["responds_margin_line"] & frame).sum())
    if "follows_blob" in evidence:
        out["heads_following_a_bright_blob"] = int(evidence["follows_blob"].sum())
    return out


def causal_metrics(
    table: pd.DataFrame,
    evidence: pd.DataFrame,
    effects: dict,
    c: dict,
    outside: int,
    targets: tuple[str, ...] = TARGETS,
) -> dict:
    """metrics/causal.json, direct attribution aside."""
    variants = list(effects)
    kinds = [kind for kind in DISTRACTOR_KINDS if any(variant_spec(v).kind == kind for v in variants)]
    return {
        "images": next(iter(effects.values()))["images"],
        "patch_images": c["patch_images"],
        "fdr": c["fdr"],
        "pixels_changed_outside_element": outside,
        "task_relevant_heads": int(evidence["task_relevant"].sum()),
        "task_relevant_detail": task_relevant_detail(table, evidence, targets),
        "detectors_by_min_follow": detectors_by_bar(table, c, kinds, targets),
        **{kind: kind_summary(kind, evidence, variants) for kind in kinds},
        "controls": control_summary(evidence),
        "model_effect": effects,
    }
