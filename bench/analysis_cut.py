"""Which findings survive a cheaper analysis: two finished runs (the default, and one with fewer
analysis images or modes) compared verdict by verdict (by the report's rules in vitheads.paper), with
the seconds each analysis took.
docs/analysis-budget.md has the measured cuts.

Usage: python bench/analysis_cut.py FULL_RUN CUT_RUN   (checkout folders after `dvc repro`)
"""

import json
import sys
from pathlib import Path

import pandas as pd

from vitheads import paper
from vitheads.names import DISTRACTOR_KINDS, head_name

TIMED = {"ablate.json": ("sweep_seconds", "author_protocol_seconds"), "causal.json": ("seconds",)}
CAUSAL_COUNTS = (
    "heads_responding",
    "heads_responding_mean_above_ci",
    "heads_following",
    "heads_changing_predictions",
    "heads_changing_predictions_mean_above_ci",
    "detectors",
)


def read_json(run: Path, folder: str, name: str) -> dict:
    return json.loads((run / folder / name).read_text())


def heads_where(table: pd.DataFrame, passing: pd.Series) -> set[str]:
    """Names of the heads (rows of a per-head table) that pass."""
    return {head_name(r.layer, r.head) for r in table[passing].itertuples()}


def agreement(what: str, full: set[str], cut: set[str]) -> None:
    """How many heads keep a verdict, and which gain or lose it."""
    print(
        f"{what}: full {len(full)}, cut {len(cut)}, both {len(full & cut)}; "
        f"only full {sorted(full - cut)}, only cut {sorted(cut - full)}"
    )


def seconds(full: Path, cut: Path) -> None:
    """What the cut saves, per analysis (timings/*.json)."""
    for name, keys in TIMED.items():
        a, b = (read_json(run, "timings", name) for run in (full, cut))
        for key in keys:
            if key in a and key in b:
                print(f"seconds, {name} {key}: {a[key]} -> {b[key]} (saved {a[key] - b[key]:.1f})")


def ablation(full: Path, cut: Path) -> None:
    """Heads whose ablation CI lies above zero, per mode run in both."""
    tables = [pd.read_csv(run / "results/ablate/heads.csv") for run in (full, cut)]
    for mode in ("mean", "zero"):
        if not all((t["mode"] == mode).any() for t in tables):
            print(f"ablation, {mode} mode: not run in both")
            continue
        sets = [heads_where(t, (t["mode"] == mode) & (t["ci_low_pct"] > 0)) for t in tables]
        agreement(f"ablation, {mode} mode: heads whose 95% CI lies above 0", *sets)


def replication_verdicts(run: Path) -> dict[tuple[str, str], str]:
    """Verdict per (claim, protocol) by the report's own rules (vitheads.paper), from the run's metrics."""
    ablate, classify = read_json(run, "metrics", "ablate.json"), read_json(run, "metrics", "classify.json")
    verdicts = {
        (claim, proto): f.verdict
        for claim, by_proto in paper.ablation_figures(ablate).items()
        for proto, f in by_proto.items()
        if proto in ablate
    }
    return verdicts | {(claim, "head-roles rules"): f.verdict for claim, f in paper.head_type_figures(classify).items()}


def replication(full: Path, cut: Path) -> None:
    """Each claim's verdict under each protocol run in both."""
    a, b = replication_verdicts(full), replication_verdicts(cut)
    texts = {claim.key: claim.text for claim in paper.CLAIMS}
    for key in [k for k in a if k in b]:
        claim, proto = key
        print(
            f"replication verdict ({proto}): {'same' if a[key] == b[key] else 'CHANGED'}: "
            f"{texts[claim][:60]}: {a[key]} -> {b[key]}"
        )


def causal(full: Path, cut: Path) -> None:
    """Per distractor kind, the stage's head counts (with intervals on means), and the task-relevant heads."""
    a, b = (read_json(run, "metrics", "causal.json") for run in (full, cut))
    for kind in DISTRACTOR_KINDS:
        if kind in a or kind in b:
            x, y = a.get(kind, {}), b.get(kind, {})
            print(
                f"causal, {kind}: "
                + "; ".join(f"{k} {x.get(k, '(missing)')} -> {y.get(k, '(missing)')}" for k in CAUSAL_COUNTS)
            )
    evidence = [pd.read_csv(run / "results/causal/evidence.csv") for run in (full, cut)]
    agreement("causal: task-relevant heads", *[heads_where(t, t["task_relevant"]) for t in evidence])


def labels(full: Path, cut: Path) -> None:
    a, b = (
        pd.read_csv(run / "results/classify/heads.csv").set_index(["layer", "head"])["label"] for run in (full, cut)
    )
    changed = a.index[a != b]
    print(
        f"head labels: {len(a) - len(changed)} of {len(a)} unchanged"
        + "".join(f"; {head_name(l, h)} {a[(l, h)]} -> {b[(l, h)]}" for l, h in changed)
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    runs = Path(sys.argv[1]), Path(sys.argv[2])
    for compare in (seconds, ablation, replication, causal, labels):
        compare(*runs)
