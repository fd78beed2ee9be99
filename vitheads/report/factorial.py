"""The factorial study in the report (issue 39): what each distractor changes, from study/factorial.json
(vitheads.study.summaries.factorial, as pre-registered in study/factorial-preregistration.md): the primary
outcomes' main effects with intervals, detectable differences and verdicts, the exploratory terms, the pilot
rule's reading and the power check; and the interaction plot (plots/study/factorial_interactions.png)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vitheads.analysis import factorial as design
from vitheads.compare import comparable
from vitheads.report.figures import seaborn_theme
from vitheads.study.studies import FACTORIAL_CELLS

PREREGISTRATION = Path("study/factorial-preregistration.md")


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


def primary_rows(summary: dict) -> list[dict]:
    """Each primary outcome's main effects: estimate, 95% interval, the difference detectable at 80% power at
    Holm's strictest level, the equivalence bound, the verdict."""
    fits = summary["fits"]
    return [
        {"outcome": o, "factor": f, "bound": bound, **fits[o]["terms"][f]}
        for o, bound in design.PRIMARY.items()
        if o in fits
        for f in design.FACTORS
    ]


def exploratory(summary: dict) -> dict:
    """The exploratory family: how many tests, and those flagged (BH at 5%), with the primary outcomes'
    interactions and layout contrasts listed whatever their result."""
    tests = [
        (o, term, entry)
        for o, f in summary["fits"].items()
        for term, entry in f["terms"].items()
        if entry.get("family") == "exploratory"
    ] + [(o, "layout: adapting - kept", e) for o, e in summary["layout"].items()]
    primary = [(o, t, e) for o, t, e in tests if o in design.PRIMARY]
    as_row = lambda o, t, e: {"outcome": o, "term": t, **e}
    return {
        "tests": len(tests),
        "flagged": [as_row(*t) for t in tests if t[2].get("flagged")],
        "primary_outcomes": [as_row(*t) for t in primary],
    }


def progress(study: dict) -> dict:
    """Runs in, of the design's; complete seed blocks; where and when they ran."""
    runs, summary = study["runs"], study["summary"]
    return {
        "runs": len(runs),
        "planned": len(runs) + len(study.get("missing", [])),
        "complete_seeds": summary.get("complete_seeds", []),
        "planned_seeds": summary.get("planned_seeds", []),
        "machines": sorted({r.get("machine") or "not recorded" for r in runs}),
        "dates": sorted({(r.get("finished") or "")[:10] or "not recorded" for r in runs}),
    }


def factorial_section(study: dict | None, figure: Path) -> dict:
    """The section's data; `fitted` False until two seeds have factorial cells."""
    if study is None:
        return {"gathered": False, "preregistration": PREREGISTRATION}
    summary = study["summary"]
    data = {"gathered": True, "preregistration": PREREGISTRATION, "progress": progress(study)}
    if "fits" not in summary:
        return data | {"fitted": False, "note": summary.get("note", ""), "pilot": summary.get("pilot")}
    return data | {
        "fitted": True,
        "summary": summary,
        "primary": primary_rows(summary),
        "exploratory": exploratory(summary),
        "figure": figure if figure.is_file() else None,
    }
