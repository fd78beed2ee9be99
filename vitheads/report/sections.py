"""The report's sections: every number comes from the run's metrics and results files and the committed
seed study; the paper's figures come from vitheads.paper, and each rule's wording from the rule's module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vitheads import paper
from vitheads.analysis.causal import rule_text
from vitheads.analysis.tables import read_arrays, read_table
from vitheads.analysis.taxonomy import LABELS, RULE_SUMMARY
from vitheads.names import CLS_NOTE, TARGETS, UNITS, VIEW_TITLES, VIEWS, view_reaches_output
from vitheads.report.blocks import Heading, Image, Interactive, Paragraph, Table, fmt
from vitheads.report.explorer import explorer_html, payload
from vitheads.report.studies import answer_section, distortion_section, planted_section, read_study

TEMPLATES = Path("templates")
STUDY = Path("study/replication.json")
TITLE = "vitheads: attention heads of a ViT on distorted spectrograms"


def figure_text(claim: str, f: paper.Figure) -> str:
    """A figure as the tables print it: a percentage, or a ratio for the ratio claim, with its CI."""
    if f.value is None:
        return "n/a"
    unit, sign = ("x", "") if claim == "ratio" else ("%", "+")
    ci = f" [{f.ci[0]:{sign}.3f}, {f.ci[1]:{sign}.3f}]" if f.ci else ""
    return f"{f.value:{sign}.3f}{unit}{ci}"


PAPER_FIGURE_TEXT = {
    "early": f"+{paper.EARLY_MEAN_PCT}% (sd {paper.EARLY_SD_PCT}% over heads)",
    "middle": f"+{paper.MIDDLE_MEAN_PCT}% (sd {paper.MIDDLE_SD_PCT}% over heads)",
    "ratio": f"about {paper.MIDDLE_OVER_EARLY:g}x",
}


def replication_table(ablate: dict[str, Any], classify: dict[str, Any], modes: list[str]) -> Table:
    """This run: each claim with the paper's figure (its protocol named), the author's protocol emulated on
    our model, our ablations with CIs over test images, and the verdict of the primary mode (mean first)."""
    modes = sorted(modes, key=list(paper.PROTOCOLS).index)
    figures = paper.ablation_figures(ablate)
    rows = [
        [claim.text, PAPER_FIGURE_TEXT[claim.key], figure_text(claim.key, figures[claim.key][paper.AUTHOR])]
        + [figure_text(claim.key, figures[claim.key][m]) for m in modes]
        + [str(figures[claim.key][modes[0]].verdict)]
        for claim in paper.CLAIMS
        if claim.key in figures
    ]
    head_types = paper.head_type_figures(classify)
    totals = {"chirp_heads": classify["heads_layers_6_11"], "distractor_heads": classify["heads_layers_1_4"]}
    rows += [
        [claim.text, "judged by eye", "n/a"]
        + [f"{head_types[claim.key].value} of {totals[claim.key]} heads (head-roles rules)"]
        + ["" for _ in modes[1:]]
        + [str(head_types[claim.key].verdict)]
        for claim in paper.CLAIMS
        if claim.key in head_types
    ]
    author = ablate.get(paper.AUTHOR)
    emulated = f"{author['images']} test images, one pass" if author else "not run: ablate.author_protocol is false"
    header = ["Claim (paper)", "Paper (author's code)", f"Author's code emulated on our model ({emulated})"]
    return Table(
        header + [f"Ours, {m} ablation [95% CI over test images]" for m in modes] + [f"Verdict ({modes[0]} ablation)"],
        rows,
    )


def spread_text(s: dict[str, Any], claim: str) -> str:
    """Each seed's figure, then mean and sd over the seeds (head counts: whole numbers)."""
    if s["mean"] is None:
        return "n/a"
    counts = claim in ("chirp_heads", "distractor_heads")
    unit, digits = ("x", 2) if claim == "ratio" else ("", 0) if counts else ("%", 3)
    each = ", ".join("n/a" if v is None else f"{v:.{digits}f}" for v in s["values"])
    digits = max(digits, 1)
    sd = "" if s["sd"] is None else f", sd {s['sd']:.{digits}f}"
    return f"{each}{' heads' if counts else ''} (mean {s['mean']:.{digits}f}{unit}{sd})"


MODEL_NAMES = {"conv": "default (conv stem)", "patch": "pure ViT (patch stem)"}


def study_table(study: dict[str, Any]) -> Table:
    """The claims across training runs: per model, each seed's figure, the mean and sd over seeds,
    and a verdict only where the seeds agree."""
    models = study["models"]
    rows = []
    for claim in paper.CLAIMS:
        protocols = (
            paper.PROTOCOLS.items()
            if claim.key in paper.FIGURE_KEYS
            else [("rules", "head-roles rules (label counts)")]
        )
        for i, (proto, proto_name) in enumerate(protocols):
            cells = []
            for m in models.values():
                s = m["ablation"][claim.key][proto] if proto != "rules" else m["head_types"][claim.key]
                cells += [spread_text(s, claim.key), str(paper.Verdict(**s["verdict"]))]
            rows.append([claim.text if i == 0 else "", proto_name] + cells)
    header = ["Claim (paper)", "Protocol"]
    for stem, m in models.items():
        seeds = ", ".join(str(s) for s in m["seeds"])
        header += [f"{MODEL_NAMES.get(stem, stem)}: seeds {seeds}", "verdict across seeds"]
    return Table(header, rows)


def accuracy_across_seeds(study: dict[str, Any], targets: list[str]) -> str:
    parts = [
        f"{MODEL_NAMES.get(stem, stem)}: "
        + " / ".join(f"{m['r2'][t]['mean']:.3f} (sd {m['r2'][t]['sd']:.3f})" for t in targets)
        for stem, m in study["models"].items()
    ]
    return "Test R² per target (" + " / ".join(targets) + "), mean and sd over seeds: " + "; ".join(parts) + "."


def read_metrics(stage: str) -> dict:
    return json.loads(Path(f"metrics/{stage}.json").read_text())


def run_summary(p: dict) -> list:
    d, m, f = p["distortion"], p["model"], p["finetune"]
    on = ", ".join(k for k, v in d.items() if v) or "none (bare spectrogram)"
    return [
        Paragraph(
            f"Distortions on: {on}. Data: {p['generate']['n_train']} train and {p['generate']['n_test']} test images "
            f"at {m['image_size']} px, seed {p['seed']}."
        ),
        Paragraph(
            f"Model: timm ViT, {m['depth']} layers x {m['num_heads']} heads, dim {m['embed_dim']}, patch "
            f"{m['patch_size']} ({m['stem']} stem), {m['pooling']} readout, init: {m['init']}, {f['method']} "
            "fine-tuning."
        ),
    ]


def accuracy(fine: dict, timings: dict) -> list:
    rows = [
        [t, fmt(fine[t]["r2"]), fmt(fine[t]["pearson_r"]), f"{fine[t][f'mae_{UNITS[t]}']:.2f} {UNITS[t]}"]
        for t in TARGETS
    ]
    return [
        Heading("Model accuracy (test split)"),
        Paragraph(
            f"Test MSE on z-scored targets: {fine['test_mse']:.4f} ({fine['test_images']} images, "
            f"{fine['epochs_run']} epochs, {timings['train_seconds']:.0f} s of training)."
        ),
        Table(["Target", "R²", "Pearson r", "MAE"], rows),
        Image(Path("plots/finetune/pred_vs_true.png"), "Predicted vs true, physical units"),
    ]


def ablation(ab: dict, modes: list[str]) -> list:
    layers = read_table("results/ablate/layers.csv")
    table = layers.pivot(index="layer", columns="mode", values=["mean_pct", "sd_pct"])
    rows = [
        [str(l)] + [f"{table.loc[l, ('mean_pct', m)]:+.3f}% (sd {table.loc[l, ('sd_pct', m)]:.3f}%)" for m in modes]
        for l in table.index
    ]
    blocks = [
        Heading("Head ablation"),
        Paragraph(
            "Baseline test MSE "
            + "; ".join(f"{ab[m]['baseline_mse']:.4f} on the {ab[m]['images']} images of the {m} sweep" for m in modes)
            + ". Each head's output is replaced before the output projection (zero, or its mean per token "
            "position); the table gives "
            "the MSE increase averaged over the layer's heads."
        ),
        Table(["Layer"] + [f"{m} ablation" for m in modes], rows),
    ]
    blocks += [Image(Path(f"plots/ablate/heatmap_{m}.png"), f"MSE increase per head, {m} ablation") for m in modes]
    return blocks + [Image(Path("plots/ablate/layers.png"), "Spread of the heads' MSE increase per layer")]


def attention_and_taxonomy(cl: dict, p: dict) -> list:
    rows = [[band] + [str(counts[label]) for label in LABELS] for band, counts in cl["counts"].items()]
    grid = read_table("results/classify/sensitivity.csv")
    sens = [
        [f"{r['threshold']} = {r['value']:g}" + (" (default)" if r["is_default"] else "")] + [str(r[l]) for l in LABELS]
        for r in grid.to_dict("records")
    ]
    pooling = p["model"]["pooling"]
    cls_note = (
        ""
        if view_reaches_output("cls", pooling)
        else (
            f" {CLS_NOTE} So with the {pooling} readout the CLS view is shown for comparison only and cannot "
            "be labelled "
            "(params refuse classify.view: cls)."
        )
    )
    grids = [
        Image(Path(f"plots/attention/grid_{v}.png"), f"{VIEW_TITLES[v]}, per head, in multiples of uniform attention")
        for v in VIEWS
        if Path(f"plots/attention/grid_{v}.png").is_file()
    ]
    return [
        Heading("Attention"),
        Paragraph(
            "All maps share one colour scale in multiples of uniform attention (1 = every patch equal); "
            "each panel prints its maximum." + cls_note
        ),
        *grids,
        Image(Path("plots/attention/overlays.png"), "Example test images under the heads whose ablation hurts most"),
        Image(Path("plots/attention/distance.png"), "Mean attention distance per head by layer"),
        Heading("Head roles"),
        Paragraph(RULE_SUMMARY.format(view=cl["view"], relabelled=cl["relabelled_by_causal_evidence"])),
        Table(["Layers"] + list(LABELS), rows),
        Paragraph(
            "Threshold sensitivity: the label counts with one threshold moved at a time, the others at their defaults."
        ),
        Table(["Threshold"] + list(LABELS), sens),
        Image(Path("plots/classify/taxonomy.png"), "Role of every head"),
    ]


MACHINE_NOTE = (
    "This run and the study's run of the same seed share data and params, and still need not agree: training amplifies "
    "float rounding, and CPU libraries round differently on machines of another instruction set (their kernels are "
    "chosen at run time), so a model trained on another machine is another draw from the distribution of training "
    "runs, and so are its head-level findings (on one such machine, chirp heads in layers 6-11: 1 against 14). Read "
    "head-level numbers as one training run's; the study's spread says how far another run may land."
)


def study_section(study: dict) -> list:
    runs = study["runs"]
    return [
        Heading("The earlier seed study (superseded by the estimates above)", 3),
        Paragraph(
            f"From {STUDY} (gathered {study['gathered']} by `{study['command']}`): {len(runs)} queued DVC experiments "
            f"on commit {runs[0]['baseline'][:7]}, default params but the seed and the stem. The spread is "
            f"{study['spread']}; "
            "the paper's sds are over the heads of one model. " + accuracy_across_seeds(study, list(TARGETS))
        ),
        study_table(study),
    ]


def count_text(summary: dict, key: str) -> str:
    return str(summary[key]) if key in summary else "not testable"


def effect_text(effect: dict, target: str) -> str:
    """Signed mean change [CI]; mean |change| [CI] (z units)."""
    low, high = effect[f"{target}_change_ci"]
    abs_low, abs_high = effect[f"{target}_abs_change_ci"]
    return (
        f"{effect[f'{target}_change']:+.4f} [{low:+.4f}, {high:+.4f}]; "
        f"abs {effect[f'{target}_abs_change']:.4f} [{abs_low:.4f}, {abs_high:.4f}]"
    )


def relevant_text(detail: dict) -> str:
    """Each task-relevant head's largest patching effect, each way and per target, with CIs."""
    if not detail:
        return "No head's patching changes predictions above the bar."
    ci = lambda v: f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"
    heads = [
        f"{h} ({d['variant']}): "
        + ", ".join(f"{k.removeprefix('change_')} {ci(v)}" for k, v in d.items() if k.startswith("change_"))
        for h, d in detail.items()
    ]
    return (
        "Task-relevant heads, each at the variant where patching moves predictions most: mean |change| (z) "
        "[95% CI over "
        "patched pairs] with the variant's head output in the original's pass, the other way, and per target: "
        + "; ".join(heads)
        + "."
    )


def causal_section(cz: dict, c: dict, test_mse: float, chirp_area: float) -> list:
    """Per distractor: heads that respond, follow and matter, and the distractor's own effect, with CIs."""
    kinds = [k for k in ("text", "colorbar", "frame") if k in cz]
    rows = [
        [
            k,
            ", ".join(cz[k]["response_variants"]) + f"; moved: {cz[k]['moved_variant'] or 'none'}",
            *(
                count_text(cz[k], f"heads_{label}")
                for label in ("responds", "reads", "follows", "changes_predictions", "reads_into_output")
            ),
            f"{cz[k].get('heads_detector', 0)} ({cz[k].get('detectors_task_irrelevant', 0)} task-irrelevant)",
        ]
        for k in kinds
    ]
    effects = [
        [
            v,
            e["distractor"],
            f"{e['mse_change_pct']:+.2f}% [{e['mse_change_pct_ci'][0]:+.2f}, {e['mse_change_pct_ci'][1]:+.2f}]",
        ]
        + [effect_text(e, t) for t in TARGETS]
        for v, e in cz["model_effect"].items()
    ]
    blocks = [
        Heading("Causal evidence: paired renders"),
        Paragraph(
            f"Each of the first {cz['images']} test images is rendered again with one plot element changed (its text, "
            "its colours, painted over with the background, or moved), everything else identical: the most pixels any "
            f"pair changes outside its element's masks is {cz['pixels_changed_outside_element']}. "
            + rule_text(c, cz["images"], cz["patch_images"])
            + " Counts of heads per label, after the correction. Patch tokens only: "
            + CLS_NOTE
        ),
        Table(
            [
                "Distractor",
                "Tested variants; moved",
                "Respond",
                "Read (keys and values)",
                "Follow",
                "Change predictions (output patched)",
                "Read into the output (keys and values patched)",
                "Detectors",
            ],
            rows,
        ),
        Paragraph(relevant_text(cz["task_relevant_detail"])),
        Paragraph(
            "Detectors with the follow bar moved (the other bars kept): "
            + "; ".join(
                f"{bar}x: " + ", ".join(f"{k} {n}" for k, n in counts.items())
                for bar, counts in cz["detectors_by_min_follow"].items()
            )
            + ". A verdict that changes within this range hangs on the bar, not on the data."
        ),
        Paragraph(
            "The distractor alone: the change of the model's MSE over these images, and the mean change and mean "
            "|change| of each prediction (z units: a target's sd), from member A to member B, 95% CIs over pairs. "
            f"Task-irrelevant means near zero (the model's test RMSE: {test_mse**0.5:.3f} z). In the *_moved "
            "variants neither "
            "member is the dataset image (a short title, a half-height colorbar, a two-sided frame): both are off the "
            "training distribution."
        ),
        Table(
            ["Variant", "Distractor", "MSE change"] + [f"{t}: mean change; mean abs change" for t in TARGETS], effects
        ),
    ]
    if isinstance(cz["direct_attribution"], dict):
        d = cz["direct_attribution"]
        blocks.append(
            Paragraph(
                "Direct attribution (final norm's scale frozen per image and token; the parts sum to the "
                "prediction within "
                f"{d['max_abs_gap_parts_vs_prediction']:.1e}): share of the heads' direct |contribution| "
                "written at chirp pixels "
                "(each patch's contribution split by its pixels' classes), per target, and in multiples of the chirp's "
                f"{chirp_area:.2%} share of the test images' pixels: "
                + ", ".join(
                    f"{t} {v:.1%} ({v / chirp_area:.1f}x)"
                    for t, v in d["chirp_share_of_heads_abs_contribution"].items()
                )
                + "; the heads writing most from chirp patches: "
                + "; ".join(
                    f"{t}: " + ", ".join(f"{h} {v:.4f}" for h, v in top.items())
                    for t, top in d["top_chirp_writers"].items()
                )
                + " (mean |contribution|, z units; per head, target and region in results/causal/attribution.csv)."
            )
        )
    blocks += [
        Image(Path(f"plots/causal/{name}.png"), caption)
        for name, caption in (
            ("sensitivity", "Head output change at the changed element's patches, per variant, one shared scale"),
            ("broadcast", "Head output change at the pair's other patches (the broadcast), one shared scale"),
            ("reads", "Head output change when only its keys and values at the element's tokens are swapped"),
            (
                "follow",
                "Attention moved with the moved element (received view), follow score (2: all of a uniform "
                "head's mass on the element moved), one shared scale",
            ),
            ("patching", "Prediction change when one head's output is patched between the pair, one shared scale"),
        )
        if Path(f"plots/causal/{name}.png").is_file()
    ]
    return blocks


def explorer(p: dict) -> list:
    """The interactive head explorer (HTML only): every head's maps on the example images, its region
    scores, its ablation effects and its causal evidence, read from results/."""
    data = payload(
        read_table("results/classify/heads.csv"),
        read_table("results/classify/regions.csv"),
        read_table("results/ablate/heads.csv"),
        read_table("results/causal/heads.csv"),
        read_arrays("results/attention/examples.npz"),
        p,
    )
    return [
        Heading("Head explorer"),
        Interactive(
            explorer_html(data, TEMPLATES),
            "The interactive head explorer is in report.html (open it in a browser; it works offline).",
        ),
    ]


def report_blocks(p: dict) -> list:
    """The whole report of the run in the working directory."""
    fine, ab, cl, cz, gen = (read_metrics(s) for s in ("finetune", "ablate", "classify", "causal", "generate"))
    modes = p["ablate"]["modes"]
    estimates = read_study("estimates")
    blocks = [
        Heading(TITLE, 1),
        *run_summary(p),
        *answer_section(estimates),
        *planted_section("planted", read_study("planted")),
        *planted_section("frame-band", read_study("frame-band")),
        *distortion_section(read_study("distortion")),
        Heading("This run: replication of arXiv 2503.18762"),
        Paragraph("Everything below is one training run's (this workspace's model). " + MACHINE_NOTE),
    ]
    if paper.FIGURE_KEYS["middle"] not in ab[modes[0]]:
        blocks.append(
            Paragraph(
                f"The model has {p['model']['depth']} layers: the paper's layer-{paper.MIDDLE_LAYER} "
                "comparisons do not apply."
            )
        )
    blocks += [
        Paragraph(
            "The paper's percentages come from the seed author's released code, which records each head's loss "
            "before zeroing one row of its layer's query, key and value weights (row = head index), never "
            "restores them (damage accumulates along the sweep), and compares z-scored predictions with raw "
            "labels (a huge baseline). The same steps emulated on our model stand beside our per-head ablations "
            "(mean ablation is the primary measure: zeroing a head puts its layer off-distribution). This run:"
        ),
        replication_table(ab, cl, modes),
        Paragraph(paper.VERDICT_RULES),
    ]
    if "last_head_increase_pct" in ab.get(paper.AUTHOR, {}):
        blocks.append(
            Paragraph(
                f"Under the emulated protocol the last head of the sweep, with every head's rows zeroed by then, "
                f"reads {ab[paper.AUTHOR]['last_head_increase_pct']:+.3f}% on a raw-label baseline MSE of "
                f"{ab[paper.AUTHOR]['baseline_raw_label_mse']:.0f}."
            )
        )
    if STUDY.is_file():
        blocks += study_section(json.loads(STUDY.read_text()))
    timings = json.loads(Path("timings/finetune.json").read_text())
    blocks += accuracy(fine, timings) + ablation(ab, modes) + attention_and_taxonomy(cl, p)
    chirp_area = gen["test_area_share"]["chirp"]
    return blocks + causal_section(cz, p["causal"], fine["test_mse"], chirp_area) + explorer(p)
