"""ablate: ablate every attention head of the trained model on the test split (docs/pipeline.md)."""

import time

from vitheads import paper, params, threads
from vitheads.analysis.ablation import author_comparison, author_table, layer_summary, mode_metrics, summarise
from vitheads.analysis.tables import concat_tables, write_table
from vitheads.data.dataset import load_first
from vitheads.interp.ablation import all_heads, sweep
from vitheads.interp.author_protocol import author_sweep
from vitheads.model.vit import Scaling, best_device, load_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.timing import StageClock

DATA = "data/generated"
MODEL_DIR = "models"
RESULTS = "results/ablate"  # heads.csv, layers.csv, author_protocol.csv
METRICS = "metrics/ablate.json"
TIMINGS = "timings/ablate.json"

log = setup_logging("ablate")


def main() -> None:
    clock = StageClock()
    p = params.load()
    threads.limit_torch()
    a = p["ablate"]
    model, config = load_trained(MODEL_DIR)
    model.to(best_device())
    images_per_mode = {mode: a[f"{mode}_images"] for mode in a["modes"]}
    test = load_first(DATA, "test", 0 if 0 in images_per_mode.values() else max(images_per_mode.values()))
    n, images = len(test.labels), test.images[:]
    targets = tuple(config["targets"])
    z_true = Scaling.from_config(config).z(test.targets(targets))
    log.info("read %s and %d test images from %s", MODEL_DIR, n, DATA)

    depth, num_heads = len(model.blocks), model.blocks[0].attn.num_heads
    started = time.perf_counter()
    tables, layer_tables, metrics = [], [], {}
    for mode, wanted in images_per_mode.items():  # each mode on its first images (0: all)
        k = n if wanted == 0 else min(wanted, n)
        errors = sweep(model, images[:k], z_true[:k], all_heads(depth, num_heads, [mode]), a["batch_size"])
        table, boot = summarise(errors.baseline, errors.ablated, a["bootstrap"], p["seed"], targets)
        layers = layer_summary(table, boot)
        metrics[mode] = {
            **mode_metrics(table, boot, layers, mode),
            "images": k,
            "baseline_mse": round(float(errors.baseline.mean()), 6),
        }
        tables.append(table)
        layer_tables.append(layers)
    sweep_seconds = time.perf_counter() - started
    heads, layers = concat_tables(tables), concat_tables(layer_tables)
    parts = {"sweep_seconds": sweep_seconds}
    author = None
    if a["author_protocol"]:
        n_author = n if a["author_images"] == 0 else min(a["author_images"], n)
        started = time.perf_counter()
        author = author_table(author_sweep(model, images[:n_author], test.targets(targets)[:n_author]))
        parts["author_protocol_seconds"] = time.perf_counter() - started
        metrics[paper.AUTHOR] = {**author_comparison(author), "images": n_author}
        log.info(
            "emulated the author's cumulative ablation on %d images in %.0f s",
            n_author,
            parts["author_protocol_seconds"],
        )

    with atomic_path(RESULTS, is_dir=True) as tmp:
        write_table(heads, tmp / "heads.csv")
        write_table(layers, tmp / "layers.csv")
        if author is not None:
            write_table(author, tmp / "author_protocol.csv")
    log.info("wrote %s", RESULTS)
    write_json(METRICS, metrics)
    write_json(TIMINGS, clock.record(**parts))
    log.info(
        "ablated %d heads (%s) in %.0f s",
        depth * num_heads,
        ", ".join(f"{m} on {metrics[m]['images']} images" for m in a["modes"]),
        sweep_seconds,
    )


if __name__ == "__main__":
    run_stage(main)
