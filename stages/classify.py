"""classify: label every head from its measured attention, with controls, joined with its ablation (see README)."""

from pathlib import Path

import numpy as np
import pandas as pd

from vitheads import params
from vitheads.names import view_reaches_output
from vitheads.outputs import StageError, atomic_path, run_stage, setup_logging, write_json
from vitheads.taxonomy import LABELS, band_counts, label_all, paper_counts, region_stats, sensitivity, wide, with_causal_evidence

SCORES = "results/attention/scores.npz"
ATTENTION_HEADS = "results/attention/heads.csv"
ABLATION = "results/ablate/heads.csv"
EVIDENCE = "results/causal/evidence.csv"
RESULTS = "results/classify"  # heads.csv, regions.csv, sensitivity.csv
METRICS = "metrics/classify.json"

log = setup_logging("classify")


def join_importance(labelled: pd.DataFrame, mode: str) -> pd.DataFrame:
    ablation = pd.read_csv(ABLATION)
    ablation = ablation[ablation["mode"] == mode][["layer", "head", "increase_pct", "ci_low_pct", "ci_high_pct"]]
    joined = labelled.merge(ablation, on=["layer", "head"], how="left")
    return joined.assign(important=joined["ci_low_pct"] > 0)


def valued_margin_enrichment(scores) -> np.ndarray:
    """Received attention on margin patches with keys weighted by ||v W_O|| (Kobayashi et al. 2020),
    over their share of patches, mean over images; heads in layer-major order as in `wide`."""
    return (scores["margin_valued"].mean(0) / scores["area"][:, -1].mean()).ravel()


def sensitivity_ranges(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per label, the fewest and most heads it gets anywhere on the threshold grid."""
    return {label: {"min": int(table[label].min()), "max": int(table[label].max())} for label in LABELS}


def main() -> None:
    p = params.load()
    c = p["classify"]
    scores = np.load(SCORES)
    if "area" not in scores:
        raise StageError(
            f"the taxonomy needs ground-truth masks and data.source '{p['data']['source']}' has none "
            f"({SCORES} holds no region scores); ablate and attention results are in results/"
        )
    log.info("read %s, %s, %s and %s", SCORES, ATTENTION_HEADS, ABLATION, EVIDENCE)
    stats = region_stats(scores, c["view"], c["min_enrichment"], c["bootstrap"], p["seed"])
    table = wide(stats, pd.read_csv(ATTENTION_HEADS), f"entropy_{c['view']}")
    table["enrichment_margin_valued"] = valued_margin_enrichment(scores)  # a check, not used by the rule
    labelled = with_causal_evidence(table.assign(label=label_all(table, c)), pd.read_csv(EVIDENCE))
    heads = join_importance(labelled, c["importance_mode"])
    grid = sensitivity(table, c)

    with atomic_path(RESULTS, is_dir=True) as tmp:
        heads.to_csv(tmp / "heads.csv", index=False, float_format="%.6g")
        stats.to_csv(tmp / "regions.csv", index=False, float_format="%.6g")
        grid.to_csv(tmp / "sensitivity.csv", index=False)
    log.info("wrote %s (heads.csv, regions.csv, sensitivity.csv)", RESULTS)
    write_json(
        METRICS,
        {
            "view": c["view"],
            "view_reaches_output": view_reaches_output(c["view"], p["model"]["pooling"]),
            "counts": band_counts(heads),
            **paper_counts(heads),
            "important_heads": int(heads["important"].sum()),
            "important_by_label": heads[heads["important"]]["label"].value_counts().to_dict(),
            "relabelled_by_causal_evidence": int((heads["label"] != heads["attention_label"]).sum()),
            "task_relevant_heads": int(heads["task_relevant"].sum()),
            "sensitivity": sensitivity_ranges(grid),
        },
    )
    counts = heads["label"].value_counts()
    log.info("labelled %d heads in the %s view: %s", len(heads), c["view"], ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    run_stage(main)
