"""classify: label every head from its measured attention, with controls, joined with its causal evidence
and ablation (docs/methods.md, "Head roles")."""

from vitheads import params
from vitheads.analysis.tables import read_arrays, read_table, write_table
from vitheads.analysis.taxonomy import classify_metrics, head_summary, label_heads
from vitheads.outputs import StageError, atomic_path, run_stage, setup_logging, write_json

SCORES = "results/attention/scores.npz"
ATTENTION_HEADS = "results/attention/heads.csv"
ABLATION = "results/ablate/heads.csv"
EVIDENCE = "results/causal/evidence.csv"
RESULTS = "results/classify"  # heads.csv, regions.csv, sensitivity.csv
METRICS = "metrics/classify.json"
SUMMARY = "tables/heads.csv"  # in git: the per-head record the studies read from each experiment's commit

log = setup_logging("classify")


def main() -> None:
    p = params.load()
    c = p["classify"]
    scores = read_arrays(SCORES)
    if "area" not in scores:
        raise StageError(
            f"the taxonomy needs ground-truth masks and data.source '{p['data']['source']}' has none "
            f"({SCORES} holds no region scores); ablate and attention results are in results/"
        )
    log.info("read %s, %s, %s and %s", SCORES, ATTENTION_HEADS, ABLATION, EVIDENCE)
    ablation = read_table(ABLATION)
    heads, stats, grid = label_heads(scores, read_table(ATTENTION_HEADS), read_table(EVIDENCE), ablation, c, p["seed"])
    with atomic_path(RESULTS, is_dir=True) as tmp:
        write_table(heads, tmp / "heads.csv")
        write_table(stats, tmp / "regions.csv")
        write_table(grid, tmp / "sensitivity.csv", float_format=None)
    with atomic_path(SUMMARY) as tmp:
        write_table(head_summary(heads, ablation), tmp)
    log.info("wrote %s (heads.csv, regions.csv, sensitivity.csv) and %s", RESULTS, SUMMARY)
    metrics = classify_metrics(heads, grid, c["view"], p["model"]["pooling"])
    write_json(METRICS, metrics)
    log.info(
        "labelled %d heads in the %s view: %s",
        len(heads),
        c["view"],
        ", ".join(f"{k} {v}" for k, v in metrics["counts"]["all"].items() if v),
    )


if __name__ == "__main__":
    run_stage(main)
