"""The graded benchmark's power curves (plots/study/graded_power.png) and the data of its report section, read
from study/graded.json (vitheads.study.graded; design: docs/graded.md)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from vitheads.analysis.benchmark import RULE
from vitheads.analysis.graded import DECOMPOSITION, SITES
from vitheads.data.variants import variant_spec
from vitheads.report.figures import seaborn_theme

SITE_TITLES = {
    "head": "one head",
    "redundant": "two heads, half each (either found)",
    "mlp": "an MLP (only the route split can name it)",
    "direct": "the readout at the element's tokens (route split)",
}
KINDS = ("text", "colorbar", "frame")
X_LIMITS = (4e-4, 1.0)  # z: every level (0.001-0.3) and every observed element effect but the blanked frame


def observed_by_kind(observed: dict) -> dict[str, list[float]]:
    """The default model's own element effects (mean |change| per variant, target and estimates run, z), pooled
    by distractor kind: what the power curves have to be read against."""
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    for variant, entry in observed.items():
        kind = variant_spec(variant).kind
        if kind in out:
            out[kind] += entry["values"]
    return out


def curve_points(entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (median achieved effect), rate and its Wilson interval as error bars, levels above the control."""
    levels = [c for c in entry["curve"] if c["level"] > 0]
    x = np.array([c["effect_median"] for c in levels])
    rate = np.array([c["rate"] for c in levels])
    ci = np.array([c["ci"] for c in levels])
    return x, rate, np.abs(ci.T - rate)


RUG_ROWS = {kind: -0.12 - 0.1 * row for row, kind in enumerate(KINDS)}  # y of each kind's rug, under the rates
HIGHLIGHT = {RULE: "black", DECOMPOSITION: "#d62728"}  # the rule behind the per-head negatives; the route split


def draw_observed(ax, observed: dict[str, list[float]]) -> None:
    """The observed effects as rugs under the rate axis (y < 0), one row per kind, clipped to the x-range."""
    for kind, y in RUG_ROWS.items():
        values = np.clip(observed[kind], *X_LIMITS)
        if len(values):
            ax.hlines(y, values.min(), values.max(), color="grey", lw=1.2)
            ax.plot(values, np.full(len(values), y), "|", color="dimgrey", ms=7)


def draw_site(ax, summary: dict, site: str, palette: dict, observed: dict[str, list[float]]) -> None:
    """One site's panel: each method's curve (Wilson bars), the 80% line, the observed effects' rugs."""
    shown = [m for m in summary if site in summary[m]]
    for i, method in enumerate(shown):
        x, rate, err = curve_points(summary[method][site])
        dodge = 1.0 + 0.02 * (i - len(shown) / 2)  # log-x offset (at most about 9%) so the intervals stay apart
        style = {"lw": 2.4, "zorder": 3} if method in HIGHLIGHT else {"lw": 0.9, "alpha": 0.75}
        ax.errorbar(
            x * dodge, rate, yerr=err, marker="o", ms=3, capsize=2, color=palette[method], label=method, **style
        )
    draw_observed(ax, observed)
    ax.axhline(0.8, color="black", ls="--", lw=0.8)
    ax.axhline(0.0, color="grey", lw=0.6)
    n = summary[shown[0]][site]["curve"][0]["implants"] if shown else 0  # the control row: every implant
    ax.set_title(f"{SITE_TITLES[site]}: {n} implants", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(*X_LIMITS)
    ax.set_yticks([*RUG_ROWS.values(), 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_yticklabels([*(f"observed: {k}" for k in RUG_ROWS), "0", "0.2", "0.4", "0.6", "0.8", "1"])


def power_figure(study: dict, out: Path) -> None:
    """One panel per implant site: detection probability (Wilson 95% over implants) against the implant's
    achieved whole-model effect (z, log), a line per method, all panels on one x- and y-scale; under the axis,
    the effects the default model's elements actually have (the estimates study's runs), by kind."""
    summary = study["summary"]
    if not summary:
        raise ValueError(f"study/graded.json has no scores yet (gathered {study.get('gathered')}): nothing to draw")
    methods = list(summary)
    others = [m for m in methods if m not in HIGHLIGHT]
    palette = dict(zip(others, sns.color_palette("colorblind", len(others)))) | HIGHLIGHT
    observed = observed_by_kind(study["observed_element_effects"])
    with seaborn_theme(0.75):
        fig, axes = plt.subplots(2, 2, figsize=(11, 9), sharex=True, sharey=True)
        for ax, site in zip(axes.flat, SITES):
            draw_site(ax, summary, site, palette, observed)
        for ax in axes[1]:
            ax.set_xlabel("implant's whole-model effect: mean |change| of its target (z, log)")
        for ax in axes[:, 0]:
            ax.set_ylabel("share of implants detected (95% Wilson)")
        axes[0, 0].set_ylim(-0.45, 1.05)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
        runs = len(study["runs"])
        fig.suptitle(
            f"Graded benchmark: detection per method against the implant's effect ({runs} trained default model(s); "
            "rules fixed before the runs; dashed: 80%)\nUnder 0: the default model's own element effects, every "
            "variant x target x estimates run (mean |change|, z; the blanked frame's largest clipped at 1)",
            fontsize=9,
        )
        fig.tight_layout(rect=(0, 0.08, 1, 0.95))
        fig.savefig(out, dpi=110)
        plt.close(fig)


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
