"""attention: every head's attention on the test split, per image, scored against the masks (docs/pipeline.md)."""

import time

from vitheads import params, threads
from vitheads.analysis.attention import head_table, mean_maps, region_scores, region_table, scores_arrays
from vitheads.analysis.tables import write_arrays, write_table
from vitheads.data.dataset import load_first, load_split
from vitheads.data.regions import region_indicators
from vitheads.interp.attention import capture, per_image_maps
from vitheads.model.vit import best_device, load_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.timing import StageClock

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/attention"  # maps.npz, examples.npz, scores.npz, region_mass.csv, heads.csv
TIMINGS = "timings/attention.json"
FINGERPRINTS = "tables/fingerprints.npz"  # in git: every head's received view on the shared images

log = setup_logging("attention")


def main() -> None:
    clock = StageClock()
    p = params.load()
    threads.limit_torch()
    a = p["attention"]
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", a["max_images"])
    n, fractions = len(test.labels), test.patch_fractions
    log.info("read %s and %d test images from %s", MODEL_DIR, n, DATA)
    if fractions is None:
        log.warning(
            "the data have no masks (data.source %s): no region scores, classify cannot run", p["data"]["source"]
        )

    started = time.perf_counter()
    captured = capture(model, test.images, fractions, a["batch_size"])
    scores = (
        None if fractions is None else region_scores(captured.maps, fractions, region_indicators(fractions), p["seed"])
    )
    k = min(a["example_images"], n)
    examples = test.images[:k]
    example_maps = per_image_maps(model, examples, None if fractions is None else fractions[:k])
    seconds = time.perf_counter() - started

    shared = load_split(DATA, "shared")  # the same images in every run: heads compared across runs
    fingerprints = per_image_maps(model, shared.images, None)["received"]  # [n, L, H, G, G]
    with atomic_path(FINGERPRINTS) as tmp:
        write_arrays(tmp, received=fingerprints.astype("float16"))
    with atomic_path(RESULTS, is_dir=True) as tmp:
        write_arrays(tmp / "maps.npz", **mean_maps(captured.maps, tuple(model.patch_embed.grid_size)))
        masks = {} if test.masks is None else {"masks": test.masks[:k]}  # the explorer's outlines
        write_arrays(tmp / "examples.npz", images=examples, **masks, **example_maps)
        arrays = scores_arrays(
            captured.entropy, captured.distance, captured.uniform_distance, scores, captured.margin_valued
        )
        write_arrays(tmp / "scores.npz", **arrays)
        if scores is not None:
            write_table(region_table(scores, config["model"]["pooling"]), tmp / "region_mass.csv")
        write_table(head_table(captured.entropy, captured.distance, captured.uniform_distance), tmp / "heads.csv")
    log.info("wrote %s", RESULTS)
    write_json(TIMINGS, clock.record(seconds=seconds))
    log.info("scored %d views of every head on %d images in %.1f s", len(captured.maps), n, seconds)


if __name__ == "__main__":
    run_stage(main)
