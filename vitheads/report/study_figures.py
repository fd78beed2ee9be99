"""The study figures (the figures stage only; their sections' data: vitheads.report.graded and .factorial):
the graded benchmark's power curves (plots/study/graded_power.png) and the factorial's cell means
(plots/study/factorial_interactions.png)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vitheads.analysis import factorial as design
from vitheads.analysis.benchmark import RULE
from vitheads.analysis.graded import DECOMPOSITION, SITES
from vitheads.compare import comparable
from vitheads.report.figures import seaborn_theme
from vitheads.report.graded import KINDS, observed_by_kind
from vitheads.study.studies import FACTORIAL_CELLS

SITE_TITLES = {
    "head": "one head",
    "redundant": "two heads, half each (either found)",
    "mlp": "an MLP (only the route split can name it)",
    "direct": "the readout at the element's tokens (route split)",
}

X_LIMITS = (4e-4, 1.0)  # z: every level (0.001-0.3) and every observed element effect but the blanked frame


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


def cell_table(study: dict) -> pd.DataFrame:
    """One row per run of the 8 cells: seed, the factors (0/1) and the primary outcomes."""
    rows = []
    for run in study["runs"]:
        if run["arm"] in FACTORIAL_CELLS:
            values = comparable(run["metrics"])
            rows.append(
                {"seed": run["seed"], **FACTORIAL_CELLS[run["arm"]], **{o: values.get(o) for o in design.PRIMARY}}
            )
    return pd.DataFrame(rows)


def interaction_figure(study: dict, out: Path) -> bool:
    """Per primary outcome (rows) and frame off / on (columns): the mean over seeds of each text x colorbar cell,
    +-2 standard errors over seeds (not the seed-blocked model's intervals), one y-scale per outcome. Drawn only
    once the study is complete (its summary holds the fits); False otherwise or when no outcome varies."""
    if "fits" not in study["summary"]:  # the pre-registration: no effect looked at before every block has run
        return False
    table = cell_table(study)
    outcomes = [o for o in design.PRIMARY if o in table and table[o].nunique() > 1]  # a constant one shows nothing
    if not outcomes:
        return False
    with seaborn_theme(0.8):
        fig, axes = plt.subplots(len(outcomes), 2, figsize=(8, 2.6 * len(outcomes)), sharey="row", squeeze=False)
        for row, outcome in zip(axes, outcomes):
            for ax, frame in zip(row, (0, 1)):
                sub = table[table["frame"] == frame]
                if len(sub):
                    sns.pointplot(
                        data=sub, x="text", y=outcome, hue="colorbar", order=[0, 1], hue_order=[0, 1], dodge=0.15,
                        errorbar=("se", 2), capsize=0.08, palette="colorblind", ax=ax,
                    )  # fmt: skip
                ax.set_title(f"frame {'on' if frame else 'off'}", fontsize=8)
                ax.set_xticks([0, 1], ["text off", "text on"])
                ax.set_xlabel("")
                ax.set_ylabel(outcome, fontsize=7.5)
                ax.ticklabel_format(axis="y", useOffset=False)
                if ax.get_legend():
                    ax.get_legend().remove()
        handles, _ = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, ["colorbar off", "colorbar on"], loc="lower center", ncol=2, frameon=False)
        seeds = table["seed"].nunique()
        fig.suptitle(
            f"Factorial: cell means over {seeds} seed(s), +-2 se over seeds (the model's tests are within seed)",
            fontsize=9,
        )
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return True
