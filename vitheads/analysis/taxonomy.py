"""Head roles from measured attention, with controls.

Input: the attention stage's per-image patch-level scores in one view (`classify.view`). For each
head and region (the kinds chirp, text, colorbar, frame, and the white margin), an image's
enrichment is the head's attention mass on the patches holding the region divided by the share
of patches holding it (1 = uniform). Per head and region: mean and median over images, the share
of images at or above `min_enrichment`, a bootstrap 95% CI of the mean, and the same for the
enrichment minus the shuffle null (the head's map scored against another image's masks).

Rule, first match wins:
  sink                 margin enrichment >= `sink_enrichment`
  chirp                chirp enriched (mean >= `min_enrichment`), the CI of its excess over the
                       null above zero and the mean >= `null_ratio` x the null's; no other kind
                       holding `mono_share` of the excess (else polysemantic)
  furniture-<kind>     text, colorbar or frame preferred: the CI of the excess share of its attention
                       on the element's patches, (mass - area) / (1 - area), above `min_excess_share`
                       (ceiling-free: enrichment cannot reach 2 for an element on 27 of 64 patches
                       without 84% of all mass; the AUROC against the element, also reported, reads
                       the overlap of text and frame patches as a preference for both); an element
                       at the same place in every image, so position and content cannot be told
                       apart from attention alone (positional, not a detector)
Then the causal evidence (vitheads.analysis.causal, paired renders) overrides: a head whose output responds
to an element's content and whose attention follows the element when it moves is
`detector-<kind>`, whatever its attention label (chirp heads keep theirs; the columns say it).
  polysemantic         two or more kinds preferred and none holding `mono_share` of the summed excess
                       shares, a distractor's taken on its own patches (`<kind>_only`, no pixel of
                       another distractor), so that the overlap of text and frame is not read as both
  positional-interior  chirp enriched, but no more than on another image's chirp position
  local                mean attention distance <= `local_ratio` x that of uniform attention
  diffuse              normalised entropy >= `diffuse_entropy`
  unfocused            none of these
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vitheads import paper
from vitheads.analysis.attention import excess_share
from vitheads.analysis.stats import bootstrap_means, bootstrap_weights, percentile_interval
from vitheads.names import DISTRACTOR_KINDS, view_reaches_output

RULE_SUMMARY = (
    "Labels from patch-level enrichment in the *{view}* view, per image, against a shuffle null (the head's map "
    "scored against another test image's masks), then the causal evidence of paired renders: {relabelled} heads "
    "relabelled `detector-<kind>` (their output responds to the element's content and their attention follows it "
    "when it moves); the rule in full: docs/methods.md, Head roles. Counts per layer band:"
)
LABELS = (
    "chirp",
    "detector-text",
    "detector-colorbar",
    "detector-frame",
    "furniture-text",
    "furniture-colorbar",
    "furniture-frame",
    "polysemantic",
    "positional-interior",
    "sink",
    "local",
    "diffuse",
    "unfocused",
)
LABEL_COLOURS = {  # the taxonomy figure and the report's head explorer
    "chirp": "#d62728",
    "detector-text": "#08306b",
    "detector-colorbar": "#a63603",
    "detector-frame": "#252525",
    "furniture-text": "#1f77b4",
    "furniture-colorbar": "#ff7f0e",
    "furniture-frame": "#7f7f7f",
    "polysemantic": "#9467bd",
    "positional-interior": "#f7b6d2",
    "sink": "#8c564b",
    "local": "#17becf",
    "diffuse": "#e5e5e5",
    "unfocused": "#bcbd22",
}
FURNITURE_LABELS = tuple(f"furniture-{k}" for k in DISTRACTOR_KINDS)
DETECTOR_LABELS = tuple(f"detector-{k}" for k in DISTRACTOR_KINDS)
THRESHOLDS = (
    "min_enrichment",
    "min_excess_share",
    "null_ratio",
    "mono_share",
    "sink_enrichment",
    "local_ratio",
    "diffuse_entropy",
)
SENSITIVITY = {  # one threshold at a time, the others at their params.yaml values
    "min_enrichment": (1.5, 2.0, 3.0),
    "min_excess_share": (0.15, 0.25, 0.4),
    "null_ratio": (1.0, 1.5, 2.0),
    "sink_enrichment": (1.25, 1.5, 2.0),
    "local_ratio": (0.4, 0.5, 0.6),
    "diffuse_entropy": (0.85, 0.9, 0.95),
}


def enrichments(mass: np.ndarray, area: np.ndarray) -> np.ndarray:
    """[n, L, H, R] masses and [n, R] areas -> per-image enrichment, NaN where a region is absent."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area[:, None, None, :] > 0, mass / area[:, None, None, :], np.nan)


def region_stats(
    scores: dict[str, np.ndarray], view: str, min_enrichment: float, resamples: int, seed: int
) -> pd.DataFrame:
    """One row per layer, head and region (1-based): enrichment mean, median, share of images at or
    above min_enrichment, bootstrap CI; the shuffle null's mean and the CI of the excess over it."""
    real = enrichments(scores[f"mass_{view}"], scores["area"])
    null = enrichments(scores[f"null_mass_{view}"], scores["null_area"])
    n, layers, heads, _ = real.shape
    flat_real, flat_excess = real.reshape(n, -1), (real - null).reshape(n, -1)
    flat_auroc = scores[f"auroc_{view}"].reshape(n, -1)
    flat_share = excess_share(scores[f"mass_{view}"], scores["area"]).reshape(n, -1)
    weights = bootstrap_weights(n, resamples, seed)  # the same resamples for all: paired
    boot_real, boot_excess = bootstrap_means(weights, flat_real), bootstrap_means(weights, flat_excess)
    ci_real, ci_excess = percentile_interval(boot_real), percentile_interval(boot_excess)
    ci_auroc = percentile_interval(bootstrap_means(weights, flat_auroc))
    ci_share = percentile_interval(bootstrap_means(weights, flat_share))
    with np.errstate(invalid="ignore"):
        at_threshold = np.nanmean(np.where(np.isnan(flat_real), np.nan, flat_real >= min_enrichment), 0)
    names = [str(r) for r in scores["regions"]]
    index = pd.MultiIndex.from_product(
        [range(1, layers + 1), range(1, heads + 1), names], names=["layer", "head", "region"]
    )
    return pd.DataFrame(
        {
            "enrichment": np.nanmean(flat_real, 0),
            "median": np.nanmedian(flat_real, 0),
            "share_at_threshold": at_threshold,
            "ci_low": ci_real[0],
            "ci_high": ci_real[1],
            "null": np.nanmean(null.reshape(n, -1), 0),
            "excess_ci_low": ci_excess[0],
            "excess_ci_high": ci_excess[1],
            "auroc": np.nanmean(flat_auroc, 0),
            "auroc_ci_low": ci_auroc[0],
            "auroc_ci_high": ci_auroc[1],
            "excess_share": np.nanmean(flat_share, 0),
            "excess_share_ci_low": ci_share[0],
            "excess_share_ci_high": ci_share[1],
        },
        index=index,
    ).reset_index()


def wide(stats: pd.DataFrame, heads: pd.DataFrame, entropy_column: str) -> pd.DataFrame:
    """One row per head: every region's statistics as columns (enrichment_chirp, ...), entropy, distance."""
    table = stats.pivot(index=["layer", "head"], columns="region")
    table.columns = [f"{stat}_{region}" for stat, region in table.columns]
    table = table.reset_index().merge(
        heads[["layer", "head", entropy_column, "distance", "distance_ratio"]], on=["layer", "head"]
    )
    return table.rename(columns={entropy_column: "entropy"})


def label_head(h: dict[str, float], c: dict[str, Any]) -> str:
    """The rule in the module doc, for one head's row of `wide`."""
    if h["enrichment_margin"] >= c["sink_enrichment"]:
        return "sink"
    chirp_raw = h["enrichment_chirp"] >= c["min_enrichment"]
    chirp_beats_null = h["excess_ci_low_chirp"] > 0 and h["enrichment_chirp"] >= c["null_ratio"] * h["null_chirp"]
    enriched = (["chirp"] if chirp_raw and chirp_beats_null else []) + [
        k for k in DISTRACTOR_KINDS if h[f"excess_share_ci_low_{k}"] > c["min_excess_share"]
    ]
    if enriched:
        top = max(enriched, key=lambda k: h[f"excess_share_{k}"])
        if len(enriched) >= 2 and distinct_shares(h, enriched)[top] < c["mono_share"]:
            return "polysemantic"
        return "chirp" if top == "chirp" else f"furniture-{top}"
    if chirp_raw:
        return "positional-interior"
    if h["distance_ratio"] <= c["local_ratio"]:
        return "local"
    return "diffuse" if h["entropy"] >= c["diffuse_entropy"] else "unfocused"


def distinct_shares(h: dict[str, float], kinds: list[str]) -> dict[str, float]:
    """Each kind's share of the summed excess shares, a distractor's read on its own patches (`<kind>_only`):
    attention on text patches, 2 in 3 of which also hold frame pixels, is no preference for the frame."""
    excess = {}
    for k in kinds:
        value = h[f"excess_share_{k}" if k == "chirp" else f"excess_share_{k}_only"]
        excess[k] = max(value, 0) if np.isfinite(value) else 0
    total = sum(excess.values())
    return {k: excess[k] / total if total else 1 / len(kinds) for k in kinds}


def label_all(table: pd.DataFrame, c: dict[str, Any]) -> list[str]:
    return [label_head(row, c) for row in table.to_dict("records")]


def with_causal_evidence(labelled: pd.DataFrame, evidence: pd.DataFrame) -> pd.DataFrame:
    """Join the causal evidence per head and relabel its detectors: `detector-<kind>` where the head's
    output responds to the kind's content and its attention follows it (vitheads.causal), except
    chirp heads; `attention_label` keeps the label from attention alone."""
    joined = labelled.merge(evidence, on=["layer", "head"], how="left", validate="one_to_one")
    label = joined["label"].copy()
    for kind in reversed(DISTRACTOR_KINDS):  # the first kind wins
        column = f"{kind}_detector"
        if column in joined:
            label = label.mask(
                joined[column].fillna(False).astype(bool) & (joined["label"] != "chirp"), f"detector-{kind}"
            )
    return joined.assign(attention_label=joined["label"], label=label)


def sensitivity(table: pd.DataFrame, c: dict[str, Any]) -> pd.DataFrame:
    """Label counts with one threshold moved at a time: does a verdict hang on a threshold?"""
    rows = []
    for name, values in SENSITIVITY.items():
        for value in sorted({*values, c[name]}):
            labels = pd.Series(label_all(table, {**c, name: value}))
            rows.append(
                {
                    "threshold": name,
                    "value": value,
                    "is_default": value == c[name],
                    **{l: int((labels == l).sum()) for l in LABELS},
                }
            )
    return pd.DataFrame(rows)


def band_counts(labelled: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Label counts overall and per layer band (1-based layers, as in the paper)."""
    out = {"all": labelled["label"].value_counts().to_dict()}
    for band, (low, high) in paper.BANDS.items():
        out[f"layers_{band}"] = labelled[labelled["layer"].between(low, high)]["label"].value_counts().to_dict()
    return {k: {label: int(v.get(label, 0)) for label in LABELS} for k, v in out.items()}


def paper_counts(labelled: pd.DataFrame) -> dict[str, int]:
    """The head counts the paper's head-type claims are judged on (bands: vitheads.paper)."""
    chirp = labelled["label"] == "chirp"
    chirp_band = labelled["layer"].between(*paper.CHIRP_LAYERS)
    early = labelled["layer"].between(*paper.DISTRACTOR_LAYERS)
    chirp_key, early_key = paper.CHIRP_BAND_KEY, paper.DISTRACTOR_BAND_KEY
    return {
        "chirp_heads_all": int(chirp.sum()),
        f"chirp_heads_{chirp_key}": int((chirp & chirp_band).sum()),
        f"heads_{chirp_key}": int(chirp_band.sum()),
        f"distractor_heads_{early_key}": int(
            (early & labelled["label"].isin(FURNITURE_LABELS + DETECTOR_LABELS)).sum()
        ),
        f"detector_heads_{early_key}": int((early & labelled["label"].isin(DETECTOR_LABELS)).sum()),
        f"text_or_frame_heads_{early_key}": int(
            (early & labelled["label"].isin(["furniture-text", "furniture-frame"])).sum()
        ),
        f"heads_{early_key}": int(early.sum()),
    }


def join_importance(labelled: pd.DataFrame, ablation: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Each head's ablation effect in `mode` (results/ablate/heads.csv) beside its label; important: CI above 0."""
    ablation = ablation[ablation["mode"] == mode][["layer", "head", "increase_pct", "ci_low_pct", "ci_high_pct"]]
    joined = labelled.merge(ablation, on=["layer", "head"], how="left")
    return joined.assign(important=joined["ci_low_pct"] > 0)


def valued_margin_enrichment(scores) -> np.ndarray:
    """Received attention on margin patches with keys weighted by ||v W_O|| (Kobayashi et al. 2020),
    over their share of patches, mean over images; heads in layer-major order as in `wide`."""
    return (scores["margin_valued"].mean(0) / scores["area"][:, -1].mean()).ravel()


def label_heads(
    scores, attention_heads: pd.DataFrame, evidence: pd.DataFrame, ablation: pd.DataFrame, c: dict[str, Any], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The classify stage's tables: labelled heads (with causal evidence and importance), per-region
    statistics, and the threshold sensitivity grid."""
    stats = region_stats(scores, c["view"], c["min_enrichment"], c["bootstrap"], seed)
    table = wide(stats, attention_heads, f"entropy_{c['view']}")
    table["enrichment_margin_valued"] = valued_margin_enrichment(scores)  # a check, not used by the rule
    labelled = with_causal_evidence(table.assign(label=label_all(table, c)), evidence)
    return join_importance(labelled, ablation, c["importance_mode"]), stats, sensitivity(table, c)


def head_summary(heads: pd.DataFrame, ablation: pd.DataFrame) -> pd.DataFrame:
    """tables/heads.csv, the compact per-head record the studies gather from each run's commit: the label
    (and its attention-only precursor), the causal labels, and the ablation effect of every mode with its CI."""
    causal = [
        c
        for c in heads
        if c.split("_")[0] in ("responds", "reads", "follows", "changes")
        or c.endswith("_detector")
        or c == "task_relevant"
    ]
    out = heads[["layer", "head", "label", "attention_label", *causal]].copy()
    for mode, rows in ablation.groupby("mode"):
        effect = rows.set_index(["layer", "head"])[["increase_pct", "ci_low_pct", "ci_high_pct"]]
        out = out.join(effect.add_suffix(f"_{mode}"), on=["layer", "head"])
    return out


def sensitivity_ranges(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per label, the fewest and most heads it gets anywhere on the threshold grid."""
    return {label: {"min": int(table[label].min()), "max": int(table[label].max())} for label in LABELS}


def classify_metrics(heads: pd.DataFrame, grid: pd.DataFrame, view: str, pooling: str) -> dict:
    """metrics/classify.json."""
    return {
        "view": view,
        "view_reaches_output": view_reaches_output(view, pooling),
        "counts": band_counts(heads),
        **paper_counts(heads),
        "important_heads": int(heads["important"].sum()),
        "important_by_label": heads[heads["important"]]["label"].value_counts().to_dict(),
        "relabelled_by_causal_evidence": int((heads["label"] != heads["attention_label"]).sum()),
        "task_relevant_heads": int(heads["task_relevant"].sum()),
        "sensitivity": sensitivity_ranges(grid),
    }
