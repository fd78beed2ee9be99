"""attention: every head's attention maps on the test split, scored against the masks (see README)."""

import time
from pathlib import Path

import numpy as np
import pandas as pd

from vitheads import figures, params
from vitheads.attention import head_table, per_image_maps, region_table, summarise
from vitheads.data import load_first
from vitheads.model import load_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging
from vitheads.training import best_device

DATA = "data/generated"
MODEL_DIR = "models"
ABLATION = "results/ablate/heads.csv"
RESULTS = "results/attention"
PLOTS = "plots/attention"

log = setup_logging("attention")


def top_heads(k: int) -> list[tuple[int, int]]:
    """The k heads whose zero-ablation hurts most (0-based layer, head)."""
    heads = pd.read_csv(ABLATION)
    heads = heads[heads["mode"] == heads["mode"].iloc[0]].nlargest(k, "increase_pct")
    return [(int(r.layer) - 1, int(r.head) - 1) for r in heads.itertuples()]


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
    chosen = top_heads(a["overlay_heads"])
    examples = np.asarray(test.images[: a["overlay_images"]])
    example_maps = per_image_maps(model, examples, p["classify"]["view"])[:, [l for l, _ in chosen], [h for _, h in chosen]]

    with atomic_path(RESULTS, is_dir=True) as tmp:
        np.savez_compressed(tmp / "maps.npz", **summary.maps)
        if fractions is not None:
            region_table(summary).to_csv(tmp / "region_mass.csv", index=False, float_format="%.6g")
        head_table(summary).to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
    log.info("wrote %s: %s", RESULTS, ", ".join(sorted(f.name for f in Path(RESULTS).iterdir())))
    with atomic_path(PLOTS, is_dir=True) as tmp:
        figures.head_grid(summary.maps["cls"], f"CLS attention over patches, mean of {n} test images", tmp / "grid_cls.png")
        figures.head_grid(summary.maps["received"], f"Attention received per patch (mean over queries and {n} images)", tmp / "grid_received.png")
        names = [f"L{l + 1}H{h + 1} ({p['classify']['view']})" for l, h in chosen]
        figures.overlays(examples, example_maps, names, tmp / "overlays.png")
    log.info("wrote %s (grid_cls.png, grid_received.png, overlays.png)", PLOTS)
    layers, heads = summary.maps["cls"].shape[:2]
    log.info("summarised %d heads on %d images in %.1f s", layers * heads, n, time.perf_counter() - started)


if __name__ == "__main__":
    run_stage(main)
