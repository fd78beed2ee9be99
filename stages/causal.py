"""causal: paired renders that change one plot element; per head, does it respond, follow, matter? (docs/pipeline.md)"""

import time

from vitheads import params, threads
from vitheads.analysis.attribution import attribution_summary, attribution_table
from vitheads.analysis.benchmark import benchmark_metrics, flags
from vitheads.analysis.causal import causal_metrics, change_bars, head_evidence, head_rows, model_effect
from vitheads.analysis.decomposition import claimed_variants, decomposition_rows, element_claims, ruler_test
from vitheads.analysis.graded import component_flags
from vitheads.analysis.stats import bootstrap_weights
from vitheads.analysis.tables import as_table, write_table
from vitheads.data.dataset import cue_context, load_first, load_meta
from vitheads.data.furniture import Distortions
from vitheads.data.pairs import check_reproduces, render_variants
from vitheads.data.regions import pixel_region_shares
from vitheads.data.variants import available_variants, patched_variants
from vitheads.interp.attribution import attribution_by_region
from vitheads.interp.causal import measure_variant
from vitheads.model.vit import Scaling, best_device, load_trained
from vitheads.outputs import StageError, atomic_path, run_stage, setup_logging, write_json
from vitheads.timing import StageClock

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/causal"  # heads.csv (variant x head), evidence.csv (head), decomposition.csv, attribution.csv
METRICS = "metrics/causal.json"
TIMINGS = "timings/causal.json"

log = setup_logging("causal")


def main() -> None:
    clock = StageClock()
    p = params.load()
    threads.limit_torch()
    c = p["causal"]
    if p["data"]["source"] != "generate":
        raise StageError(f"paired renders need the generated dataset; data.source is '{p['data']['source']}'")
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", c["images"])
    targets = tuple(config["targets"])
    z_true = Scaling.from_config(config).z(test.targets(targets))
    distortions = Distortions(**p["distortion"])
    meta = load_meta(DATA)
    cues = cue_context(meta, p["seed"])
    variants = available_variants(distortions, cues.plan.kinds if cues else (), c["controls"])
    if not variants:
        raise StageError("every distortion is off: there is no plot element to change (distortion.*)")
    size, patch = p["model"]["image_size"], p["model"]["patch_size"]
    log.info("read %s and %d test images; variants: %s", MODEL_DIR, len(z_true), ", ".join(variants))

    started = time.perf_counter()
    weights = bootstrap_weights(len(z_true), c["bootstrap"], p["seed"])
    patch_weights = bootstrap_weights(c["patch_images"], c["bootstrap"], p["seed"]) if c["patch_images"] else None
    rows, effects, outside, routes, claims, ruler, cue_routes = [], {}, 0, [], {}, None, {}
    depth, cells = len(model.blocks), len(claimed_variants(variants)) * len(targets)
    rendered = render_variants(variants, p["seed"], size, patch, distortions, len(z_true), threads.budget(), cues)
    patched, screen = patched_variants(variants), c["patch_screen"] * c["min_prediction_change"]
    for variant, pairs in zip(variants, rendered):
        check_reproduces(pairs, test.images, DATA)
        outside = max(outside, pairs.outside_changes)
        n_patch = c["patch_images"] if variant in patched else 0
        m = measure_variant(model, pairs, z_true, c["batch_size"], n_patch, screen, kv=c["kv_patching"])
        rows += head_rows(variant, m, weights, patch_weights, c, targets)
        effects[variant] = model_effect(variant, m, weights, targets)
        routes += decomposition_rows(variant, m, weights, depth, targets)
        if variant in claimed_variants(variants):
            claims[variant] = element_claims(variant, m, weights, cells, depth, targets)
        if variant == "frame_moved":
            ruler = ruler_test(m, z_true, weights, targets)
        if cues and variant.endswith("_cue"):  # the route split scored on the planted heads beside the per-head methods
            bars = change_bars(m, c)
            cue_routes[variant.removesuffix("_cue")] = component_flags(m.route_changes, weights, bars, c["fdr"], depth)[
                "heads"
            ]
    table = as_table(rows)
    evidence = head_evidence(table, c, targets)
    metrics = causal_metrics(table, evidence, effects, c, outside, targets)
    metrics["decomposition"] = claims
    if ruler is not None:
        metrics["frame_ruler"] = ruler
    planted = flags(table, list(cues.plan.kinds), c["fdr"], targets, cue_routes) if cues and c["kv_patching"] else None
    if planted is not None:
        metrics["planted"] = benchmark_metrics(planted, list(cues.plan.kinds))
    direct = None
    if p["model"]["pooling"] == "flatten":
        values, gap = attribution_by_region(
            model, test.images, pixel_region_shares(test.patch_fractions[:]), c["batch_size"]
        )
        direct = attribution_table(values, weights, targets)
        metrics["direct_attribution"] = attribution_summary(direct, gap)
    else:
        metrics["direct_attribution"] = f"needs model.pooling flatten, not {p['model']['pooling']}"
    seconds = time.perf_counter() - started

    with atomic_path(RESULTS, is_dir=True) as tmp:
        write_table(table, tmp / "heads.csv")
        write_table(evidence, tmp / "evidence.csv", float_format=None)
        write_table(as_table(routes), tmp / "decomposition.csv")
        if planted is not None:
            write_table(planted, tmp / "benchmark.csv", float_format=None)
        if direct is not None:
            write_table(direct, tmp / "attribution.csv")
    write_json(METRICS, metrics)
    write_json(TIMINGS, clock.record(seconds=seconds))
    log.info(
        "%d variants x %d pairs in %.0f s; %d task-relevant heads; pixels changed outside the element: %d",
        len(variants),
        len(z_true),
        seconds,
        metrics["task_relevant_heads"],
        outside,
    )


if __name__ == "__main__":
    run_stage(main)
