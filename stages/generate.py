"""generate: render the train and test splits with ground-truth masks, or ingest an external folder "
"(docs/pipeline.md)."""

from vitheads import params
from vitheads.data.cues import CuePlan
from vitheads.data.dataset import load_split
from vitheads.data.furniture import Distortions
from vitheads.data.generation import RenderSpec, write_dataset
from vitheads.data.ingest import ingest
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.timing import StageClock

DATA = "data/generated"
METRICS = "metrics/generate.json"
TIMINGS = "timings/generate.json"

log = setup_logging("generate")


def ingest_external(p: dict, clock: StageClock) -> None:
    source = p["data"]["source"]
    with atomic_path(DATA, is_dir=True) as tmp:
        sizes = ingest(source, p["model"]["image_size"], p["generate"]["n_test"], p["seed"], tmp)
    log.info("read %s; wrote %s", source, DATA)
    write_json(METRICS, {"images": sizes["train"] + sizes["test"], "source": source})  # shared: a subset
    write_json(TIMINGS, clock.record(seconds=clock.seconds()))
    log.info("ingested %s (%s) at %d px; no masks", source, sizes, p["model"]["image_size"])


def main() -> None:
    clock = StageClock()
    p = params.load()
    log.info("read params.yaml")
    if p["data"]["source"] != "generate":
        ingest_external(p, clock)
        return
    plan = CuePlan(tuple(p["plant"]["cues"]), p["plant"]["control"], p["plant"]["frame_cue"])
    size, patch = p["model"]["image_size"], p["model"]["patch_size"]
    spec = RenderSpec(p["seed"], size, patch, Distortions(**p["distortion"]), plan)
    sizes = {"train": p["generate"]["n_train"], "test": p["generate"]["n_test"]}
    with atomic_path(DATA, is_dir=True) as tmp:
        write_dataset(spec, sizes, tmp, stem=p["model"]["stem"])
    seconds = clock.seconds()
    log.info("wrote %s", DATA)
    total = sum(sizes.values())
    write_json(METRICS, {"images": total, "test_area_share": load_split(DATA, "test").area_shares()})
    write_json(TIMINGS, clock.record(seconds=seconds, images_per_second=total / seconds))
    log.info(
        "rendered %d images (%s) at %d px in %.1f s, %.0f img/s",
        total,
        sizes,
        spec.image_size,
        seconds,
        total / seconds,
    )


if __name__ == "__main__":
    run_stage(main)
