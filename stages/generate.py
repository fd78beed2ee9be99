"""generate: render the train and test splits with ground-truth masks (see README)."""

import time

import numpy as np

from vitheads import params
from vitheads.dataset import load_split
from vitheads.generation import RenderSpec, write_dataset
from vitheads.ingest import ingest
from vitheads.names import CLASSES
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.rendering import Distortions

DATA = "data/generated"
METRICS = "metrics/generate.json"
TIMINGS = "timings/generate.json"

log = setup_logging("generate")


def ingest_external(p: dict) -> None:
    source = p["data"]["source"]
    started = time.perf_counter()
    with atomic_path(DATA, is_dir=True) as tmp:
        sizes = ingest(source, p["model"]["image_size"], p["generate"]["n_test"], p["seed"], tmp)
    log.info("read %s; wrote %s", source, DATA)
    write_json(METRICS, {"images": sum(sizes.values()), "source": source})
    write_json(TIMINGS, {"seconds": round(time.perf_counter() - started, 1)})
    log.info("ingested %s (%s) at %d px; no masks", source, sizes, p["model"]["image_size"])


def main() -> None:
    p = params.load()
    log.info("read params.yaml")
    if p["data"]["source"] != "generate":
        ingest_external(p)
        return
    spec = RenderSpec(p["seed"], p["model"]["image_size"], p["model"]["patch_size"], Distortions(**p["distortion"]))
    sizes = {"train": p["generate"]["n_train"], "test": p["generate"]["n_test"]}
    started = time.perf_counter()
    with atomic_path(DATA, is_dir=True) as tmp:
        write_dataset(spec, sizes, tmp)
    seconds = time.perf_counter() - started
    log.info("wrote %s", DATA)

    share = np.asarray(load_split(DATA, "test").patch_fractions).mean(axis=(0, 1, 2))
    total = sum(sizes.values())
    write_json(METRICS, {"images": total, "test_area_share": {c: round(float(s), 5) for c, s in zip(CLASSES, share)}})
    write_json(TIMINGS, {"seconds": round(seconds, 1), "images_per_second": round(total / seconds, 1)})
    log.info("rendered %d images (%s) at %d px in %.1f s, %.0f img/s", total, sizes, spec.image_size, seconds, total / seconds)


if __name__ == "__main__":
    run_stage(main)
