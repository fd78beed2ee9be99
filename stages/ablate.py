"""ablate: ablate every attention head of the trained model on the test split (see README)."""

import time
from pathlib import Path

import numpy as np

from vitheads import params, threads
from vitheads.ablation import all_heads, layer_summary, paper_comparison, summarise, sweep
from vitheads.author_protocol import author_comparison, author_sweep
from vitheads.dataset import load_first
from vitheads.model import Scaling, best_device, load_trained
from vitheads.names import TARGETS, head_name
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/ablate"
METRICS = "metrics/ablate.json"
TIMINGS = "timings/ablate.json"
TOP = 5

log = setup_logging("ablate")


def mode_metrics(heads, boot, layers, mode: str) -> dict:
    h = heads[heads["mode"] == mode]
    top = h.nlargest(TOP, "increase_pct")
    return {
        **paper_comparison(heads, boot, mode),
        "per_layer_mean_pct": {str(r.layer): round(r.mean_pct, 5) for r in layers[layers["mode"] == mode].itertuples()},
        "heads_ci_above_zero": int((h["ci_low_pct"] > 0).sum()),
        "top_heads": {head_name(r.layer, r.head): round(r.increase_pct, 4) for r in top.itertuples()},
    }


def main() -> None:
    p = params.load()
    threads.limit_torch()
    a = p["ablate"]
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    test = load_first(DATA, "test", a["max_images"])
    n = len(test.labels)
    images = np.asarray(test.images)
    z_true = Scaling.from_config(config).z(test.labels[list(TARGETS)].to_numpy())
    log.info("read %s and %d test images from %s", MODEL_DIR, n, DATA)

    depth, num_heads = len(model.blocks), model.blocks[0].attn.num_heads
    started = time.perf_counter()
    errors = sweep(model, images, z_true, all_heads(depth, num_heads, a["modes"]), a["batch_size"])
    seconds = time.perf_counter() - started
    heads, boot = summarise(errors, a["bootstrap"], p["seed"])
    layers = layer_summary(heads)
    author = None
    if a["author_protocol"]:
        started = time.perf_counter()
        n_author = n if a["author_images"] == 0 else min(a["author_images"], n)
        author = author_sweep(model, images[:n_author], test.labels[list(TARGETS)].to_numpy()[:n_author])
        author_seconds = time.perf_counter() - started
        log.info("emulated the author's cumulative ablation on %d images in %.0f s", n_author, author_seconds)

    with atomic_path(RESULTS, is_dir=True) as tmp:
        heads.to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
        layers.to_csv(tmp / "layers.csv", index=False, float_format="%.6g")
        if author is not None:
            author.to_csv(tmp / "author_protocol.csv", index=False, float_format="%.6g")
    log.info("wrote %s (%s)", RESULTS, ", ".join(sorted(f.name for f in Path(RESULTS).iterdir())))
    write_json(
        METRICS,
        {
            "baseline_mse": round(float(errors.baseline.mean()), 6),
            "images": n,
            **{mode: mode_metrics(heads, boot, layers, mode) for mode in a["modes"]},
            **({"author_protocol": {**author_comparison(author), "images": n_author}} if author is not None else {}),
        },
    )
    write_json(TIMINGS, {"sweep_seconds": round(seconds, 1), **({"author_protocol_seconds": round(author_seconds, 1)} if author is not None else {})})
    log.info("ablated %d heads x %d modes on %d images in %.0f s", depth * num_heads, len(a["modes"]), n, seconds)


if __name__ == "__main__":
    run_stage(main)
