"""classify: label every head from its measured attention, joined with its ablation (see README)."""

from pathlib import Path

import pandas as pd

from vitheads import params
from vitheads.outputs import StageError, atomic_path, run_stage, setup_logging, write_json
from vitheads.taxonomy import band_counts, classify, paper_counts

REGION = "results/attention/region_mass.csv"
ENTROPY = "results/attention/heads.csv"
ABLATION = "results/ablate/heads.csv"
RESULTS = "results/classify/heads.csv"  # in the results/classify out
METRICS = "metrics/classify.json"

log = setup_logging("classify")


def join_importance(labelled: pd.DataFrame, mode: str) -> pd.DataFrame:
    ablation = pd.read_csv(ABLATION)
    ablation = ablation[ablation["mode"] == mode][["layer", "head", "increase_pct", "ci_low_pct", "ci_high_pct"]]
    joined = labelled.merge(ablation, on=["layer", "head"], how="left")
    return joined.assign(important=joined["ci_low_pct"] > 0)


def main() -> None:
    p = params.load()
    c = p["classify"]
    if not Path(REGION).is_file():
        raise StageError(
            f"the taxonomy needs ground-truth masks and data.source '{p['data']['source']}' has none "
            f"({REGION} was not written); ablate and attention results are in results/"
        )
    region, entropy = pd.read_csv(REGION), pd.read_csv(ENTROPY)
    log.info("read %s, %s and %s", REGION, ENTROPY, ABLATION)
    heads = join_importance(classify(region, entropy, c), c["importance_mode"])

    with atomic_path(RESULTS) as tmp:
        heads.to_csv(tmp, index=False, float_format="%.6g")
    log.info("wrote %s", RESULTS)
    write_json(
        METRICS,
        {
            "counts": band_counts(heads),
            **paper_counts(heads),
            "important_heads": int(heads["important"].sum()),
            "important_by_label": heads[heads["important"]]["label"].value_counts().to_dict(),
        },
    )
    counts = heads["label"].value_counts()
    log.info("labelled %d heads: %s", len(heads), ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    run_stage(main)
