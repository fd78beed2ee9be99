"""attention: every head's attention maps on the test split, scored against the masks (see README)."""

import time
from pathlib import Path

import numpy as np

from vitheads import params
from vitheads.attention import VIEWS, head_table, per_image_maps, region_table, summarise
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
    a = p["attention"]
    model, _ = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", a["max_images"])
    n = len(test.labels)
    log.info("read %s and %d test images from %s", MODEL_DIR, n, DATA)

    fractions = test.patch_fractions
    if fractions is None:
        log.warning("the data have no masks (data.source %s): no region_mass.csv, classify cannot run", p["data"]["source"])
    started = time.perf_counter()
    summary = summarise(model, test.images, fractions, a["batch_size"])
    examples = np.asarray(test.images[: a["example_images"]])
    example_maps = {v: per_image_maps(model, examples, v) for v in VIEWS}  # view -> [n, L, H, G, G]
    seconds = time.perf_counter() - started

    with atomic_path(RESULTS, is_dir=True) as tmp:
        np.savez_compressed(tmp / "maps.npz", **summary.maps)
        np.savez_compressed(tmp / "examples.npz", images=examples, **example_maps)
        if fractions is not None:
            region_table(summary).to_csv(tmp / "region_mass.csv", index=False, float_format="%.6g")
        head_table(summary).to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
    log.info("wrote %s: %s", RESULTS, ", ".join(sorted(f.name for f in Path(RESULTS).iterdir())))
    write_json(TIMINGS, {"seconds": round(seconds, 1)})
    layers, heads = summary.maps["cls"].shape[:2]
    log.info("summarised %d heads on %d images in %.1f s", layers * heads, n, seconds)


if __name__ == "__main__":
    run_stage(main)
