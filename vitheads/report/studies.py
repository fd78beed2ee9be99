"""The data of the report's study sections, read from the committed study files (vitheads.study): the paper's
claims as estimates over training runs, the planted controls' benchmark, and what each distractor changes.
Their words are templates/report/{answer,planted,distortion}.md.j2."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vitheads import artifacts, paper
from vitheads.analysis.benchmark import RELIANCE_SD, RULE
from vitheads.analysis.stats import proportion_interval
from vitheads.names import TARGETS
from vitheads.report.render import render

MODEL_NAMES = {"conv": "default model (conv stem)", "patch": "pure ViT (patch stem)"}
CLAIM_TEXT = {
    "early": paper.CLAIMS[0].text,
    "middle": paper.CLAIMS[1].text,
    "difference": f"Layer {paper.MIDDLE_LAYER} minus {paper.MIDDLE_OVER_EARLY:g} x layers 1-3 is about 0 "
    f"(the ratio claim, well posed; the paper's own figures give {paper.PAPER_DIFFERENCE:+.2f}%)",
}


def section(name: str, data: dict) -> str:
    """One section alone, as Markdown (templates/report/<name>.md.j2 with its data as `s`)."""
    return render(f"{name}.md.j2", s=data)


def stale_code(study: dict) -> list[str]:
    """The code files whose md5 in the study's runs differs from this checkout's (the study ran other code)."""
    stale = set()
    for run in study["runs"]:
        for path, md5 in run["code"].items():
            here = Path(path)
            if not here.is_file() or hashlib.md5(here.read_bytes()).hexdigest() != md5:
                stale.add(path)
    return sorted(stale)


def provenance(study: dict) -> dict:
    """Which file, when and how gathered, on which commits, and whether its code is this checkout's."""
    return {
        "file": artifacts.study(study["study"]),
        "gathered": study["gathered"],
        "command": study["command"],
        "runs": len(study["runs"]),
        "commits": sorted({r["baseline"][:7] for r in study["runs"]}),
        "stale": stale_code(study),
        "missing": study["missing"],
    }


def verdict(entry: dict) -> str:
    return str(paper.Verdict(**entry["verdict"]))


def model_claims(stem: str, model: dict) -> dict:
    """One model's pooled ablation claims (mean ablation) and its head-type counts per run."""
    pooled = [
        {
            "claim": CLAIM_TEXT[claim],
            "pooled": by_mode["mean"]["pooled"],
            "paper": paper.PAPER_DIFFERENCE if claim == "difference" else paper.PAPER_FIGURES[claim],
            "verdict": verdict(by_mode["mean"]),
            "pooled_reml": by_mode["mean"].get("pooled_reml"),
            "verdict_reml": verdict({"verdict": by_mode["mean"]["verdict_reml"]})
            if "verdict_reml" in by_mode["mean"]
            else None,
            "fragile": by_mode["mean"].get("fragile", False),
        }
        for claim, by_mode in model["claims"].items()
        if by_mode.get("mean")
    ]
    counts = [
        {"claim": next(c.text for c in paper.CLAIMS if c.key == claim), "counts": counts, "verdict": verdict(counts)}
        for claim, counts in model["labels"]["claims"].items()
    ]
    return {"name": MODEL_NAMES[stem], "pooled": pooled, "counts": counts}


def answer(study: dict | None) -> dict:
    """The report's opening: each claim, its estimate over training runs, the paper's value, the verdict."""
    if study is None or "conv" not in study["summary"]:
        return {"gathered": False}
    forests = [(MODEL_NAMES[stem], artifacts.forest_png(stem)) for stem in MODEL_NAMES]
    return {
        "gathered": True,
        "provenance": provenance(study),
        "models": [model_claims(stem, m) for stem, m in study["summary"].items() if stem in MODEL_NAMES],
        "forests": [(name, path) for name, path in forests if path.is_file()],
    }


PLANTED_STUDIES = {
    "planted": (
        "Planted controls: can the measures find a head that reads a distractor?",
        "each kind's element (the x-axis label, the colorbar's text, the t = 0 tick mark)",
    ),
    "frame-band": (
        "Planted controls: the frame cue's second form",
        "the frame alone, as a band of 2 pixel rows drawn under the bottom spine across the plot (about 160 px "
        "against the tick's 2; it reaches the bottom row of tokens, which the text cue shares, so it is planted "
        "without the others)",
    ),
}


def planted(name: str, study: dict | None) -> dict:
    """The benchmark: which method finds the heads planted to read each distractor, and which flags heads where
    nothing is planted."""
    heading, element = PLANTED_STUDIES[name]
    data = {"name": name, "heading": heading, "element": element}
    if study is None or not study["summary"]["benchmark"]:
        return data | {"gathered": False}
    s = study["summary"]
    learned = {
        k: (sum(v >= RELIANCE_SD for v in r["cue_change_sd"]["values"]), len(r["seeds"]))
        for k, r in s["reliance"]["planted"].items()
    }
    runs = len(s["held_out_seeds"]["control"])
    by_run = lambda d: {  # the run is the unit: runs with a hit, control runs with any false detection, Wilson 95%
        "hit_runs_ci": proportion_interval(d["seeds_with_a_hit"], d["seeds"]),
        "control_runs_ci": proportion_interval(d["control_seeds_with_a_false_detection"], runs),
    }
    s = s | {"benchmark": {m: {k: d | by_run(d) for k, d in kinds.items()} for m, kinds in s["benchmark"].items()}}
    return data | {
        "gathered": True,
        "provenance": provenance(study),
        "summary": s,
        "methods": list(s["benchmark"]),
        "rule": RULE,
        "reliance_sd": RELIANCE_SD,
        "learned": learned,
        "control_seeds": runs,
    }


DISTORTION_ROWS = (
    *(f"R2 {t}" for t in TARGETS),
    "mean ablation: layers 1-3 (%)",
    f"mean ablation: layer {paper.MIDDLE_LAYER} (%)",
    "mean ablation: difference (%)",
    "heads labelled chirp, layers_6-11",
    "heads labelled chirp, layers_1-3",
    "task-relevant heads",
)


def comparison(columns: dict[str, list[dict]]) -> dict:
    """One row per headline quantity, one column per comparison (B - A [95% CI]), and every metric that differs
    after Holm's correction, per column."""
    by_metric = {name: {r["metric"]: r for r in rows} for name, rows in columns.items()}
    rows = [
        {
            "metric": metric,
            "a": next((c[metric]["a"] for c in by_metric.values() if metric in c), None),
            "cells": [c.get(metric) for c in by_metric.values()],
        }
        for metric in DISTORTION_ROWS
    ]
    flagged = {name: ([m for m, r in c.items() if r["differs"]], len(c)) for name, c in by_metric.items()}
    return {"columns": list(by_metric), "rows": rows, "flagged": flagged}


def distortion(study: dict | None) -> dict:
    """What each distractor changes: every arm against the default configuration (its pooled runs, and its runs
    of the arm's own session), and the layout's own effect, with intervals over training runs (the comparisons
    are computed when the study is gathered)."""
    if study is None or not study["summary"]:
        return {"gathered": False}
    summary = study["summary"]
    arms = [a for a in summary if isinstance(summary[a], dict) and "seeds" in summary[a]]
    pooled = {a: summary[a]["against_default"] for a in arms}
    if "layout" in summary:
        pooled["layout: adapting - kept"] = summary["layout"]
    same = {a: summary[a]["against_default_same_commit"] for a in arms if summary[a]["against_default_same_commit"]}
    if summary.get("default_across_commits"):
        same["default: this session - pooled"] = summary["default_across_commits"]
    return {
        "gathered": True,
        "provenance": provenance(study),
        "default_seeds": summary["default_seeds"],
        "pooled": comparison(pooled),
        "same": comparison(same) if same else None,
        "same_seeds": sorted({s for a in arms for s in summary[a]["same_commit_default_seeds"]}),
        "seconds": {a: summary[a]["seconds"]["mean"] for a in arms},
    }
