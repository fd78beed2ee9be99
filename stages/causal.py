"""causal: paired renders that change one plot element; per head, does it respond, follow, matter? (see README)."""

import itertools
import time

import numpy as np
import pandas as pd

from vitheads import params, threads
from vitheads.attribution import REGIONS, direct_attribution, heads_by_region, region_fractions
from vitheads.causal import (PATCH_DIRECTIONS, head_evidence, head_rows, mean_ci, measure_variant, model_effect, moved_variant, passing_heads,
                             response_conditions, response_variants)
from vitheads.dataset import load_first
from vitheads.model import Scaling, best_device, device_of, load_trained, to_input
from vitheads.names import DISTRACTOR_KINDS, TARGETS, head_name
from vitheads.outputs import StageError, atomic_path, run_stage, setup_logging, write_json
from vitheads.pairs import VARIANTS, available_variants, render_variants
from vitheads.rendering import Distortions
from vitheads.resampling import bootstrap_weights

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/causal"  # heads.csv (variant x head), evidence.csv (head), attribution.csv
METRICS = "metrics/causal.json"
TIMINGS = "timings/causal.json"

FOLLOW_BARS = (0.25, 0.5, 0.75, 1.0, 1.5)  # causal.min_follow values the detector counts are also given for

log = setup_logging("causal")


def check_pairs(pairs, dataset_images: np.ndarray) -> None:
    """Member A of every pair but the moved elements is the dataset's own test image, byte for byte."""
    if VARIANTS[pairs.variant].members[0] == "base" and not np.array_equal(pairs.images[:, 0], dataset_images[: len(pairs.images)]):
        raise StageError(f"paired renders of '{pairs.variant}' do not reproduce {DATA}'s test images: "
                         "was the dataset rendered by another version of vitheads/rendering.py?")


def counted(name: str, alternatives: list, weights: np.ndarray) -> dict:
    """Heads whose means over images pass (the rule, on CI bounds, is stricter), with the 95% interval of that count."""
    count, interval = passing_heads(alternatives, weights)
    return {f"{name}_mean_above": count, f"{name}_mean_above_ci": interval}


def kind_summary(kind: str, evidence: pd.DataFrame, measures: dict, weights, patch_weights, c: dict) -> dict:
    """How many heads respond to, follow and are changed by one distractor kind: the rule's counts, and
    counts on means over images with 95% intervals over image resamples."""
    variants = list(measures)
    tested, moved = response_variants(kind, variants), moved_variant(kind, variants)
    out = {"variants": [v for v in variants if VARIANTS[v].kind == kind], "response_variants": tested, "moved_variant": moved,
           "heads_responding": int(evidence[f"responds_{kind}"].sum())}
    out |= counted("heads_responding", [response_conditions(measures[v], c) for v in tested], weights)
    if f"changes_predictions_{kind}" in evidence:
        out["heads_changing_predictions"] = int(evidence[f"changes_predictions_{kind}"].sum())
        out |= counted("heads_changing_predictions", [[(measures[v].patch_effect, c["min_prediction_change"])]
                                                      for v in tested], patch_weights)
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
        out[head_name(head.layer, head.head)] = {"variant": top["variant"], **{
            f"change{part}": [round(float(top[f"patch_prediction_change{part}{s}"]), 5) for s in ("", "_ci_low", "_ci_high")] for part in parts}}
    return out


def detectors_by_bar(table: pd.DataFrame, c: dict, kinds: list[str]) -> dict:
    """Detectors per kind with the follow bar moved, the others kept: does a verdict hang on the bar?"""
    bars = sorted({*FOLLOW_BARS, c["min_follow"]})
    return {f"{bar:g}": {kind: int(head_evidence(table, c | {"min_follow": bar})[f"{kind}_detector"].sum()) for kind in kinds} for bar in bars}


def attribution(model, test, batch_size: int, weights) -> tuple[pd.DataFrame, dict]:
    """Each head's exact direct contribution to each target, per region of the image (flatten readout):
    mean (with a 95% CI over images) and mean |.|; and the largest gap between parts and prediction."""
    fractions = region_fractions(np.asarray(test.patch_fractions))
    per_image, gap = [], 0.0
    for start in range(0, len(fractions), batch_size):
        x = to_input(np.asarray(test.images[start : start + batch_size]), device_of(model))
        parts = direct_attribution(model, x)
        gap = max(gap, float((parts.total() - parts.prediction).abs().max()))
        per_image.append(heads_by_region(parts, fractions[start : start + batch_size]))
    values = np.concatenate(per_image)  # [n, L, H, T, R]
    mean, low, high = mean_ci(values, weights)
    mean_abs = np.abs(values).mean(0)
    rows = [
        {"layer": l + 1, "head": h + 1, "target": t, "region": r, "contribution": mean[l, h, i, j],
         "ci_low": low[l, h, i, j], "ci_high": high[l, h, i, j], "mean_abs": mean_abs[l, h, i, j]}
        for l, h, (i, t), (j, r) in itertools.product(range(values.shape[1]), range(values.shape[2]), enumerate(TARGETS), enumerate(REGIONS))
    ]
    table = pd.DataFrame(rows)
    chirp = table[table["region"] == "chirp"]
    summary = {
        "max_abs_gap_parts_vs_prediction": round(gap, 7),
        "chirp_share_of_heads_abs_contribution": {
            t: round(float(chirp[chirp["target"] == t]["mean_abs"].sum() / table[table["target"] == t]["mean_abs"].sum()), 4) for t in TARGETS
        },
        "top_chirp_writers": {
            t: {head_name(r.layer, r.head): round(float(r.mean_abs), 4) for r in chirp[chirp["target"] == t].nlargest(3, "mean_abs").itertuples()}
            for t in TARGETS
        },
    }
    return table, summary


def main() -> None:
    p = params.load()
    threads.limit_torch()
    c = p["causal"]
    if p["data"]["source"] != "generate":
        raise StageError(f"paired renders need the generated dataset; data.source is '{p['data']['source']}'")
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", c["images"])
    z_true = Scaling.from_config(config).z(test.labels[list(TARGETS)].to_numpy()).astype(np.float32)
    distortions = Distortions(**p["distortion"])
    variants = available_variants(distortions)
    if not variants:
        raise StageError("every distortion is off: there is no plot element to change (distortion.*)")
    size, patch = p["model"]["image_size"], p["model"]["patch_size"]
    log.info("read %s and %d test images; variants: %s", MODEL_DIR, len(z_true), ", ".join(variants))

    started = time.perf_counter()
    weights = bootstrap_weights(len(z_true), c["bootstrap"], p["seed"])
    patch_weights = bootstrap_weights(c["patch_images"], c["bootstrap"], p["seed"]) if c["patch_images"] else None
    measures, rows, effects, outside = {}, [], {}, 0
    for variant, pairs in zip(variants, render_variants(variants, p["seed"], size, patch, distortions, len(z_true), threads.budget())):
        check_pairs(pairs, np.asarray(test.images))
        outside = max(outside, pairs.outside_changes)
        n_patch = c["patch_images"] if variant in response_variants(VARIANTS[variant].kind, variants) else 0
        m = measures[variant] = measure_variant(model, pairs, z_true, c["batch_size"], n_patch)
        rows += head_rows(variant, m, weights, patch_weights, TARGETS)
        effects[variant] = model_effect(variant, m, weights, TARGETS)
    table = pd.DataFrame(rows)
    evidence = head_evidence(table, c)
    kinds = [kind for kind in DISTRACTOR_KINDS if any(VARIANTS[v].kind == kind for v in variants)]
    direct = attribution(model, test, c["batch_size"], weights) if p["model"]["pooling"] == "flatten" else None
    seconds = time.perf_counter() - started

    with atomic_path(RESULTS, is_dir=True) as tmp:
        table.to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
        evidence.to_csv(tmp / "evidence.csv", index=False)
        if direct is not None:
            direct[0].to_csv(tmp / "attribution.csv", index=False, float_format="%.6g")
    write_json(METRICS, {
        "images": len(z_true), "patch_images": c["patch_images"], "pixels_changed_outside_element": outside,
        "task_relevant_heads": int(evidence["task_relevant"].sum()),
        "task_relevant_detail": task_relevant_detail(table, evidence),
        "detectors_by_min_follow": detectors_by_bar(table, c, kinds),
        **{kind: kind_summary(kind, evidence, measures, weights, patch_weights, c) for kind in kinds},
        "model_effect": effects,
        "direct_attribution": direct[1] if direct is not None else f"needs model.pooling flatten, not {p['model']['pooling']}",
    })
    write_json(TIMINGS, {"seconds": round(seconds, 1)})
    log.info("%d variants x %d pairs in %.0f s; %d task-relevant heads; pixels changed outside the element: %d",
             len(variants), len(z_true), seconds, int(evidence["task_relevant"].sum()), outside)


if __name__ == "__main__":
    run_stage(main)
