"""The factorial study in the report (issue 39): what each distractor changes, from study/factorial.json
(vitheads.study.summaries.factorial, as pre-registered in study/factorial-preregistration.md): the primary
outcomes' main effects with intervals, detectable differences and verdicts, the exploratory terms, the pilot
rule's reading and the power check (its figure: vitheads.report.study_figures.interaction_figure)."""

from __future__ import annotations

from pathlib import Path

from vitheads.analysis import factorial as design

PREREGISTRATION = Path("study/factorial-preregistration.md")


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
