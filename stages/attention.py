"""attention: every head's attention on the test split, per image, scored against the masks (see README)."""

import time
from pathlib import Path

import numpy as np

from vitheads import params, threads
from vitheads.attention import head_table, per_image_maps, region_table, score, scores_arrays
from vitheads.dataset import load_first
from vitheads.model import best_device, load_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/attention"
TIMINGS = "timings/attention.json"

log = setup_logging("attention")


def main() -> None:
    p = params.load()
    threads.limit_torch()
    a = p["attention"]
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", a["max_images"])
    n = len(test.labels)
    log.info("read %s and %d test images from %s", MODEL_DIR, n, DATA)

    fractions = test.patch_fractions
    if fractions is None:
        log.warning("the data have no masks (data.source %s): no region scores, classify cannot run", p["data"]["source"])
    started = time.perf_counter()
    scores = score(model, test.images, fractions, a["batch_size"], p["seed"])
    k = min(a["example_images"], n)
    examples = np.asarray(test.images[:k])
    example_maps = per_image_maps(model, examples, None if fractions is None else fractions[:k])
    seconds = time.perf_counter() - started

    with atomic_path(RESULTS, is_dir=True) as tmp:
        np.savez_compressed(tmp / "maps.npz", **scores.maps)
        masks = {} if test.masks is None else {"masks": np.asarray(test.masks[:k])}  # the explorer's outlines
        np.savez_compressed(tmp / "examples.npz", images=examples, **masks, **example_maps)
        np.savez_compressed(tmp / "scores.npz", **scores_arrays(scores))
        if fractions is not None:
            region_table(scores, config["model"]["pooling"]).to_csv(tmp / "region_mass.csv", index=False, float_format="%.6g")
        head_table(scores).to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
    log.info("wrote %s: %s", RESULTS, ", ".join(sorted(f.name for f in Path(RESULTS).iterdir())))
    write_json(TIMINGS, {"seconds": round(seconds, 1)})
    log.info("scored %d views of every head on %d images in %.1f s", len(scores.maps), n, seconds)


if __name__ == "__main__":
    run_stage(main)
