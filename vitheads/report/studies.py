"""The report's study sections, read from the committed study files (vitheads.study): the paper's claims as
estimates over training runs, the planted controls' benchmark, and what each distractor changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from vitheads import paper
from vitheads.analysis.benchmark import METHODS, RELIANCE_SD, RULE
from vitheads.names import TARGETS
from vitheads.report.blocks import Heading, Image, Paragraph, Table

STUDY_DIR = Path("study")
MODEL_NAMES = {"conv": "default model (conv stem)", "patch": "pure ViT (patch stem)"}
CLAIM_TEXT = {
    "early": paper.CLAIMS[0].text,
    "middle": paper.CLAIMS[1].text,
    "difference": f"Layer {paper.MIDDLE_LAYER} minus {paper.MIDDLE_OVER_EARLY:g} x layers 1-3 is about 0 "
    f"(the ratio claim, well posed; the paper's own figures give {paper.PAPER_DIFFERENCE:+.2f}%)",
}


def read_study(name: str) -> dict | None:
    path = STUDY_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def stale_code(study: dict) -> list[str]:
    """The code files whose md5 in the study's runs differs from this checkout's (the study ran other code)."""
    stale = set()
    for run in study["runs"]:
        for path, md5 in run["code"].items():
            here = Path(path)
            if not here.is_file() or hashlib.md5(here.read_bytes()).hexdigest() != md5:
                stale.add(path)
    return sorted(stale)


def provenance(study: dict) -> Paragraph:
    commits = sorted({r["baseline"][:7] for r in study["runs"]})
    stale = stale_code(study)
    flag = (
        f" **Its analysis code differs from this checkout's** in {len(stale)} file(s): {', '.join(stale[:6])}"
        f"{' ...' if len(stale) > 6 else ''}; re-run the study to bring it up to date."
        if stale
        else " The study ran this checkout's analysis code (every file's md5 matches)."
    )
    missing = f" Not finished yet: {', '.join(study['missing'])}." if study["missing"] else ""
    return Paragraph(
        f"From {STUDY_DIR}/{study['study']}.json (gathered {study['gathered']} by `{study['command']}`): "
        f"{len(study['runs'])} runs queued on commit(s) {', '.join(commits)}.{flag}{missing}"
    )


def interval(x: dict, digits: int = 3, unit: str = "") -> str:
    low, high = x["ci"]
    value = x.get("estimate", x.get("mean"))
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:+.{digits}f}{unit} (one run: no interval)"
    return f"{value:+.{digits}f}{unit} [{low:+.{digits}f}, {high:+.{digits}f}]"


def answer_section(study: dict | None) -> list:
    """The report's opening: each claim, its estimate over training runs, the paper's value, the verdict."""
    if study is None or "conv" not in study["summary"]:
        return [
            Heading("The answer"),
            Paragraph(
                "The estimates study (`python -m vitheads.study run estimates`, then "
                "`gather estimates`) has not been gathered yet: no claim is judged over training runs."
            ),
        ]
    rows = []
    for stem, model in study["summary"].items():
        if stem not in MODEL_NAMES:
            continue
        for claim, by_mode in model["claims"].items():
            entry = by_mode.get("mean")
            if not entry:
                continue
            pooled = entry["pooled"]
            paper_value = paper.PAPER_DIFFERENCE if claim == "difference" else paper.PAPER_FIGURES[claim]
            rows.append(
                [
                    CLAIM_TEXT[claim],
                    MODEL_NAMES[stem],
                    f"{interval(pooled)}% over {pooled['k']} runs "
                    f"(next run: [{pooled['prediction'][0]:+.3f}, {pooled['prediction'][1]:+.3f}])"
                    if pooled["prediction"]
                    else f"{interval(pooled)}% over {pooled['k']} runs",
                    f"{paper_value:+.2f}%",
                    str(paper.Verdict(**entry["verdict"])),
                ]
            )
        for claim, counts in model["labels"]["claims"].items():
            rows.append(
                [
                    next(c.text for c in paper.CLAIMS if c.key == claim),
                    MODEL_NAMES[stem],
                    f"{counts['mean']:.1f} heads [{counts['ci'][0]:.1f}, {counts['ci'][1]:.1f}] per run "
                    f"(runs: {', '.join(f'{v:g}' for v in counts['values'])})",
                    "judged by eye",
                    str(paper.Verdict(**counts["verdict"])),
                ]
            )
    images = [
        Image(
            Path(f"plots/study/forest_{stem}.png"),
            f"Forest plots, {MODEL_NAMES[stem]}: each run's estimate "
            "+- 1.96 standard errors over test images (read from its bootstrap CI, as the pooling uses it), "
            "the random-effects estimate (diamond: modified Hartung-Knapp "
            "interval) and the prediction interval for a next run; red: the paper's value and sd over heads",
        )
        for stem in MODEL_NAMES
        if Path(f"plots/study/forest_{stem}.png").is_file()
    ]
    return [
        Heading("The answer: the paper's claims over training runs"),
        provenance(study),
        Paragraph(
            "Each claim as an estimate over training runs (mean ablation, the primary measure): random-effects "
            "pooling of each run's estimate and its within-run standard error (from its 95% CI over test "
            "images). *Reproduced*: the 90% interval lies within the paper's value +- the smallest effect of "
            "interest fixed in vitheads/paper.py before the runs (half the paper's figure); *not reproduced*: "
            "the 95% interval excludes it; *inconclusive* otherwise. Head-type claims: the label's count per "
            "run, a t interval over runs."
        ),
        Table(["Claim (paper)", "Model", "Estimate [95% CI]", "Paper", "Verdict"], rows),
        *images,
    ]


def bold_rule(method: str) -> str:
    return f"**{method}**" if method == RULE else method


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


def share(rate: float, ci: list[float], digits: int) -> str:
    """A proportion and its interval, in percent."""
    return f"{rate:.{digits}%} [{ci[0]:.{digits}%}, {ci[1]:.{digits}%}]"


def planted_section(name: str, study: dict | None) -> list:
    """The benchmark: which method finds the heads planted to read each distractor, and which flags heads where
    nothing is planted."""
    heading, element = PLANTED_STUDIES[name]
    if study is None or not study["summary"]["benchmark"]:
        return [
            Heading(heading),
            Paragraph(
                f"The {name} study (`python -m vitheads.study run {name}`) "
                "has not been gathered yet: no measure's power is shown."
            ),
        ]
    s = study["summary"]
    kinds = s["kinds"]
    fit_cell = lambda d: (
        f"{d['designated_found']}/{d['designated']} designated; {d['others_planted']} others; "
        f"control: {d['flagged_control']} flagged"
    )
    fit_rows = [[bold_rule(method)] + [fit_cell(s["fit"][method][k]) for k in kinds] for method in METHODS]
    learned = ", ".join(
        f"{k} in {sum(v >= RELIANCE_SD for v in r['cue_change_sd']['values'])} of {len(r['seeds'])} runs"
        for k, r in s["reliance"]["planted"].items()
    )
    control_cell = lambda d: (
        f"{share(d['false_rate_control'], d['false_ci_control'], 2)} flagged, "
        f"{d['control_seeds_with_a_false_detection']}/"
        f"{len(s['held_out_seeds']['control'])} seeds with any"
        if d["false_rate_control"] is not None
        else "no held-out seed run yet"
    )
    cell = lambda d: (
        f"{share(d['hit_rate'], d['hit_ci'], 0)} hit; control: {control_cell(d)}"
        if d["hit_rate"] is not None
        else "n/a"
    )
    rows = [[bold_rule(method)] + [cell(s["benchmark"][method][k]) for k in kinds] for method in METHODS]
    rows.append(["follow (attention moves with a moved element)"] + ["n/a: a planted cue does not move"] * len(kinds))
    reliance_rows = [
        [arm, kind, interval(r["cue_change_sd"], 2), interval(r["cue_r2"], 2)]
        for arm, kinds in s["reliance"].items()
        for kind, r in kinds.items()
    ]
    return [
        Heading(heading),
        provenance(study),
        Paragraph(
            f"Planted arm: {element} "
            "carries a quantity as its shade, an added target, and by construction only two designated heads per "
            "kind can read those tokens (every other head's attention to them is masked from the first step, "
            "the readout reads none of them): the truth. Control arm: identical, but every image shows another "
            "image's shades, so the cues carry nothing. Rules and thresholds were fixed on seed(s) "
            f"{s['fit_seeds']['planted']}; the table scores held-out seeds {s['held_out_seeds']['planted']}: "
            "hit rate = share of the designated heads flagged; control = share of all 144 heads flagged for that "
            "kind on the control arm, and how many control seeds had any false detection. Intervals: 95% Wilson "
            "over heads x seeds, which treats heads as independent (they are not: the seeds are the real units, "
            "hence the seed counts)."
        ),
        Paragraph(
            f"A kind is planted in a run only where its model relies on the cue (a cue swap moves the cued "
            f"prediction by at least {RELIANCE_SD:g} sd on average, table below): {learned}. Hit rates count only "
            "those runs. Where a cue was not learned, the designated heads still attend to it (a fixed key bias) "
            "but nothing reads it: a method that flags them there mistakes attention for use."
        ),
        Table(["Method", *kinds], rows),
        Paragraph(
            f"The fit seed(s) {s['fit_seeds']['planted']}, on which the rules were set (not a score): designated heads "
            "flagged on the planted arm, other heads flagged there, and heads flagged on the control arm."
        ),
        Table(["Method", *kinds], fit_rows),
        Paragraph(
            "Reliance at model level: the cued prediction's mean |change| (in sds of the target) when only the "
            "cue is swapped in a pair, and the cue target's test R², mean [95% t interval] over runs."
        ),
        Table(["Arm", "Kind", "Cue swap: mean |change| (sd)", "Cue target R²"], reliance_rows),
    ]


DISTORTION_ROWS = (
    *(f"R2 {t}" for t in TARGETS),
    "mean ablation: layers 1-3 (%)",
    f"mean ablation: layer {paper.MIDDLE_LAYER} (%)",
    "mean ablation: difference (%)",
    "heads labelled chirp, layers_6-11",
    "heads labelled chirp, layers_1-3",
    "task-relevant heads",
)


def change_cell(row: dict | None) -> str:
    """B - A [95% CI over training runs], marked where it differs after Holm's correction."""
    if row is None:
        return "n/a"
    low, high = row["ci"]
    return f"{row['difference']:+.3g} [{low:+.3g}, {high:+.3g}]{' **differs**' if row['differs'] else ''}"


def change_table(columns: dict[str, list[dict]]) -> list:
    """One row per headline quantity, one column per comparison (B - A [95% CI]), and every metric that differs
    after Holm's correction, per column."""
    by_metric = {name: {r["metric"]: r for r in rows} for name, rows in columns.items()}
    rows = [
        [metric, next((f"{c[metric]['a']:.3g}" for c in by_metric.values() if metric in c), "n/a")]
        + [change_cell(c.get(metric)) for c in by_metric.values()]
        for metric in DISTORTION_ROWS
    ]
    flagged = [
        f"{name}: {', '.join(m for m, r in c.items() if r['differs']) or 'none'} (of {len(c)})"
        for name, c in by_metric.items()
    ]
    return [
        Table(["Quantity", "A (mean)", *by_metric], rows),
        Paragraph("Every metric that differs after the correction, per column: " + "; ".join(flagged) + "."),
    ]


def distortion_section(study: dict | None) -> list:
    """What each distractor changes: every arm against the default configuration (its pooled runs, and its runs
    of the arm's own session), and the layout's own effect, with intervals over training runs (the comparisons
    are computed when the study is gathered)."""
    if study is None or not study["summary"]:
        return [
            Heading("What each distractor changes"),
            Paragraph("The distortion study (`python -m vitheads.study run distortion`) has not been gathered yet."),
        ]
    summary = study["summary"]
    arms = [a for a in summary if isinstance(summary[a], dict) and "seeds" in summary[a]]
    pooled = {a: summary[a]["against_default"] for a in arms}
    if "layout" in summary:
        pooled["layout: adapting - kept"] = summary["layout"]
    same = {a: summary[a]["against_default_same_commit"] for a in arms if summary[a]["against_default_same_commit"]}
    same_seeds = sorted({s for a in arms for s in summary[a]["same_commit_default_seeds"]})
    if summary.get("default_across_commits"):
        same["default: this session - pooled"] = summary["default_across_commits"]
    cost = [f"{a} {summary[a]['seconds']['mean']:.0f} s" for a in arms]
    return [
        Heading("What each distractor changes"),
        provenance(study),
        Paragraph(
            "Each arm retrains the model with elements hidden. Layout kept: the plot is laid out as with every "
            "element and the switched-off ones are hidden, so the spectrogram keeps its place and size and only "
            "the content changes; all-off-adapting lets the spectrogram fill the image (content and layout "
            "together), and its difference from all-off is the layout's own effect. Each cell: B - A with "
            "Welch's 95% interval over training runs; **differs** marks a difference that survives Holm's "
            "correction over every comparable metric of that column (`python -m vitheads.compare`'s rule). A "
            "count with no spread on either side is taken as fixed."
        ),
        Heading("Against the default configuration's pooled runs", 3),
        Paragraph(
            f"A: the estimates study's pooled runs (seeds {summary['default_seeds']}), which ran in an earlier "
            "session, on another machine; B: the arm's runs."
        ),
        *change_table(pooled),
        Heading("Against the default configuration run in the arm's own session", 3),
        Paragraph(
            f"A: the default configuration's runs queued on the arm's commit (seeds {same_seeds}: the estimates "
            "study's held-out runs), so the same code and machine; B: the arm's runs. Training differs between "
            "machines: the last column compares these default runs with the pooled ones, the size of that "
            "effect."
        )
        if same
        else Paragraph("No default-configuration run shares an arm's commit: no same-session comparison."),
        *(change_table(same) if same else []),
        Paragraph(f"Wall time per run (mean over its seeds): {', '.join(cost)}."),
    ]
