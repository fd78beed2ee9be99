"""Which findings survive a cheaper analysis: two finished runs (the default, and one with fewer
analysis images or modes) compared verdict by verdict. The time each cut saves is in the runs'
timings/*.json; docs/analysis-budget.md has the measured cuts.

Usage: python bench/analysis_cut.py FULL_RUN CUT_RUN   (checkout folders after `dvc repro`)
"""

import json
import sys
from pathlib import Path

import pandas as pd

from vitheads.names import DISTRACTOR_KINDS, head_name

CAUSAL_COUNTS = ("heads_responding", "heads_following", "heads_changing_predictions", "detectors")


def heads_where(table: pd.DataFrame, passing: pd.Series) -> set[str]:
    return {head_name(r.layer, r.head) for r in table[passing].itertuples()}


def agreement(what: str, full: set[str], cut: set[str]) -> None:
    print(f"{what}: full {len(full)}, cut {len(cut)}, both {len(full & cut)}; "
          f"only full {sorted(full - cut)}, only cut {sorted(cut - full)}")


def replication_verdicts(run: Path) -> list[tuple[str, str]]:
    """(claim, verdict) per row of the report's replication table (its first table)."""
    lines = (run / "report" / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Claim (paper)"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[-1]))
    return rows


def main(full: Path, cut: Path) -> None:
    read = lambda run, name: json.loads((run / "metrics" / name).read_text())
    ablate = [pd.read_csv(run / "results/ablate/heads.csv") for run in (full, cut)]
    for mode in ("mean", "zero"):
        if mode not in read(cut, "ablate.json"):
            print(f"ablation, {mode} mode: not run in the cut run")
            continue
        sets = [heads_where(t, (t["mode"] == mode) & (t["ci_low_pct"] > 0)) for t in ablate]
        agreement(f"ablation, {mode} mode: heads whose 95% CI lies above 0", *sets)
    for (claim, a), (_, b) in zip(replication_verdicts(full), replication_verdicts(cut)):
        print(f"replication verdict: {'same' if a == b else 'CHANGED'}: {claim[:60]}: {a} -> {b}")
    causal = [read(run, "causal.json") for run in (full, cut)]
    for kind in DISTRACTOR_KINDS:
        if kind in causal[0]:
            print(f"causal, {kind}: " + "; ".join(f"{k} {causal[0][kind].get(k)} -> {causal[1][kind].get(k)}" for k in CAUSAL_COUNTS))
    evidence = [pd.read_csv(run / "results/causal/evidence.csv") for run in (full, cut)]
    agreement("causal: task-relevant heads", *[heads_where(t, t["task_relevant"]) for t in evidence])
    labels = [pd.read_csv(run / "results/classify/heads.csv").set_index(["layer", "head"])["label"] for run in (full, cut)]
    changed = labels[0].index[labels[0] != labels[1]]
    print(f"head labels: {len(labels[0]) - len(changed)} of {len(labels[0])} unchanged"
          + "".join(f"; {head_name(l, h)} {labels[0][(l, h)]} -> {labels[1][(l, h)]}" for l, h in changed))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
