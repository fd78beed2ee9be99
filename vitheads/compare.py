"""python -m vitheads.compare A B: what differs between two sets of runs, beyond the noise between training runs.

A and B are each a comma-separated list of experiment names, git revisions or `workspace` (the checkout's own
metrics). For every science metric that is comparable across training runs (accuracy, the data's area shares,
band effects of the ablation, label and causal head counts; not per-head values, whose heads do not correspond
across runs) it prints both means, the difference, and whether the difference exceeds the noise between
training runs after a Holm-Bonferroni correction over the metrics compared. The noise is the arms' own spread
over their runs when both have at least two (Welch), else the between-run sd of the estimates study's pooled
default runs (study/estimates.json); the table says which, and the smallest difference it could detect.
Metrics are read from the runs' commits (`dvc exp show --json` drops every list).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from vitheads import paper

STAGES = ("generate", "finetune", "ablate", "classify", "causal")
STUDY = Path("study/estimates.json")


def comparable(metrics: dict[str, dict]) -> dict[str, float]:
    """The metrics of one run that mean the same in every training run, flattened to name -> value."""
    out: dict[str, float] = {}
    for cls, share in metrics.get("generate", {}).get("test_area_share", {}).items():
        out[f"area share: {cls}"] = share
    fine = metrics.get("finetune", {})
    out |= {f"R2 {t}": fine[t]["r2"] for t in fine if isinstance(fine[t], dict) and "r2" in fine[t]}
    for mode in ("mean", "zero"):
        m = metrics.get("ablate", {}).get(mode, {})
        for name, key in (
            ("layers 1-3", paper.FIGURE_KEYS["early"]),
            (f"layer {paper.MIDDLE_LAYER}", paper.FIGURE_KEYS["middle"]),
            ("difference", paper.DIFFERENCE_KEY),
            ("sd layers 1-3", paper.SD_KEYS["early"]),
            (f"sd layer {paper.MIDDLE_LAYER}", paper.SD_KEYS["middle"]),
        ):
            if key in m:
                out[f"{mode} ablation: {name} (%)"] = m[key]
    for band, counts in metrics.get("classify", {}).get("counts", {}).items():
        out |= {f"heads labelled {label}, {band}": n for label, n in counts.items() if band != "all"}
    causal = metrics.get("causal", {})
    for kind in ("text", "colorbar", "frame"):
        out |= {
            f"{kind}: heads {k.removeprefix('heads_')}": v
            for k, v in causal.get(kind, {}).items()
            if k.startswith("heads_")
        }
    if "task_relevant_heads" in causal:
        out["task-relevant heads"] = causal["task_relevant_heads"]
    return out


def revision(name: str) -> str | None:
    """The git revision holding an experiment's or revision's outputs; None for the workspace."""
    if name == "workspace":
        return None
    shown = json.loads(
        subprocess.run(["dvc", "exp", "show", "--json", "-A"], check=True, capture_output=True, text=True).stdout
    )
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                if rev.get("name") == name:
                    return rev["rev"]
    return name  # a git revision


def read_metrics(name: str) -> dict[str, dict]:
    rev, out = revision(name), {}
    for stage in STAGES:
        path = f"metrics/{stage}.json"
        if rev is None:
            if Path(path).is_file():
                out[stage] = json.loads(Path(path).read_text())
            continue
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            out[stage] = json.loads(shown.stdout)
    if not out:
        raise SystemExit(f"no metrics found for '{name}': an experiment name, a git revision or `workspace`")
    return out


def study_sds() -> dict[str, float]:
    """Each comparable metric's sd over the estimates study's pooled default runs (the noise between runs)."""
    if not STUDY.is_file():
        return {}
    runs = [r for r in json.loads(STUDY.read_text())["runs"] if r["arm"] == "conv" and not r["held_out"]]
    return spread([comparable({**r["metrics"]}) for r in runs])


def spread(values: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's sd over runs (the noise between training runs)."""
    return {k: float(np.std([v[k] for v in values], ddof=1)) for k in values[0] if all(k in v for v in values)}


def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm-Bonferroni: which of m p-values are rejected at family-wise level alpha."""
    order = np.argsort(p)
    rejected = np.zeros(len(p), bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected[i] = True
    return rejected


def compare(
    a: list[dict[str, float]], b: list[dict[str, float]], sds: dict[str, float], alpha: float = 0.05
) -> list[dict]:
    """One row per metric both sides have: means, difference, its standard error and source, p, and whether it
    differs after Holm's correction; with the smallest difference detectable at the corrected level."""
    names = [k for k in a[0] if all(k in r for r in a + b)]
    rows = []
    for name in names:
        x, y = np.array([r[name] for r in a], float), np.array([r[name] for r in b], float)
        diff = float(y.mean() - x.mean())
        several = len(x) >= 2 and len(y) >= 2
        if several and (x.var() > 0 or y.var() > 0):
            vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
            se, source = float(np.sqrt(vx + vy)), "the arms' own runs"
            df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))  # Welch-Satterthwaite
            p, half = float(2 * stats.t.sf(abs(diff) / se, df)), float(stats.t.ppf(0.975, df) * se)
        elif name in sds:  # one run a side, or no spread in 2-3 runs: the study's spread is the better estimate
            se, source = sds[name] * float(np.sqrt(1 / len(x) + 1 / len(y))), "the estimates study's runs"
            p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
            half = float(stats.norm.ppf(0.975) * se)
        elif several:
            se, source, p, half = 0.0, "no spread in either arm's runs: taken as fixed", float(diff == 0), 0.0
        else:
            continue  # one run a side and no study: no estimate of the noise
        rows.append(
            {
                "metric": name,
                "a": float(x.mean()),
                "b": float(y.mean()),
                "difference": diff,
                "se": se,
                "ci": [diff - half, diff + half],  # 95%, uncorrected
                "noise_from": source,
                "p": p,
            }
        )
    if rows:
        flagged = holm(np.array([r["p"] for r in rows]), alpha)
        z = stats.norm.ppf(1 - alpha / (2 * len(rows)))  # the Bonferroni bound Holm starts from
        for row, f in zip(rows, flagged):
            row |= {"differs": bool(f), "detectable": z * row["se"]}
    return rows


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    header = ["metric", "A", "B", "B - A", "noise (se)", "smallest detectable", "differs", "noise from"]
    lines = [
        [
            r["metric"],
            f"{r['a']:.4g}",
            f"{r['b']:.4g}",
            f"{r['difference']:+.4g}",
            f"{r['se']:.3g}",
            f"{r['detectable']:.3g}",
            "YES" if r["differs"] else "no",
            r["noise_from"],
        ]
        for r in rows
    ]
    if fmt == "markdown":
        return "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(line) + " |" for line in lines]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header, *lines])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m vitheads.compare", description=__doc__.splitlines()[0])
    parser.add_argument("a", help="comma-separated experiment names, git revisions or `workspace`")
    parser.add_argument("b")
    parser.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate over the metrics")
    args = parser.parse_args(argv)
    a, b = ([comparable(read_metrics(n)) for n in side.split(",")] for side in (args.a, args.b))
    rows = compare(a, b, study_sds(), args.alpha)
    if not rows:
        raise SystemExit(
            "no metric to compare: the two sides share none, or no noise estimate (give each side "
            "two runs or more, or gather the estimates study)"
        )
    print(render(rows, args.format))
    flagged = sum(r["differs"] for r in rows)
    print(
        f"{flagged} of {len(rows)} metrics differ beyond the noise between training runs "
        f"(Holm, family-wise {args.alpha:g}).",
        file=sys.stderr if args.format == "json" else sys.stdout,  # the JSON on stdout stays parseable
    )


if __name__ == "__main__":
    main(sys.argv[1:])
