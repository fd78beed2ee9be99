"""The graded benchmark's report section: its data, read from study/graded.json (vitheads.study.graded; design:
docs/graded.md); its figure is vitheads.report.study_figures.power_figure."""

from __future__ import annotations

from pathlib import Path

from vitheads.analysis.benchmark import RULE
from vitheads.analysis.graded import DECOMPOSITION, SITES
from vitheads.data.variants import variant_spec

KINDS = ("text", "colorbar", "frame")


def observed_by_kind(observed: dict) -> dict[str, list[float]]:
    """The default model's own element effects (mean |change| per variant, target and estimates run, z), pooled
    by distractor kind: what the power curves have to be read against."""
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    for variant, entry in observed.items():
        kind = variant_spec(variant).kind
        if kind in out:
            out[kind] += entry["values"]
    return out


def level_cell(curve: list[dict], level: float) -> str:
    hit = next((c for c in curve if c["level"] == level), None)
    return "n/a" if hit is None else f"{hit['detected']}/{hit['implants']}"


def method_row(method: str, entry: dict, levels: list[float]) -> dict:
    """One method's line of the report's table: detections per level at the head site, its minimum detectable
    effects, false flags in the implant's layer at the largest level, misattribution at the non-head sites."""
    head = entry.get("head")
    top = lambda rows: rows[-1] if rows else None  # the largest level
    return {
        "method": method,
        "head": [level_cell(head["curve"], lv) for lv in levels] if head else ["n/a"] * len(levels),
        "mde": {site: entry[site]["minimum_detectable"] for site in SITES if site in entry},
        "false_in_layer": top(entry.get("specificity")),
        "misattribution": top(entry.get("misattribution")),
    }


def head_power(study: dict | None) -> dict | None:
    """The power behind a per-head negative, for the sections that state one: the repaired rule's and the route
    split's 80% power at one head, and the rule's detections at its largest level; None before the benchmark."""
    if study is None or not study.get("summary"):
        return None
    summary = study["summary"]
    return {
        "rule": summary[RULE]["head"]["minimum_detectable"],
        "rule_top": summary[RULE]["head"]["curve"][-1],
        "route": summary[DECOMPOSITION]["head"]["minimum_detectable"],
        "models": len(study["runs"]),
    }


def graded_section(study: dict | None, figure: Path) -> dict:
    """The report section's data: provenance, per method its row, the repaired rule's minimum detectable
    effect (the bound behind every per-head negative), and the figure when drawn."""
    if study is None or not study.get("summary"):
        return {"gathered": False}
    summary = study["summary"]
    levels = [c["level"] for c in summary[RULE]["head"]["curve"] if c["level"] > 0]
    controls = {run["name"]: run["controls"] for run in study["runs"]}
    return {
        "gathered": True,
        "runs": [run["name"] for run in study["runs"]],
        "implants": sum(len(run["implants"]) for run in study["runs"]),
        "wall_hours": study["wall_seconds"] / 3600,
        "header": study["header"],
        "levels": levels,
        "rows": [method_row(m, summary[m], levels) for m in summary],
        "rule": RULE,
        "power": head_power(study),
        "by_element": {
            m: {
                e: v["minimum_detectable"] | {"top": v["curve"][-1]}
                for e, v in summary[m]["head"]["by_element"].items()
            }
            for m in summary
            if "by_element" in summary[m].get("head", {})
        },
        "controls": controls,
        "observed": {k: (min(v), max(v)) for k, v in observed_by_kind(study["observed_element_effects"]).items() if v},
        "figure": figure if figure.is_file() else None,
    }
