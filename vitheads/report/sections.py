"""The data of the report's sections: every number comes from the run's metrics and results files and the
committed studies; the paper's figures come from vitheads.paper, and each rule's wording from the rule's
module. The words and the layout are templates/report/*.md.j2."""

from __future__ import annotations

from typing import Any

from vitheads import artifacts, paper
from vitheads.analysis.tables import read_table
from vitheads.analysis.taxonomy import LABELS, RULE_SUMMARY
from vitheads.artifacts import read_json, read_study
from vitheads.names import CLS_NOTE, TARGETS, UNITS, VIEW_TITLES, VIEWS, view_reaches_output
from vitheads.report import explorer, studies
from vitheads.report.factorial import factorial_section
from vitheads.report.graded import graded_section, head_power
from vitheads.report.render import render
from vitheads.study.studies import FACTORIAL_ALL_ON


def figure_text(claim: str, f: paper.Figure) -> str:
    """A figure as the tables print it: a percentage, or a ratio for the ratio claim, with its CI."""
    if f.value is None:
        return "n/a"
    unit, sign = ("x", "") if claim == "ratio" else ("%", "+")
    ci = f" [{f.ci[0]:{sign}.3f}, {f.ci[1]:{sign}.3f}]" if f.ci else ""
    return f"{f.value:{sign}.3f}{unit}{ci}"


PAPER = {
    "early": {"mean": paper.EARLY_MEAN_PCT, "sd": paper.EARLY_SD_PCT},
    "middle": {"mean": paper.MIDDLE_MEAN_PCT, "sd": paper.MIDDLE_SD_PCT},
    "ratio": paper.MIDDLE_OVER_EARLY,
}


def replication(ab: dict, cl: dict, modes: list[str]) -> dict:
    """This run's claims: the paper's figure, the author's protocol emulated on our model, our ablations with
    CIs over test images, and the verdict of the primary mode (mean first)."""
    modes = sorted(modes, key=list(paper.PROTOCOLS).index)
    figures, head_types = paper.ablation_figures(ab), paper.head_type_figures(cl)
    totals = {"chirp_heads": cl["heads_layers_6_11"], "distractor_heads": cl["heads_layers_1_4"]}
    ablation = [
        {
            "claim": claim,
            "author": figure_text(claim.key, figures[claim.key][paper.AUTHOR]),
            "ours": [figure_text(claim.key, figures[claim.key][m]) for m in modes],
            "verdict": str(figures[claim.key][modes[0]].verdict),
        }
        for claim in paper.CLAIMS
        if claim.key in figures
    ]
    counts = [
        {
            "claim": c,
            "count": head_types[c.key].value,
            "total": totals[c.key],
            "verdict": str(head_types[c.key].verdict),
        }
        for c in paper.CLAIMS
        if c.key in head_types
    ]
    return {"modes": modes, "ablation": ablation, "counts": counts, "paper": PAPER, "author": ab.get(paper.AUTHOR)}


def seed_study(study: dict | None) -> dict | None:
    """The earlier seed study (study/replication.json): each claim per protocol, each model's seeds."""
    if study is None:
        return None
    rows = []
    for claim in paper.CLAIMS:
        rules = [("rules", "head-roles rules (label counts)")]
        for i, (proto, name) in enumerate(paper.PROTOCOLS.items() if claim.key in paper.FIGURE_KEYS else rules):
            cells = [
                m["ablation"][claim.key][proto] if proto != "rules" else m["head_types"][claim.key]
                for m in study["models"].values()
            ]
            rows.append(
                {
                    "claim": "" if i else claim.text,
                    "protocol": name,
                    "key": claim.key,
                    "cells": [(x, studies.verdict(x)) for x in cells],
                }
            )
    return {"file": artifacts.study("replication"), "study": study, "rows": rows, "targets": TARGETS}


def this_run(p: dict, ab: dict, cl: dict) -> dict:
    """The replication of the paper on this workspace's model."""
    modes = p["ablate"]["modes"]
    return {
        "depth": p["model"]["depth"],
        "middle_layer": paper.MIDDLE_LAYER,
        "has_middle": paper.FIGURE_KEYS["middle"] in ab[modes[0]],
        "replication": replication(ab, cl, modes),
        "verdict_rules": paper.VERDICT_RULES,
        "seed_study": seed_study(read_study("replication")),
    }


def run_summary(p: dict) -> dict:
    return {
        "on": [k for k, v in p["distortion"].items() if v],
        "generate": p["generate"],
        "seed": p["seed"],
        "model": p["model"],
        "method": p["finetune"]["method"],
    }


def accuracy(fine: dict) -> dict:
    return {
        "fine": fine,
        "train_seconds": read_json(artifacts.TIMINGS_FINETUNE)["train_seconds"],
        "targets": [(t, fine[t], UNITS[t]) for t in TARGETS],
        "figure": artifacts.PRED_VS_TRUE_PNG,
    }


def ablation(ab: dict, modes: list[str]) -> dict:
    """Each layer's mean increase over its heads (and sd) per mode, and the figures."""
    table = read_table(artifacts.ABLATE_LAYERS).pivot(index="layer", columns="mode", values=["mean_pct", "sd_pct"])
    layers = [
        (layer, [(table.loc[layer, ("mean_pct", m)], table.loc[layer, ("sd_pct", m)]) for m in modes])
        for layer in table.index
    ]
    return {
        "modes": modes,
        "ablate": ab,
        "layers": layers,
        "heatmaps": [(m, artifacts.heatmap_png(m)) for m in modes],
        "spread": artifacts.LAYERS_PNG,
    }


def attention(cl: dict, p: dict) -> dict:
    """The attention grids that exist, and the head roles: counts per layer band and per threshold moved."""
    pooling = p["model"]["pooling"]
    return {
        "cls_note": None if view_reaches_output("cls", pooling) else CLS_NOTE,
        "pooling": pooling,
        "grids": [(VIEW_TITLES[v], artifacts.grid_png(v)) for v in VIEWS if artifacts.grid_png(v).is_file()],
        "overlays": artifacts.OVERLAYS_PNG,
        "distance": artifacts.DISTANCE_PNG,
        "rules": RULE_SUMMARY.format(view=cl["view"], relabelled=cl["relabelled_by_causal_evidence"]),
        "labels": LABELS,
        "counts": cl["counts"],
        "sensitivity": read_table(artifacts.CLASSIFY_SENSITIVITY).to_dict("records"),
        "taxonomy": artifacts.TAXONOMY_PNG,
    }


def causal(cz: dict, c: dict, fine: dict, gen: dict) -> dict:
    """Per distractor: heads that respond, follow and matter, and the distractor's own effect, with CIs."""
    return {
        "cz": cz,
        "kinds": [k for k in ("text", "colorbar", "frame") if k in cz],
        "rules": explorer.causal_rules(c, cz),
        "cls_note": CLS_NOTE,
        "targets": TARGETS,
        "test_rmse": fine["test_mse"] ** 0.5,
        "chirp_area": gen["test_area_share"]["chirp"],
        "attribution_table": artifacts.CAUSAL_ATTRIBUTION,
        "figures": {n: artifacts.causal_png(n) for n in artifacts.CAUSAL_FIGURES if artifacts.causal_png(n).is_file()},
    }


def pooled_routes(study: dict | None, key: str, arm: str) -> dict:
    """A study summary's routes pooled over its runs (vitheads.study.summaries.pooled_routes, empty below two
    runs), with how many of the arm's runs have the route split."""
    study = study or {}
    runs = [r for r in study.get("runs", []) if r["arm"] == arm and "decomposition" in r["metrics"].get("causal", {})]
    return {"pooled": study.get("summary", {}).get(key) or {}, "runs": len(runs)}


def routes(cz: dict) -> dict:
    """Per element the claim its whole change earns and the routes it takes (vitheads.analysis.decomposition),
    and the frame's ruler test; nothing when the run predates the route split."""
    claims = cz.get("decomposition", {})
    figure = artifacts.causal_png(artifacts.ROUTES_FIGURE)
    return {
        "claims": claims,
        "targets": [t for t, v in next(iter(claims.values()), {}).items() if isinstance(v, dict)],
        "bound": paper.ELEMENT_EQUIVALENCE_Z,
        "ruler": cz.get("frame_ruler"),
        "table": artifacts.CAUSAL_DECOMPOSITION,
        "figure": figure if figure.is_file() else None,
        "cls_note": CLS_NOTE,
    }


def report_data(p: dict) -> dict[str, Any]:
    """Every section's data for templates/report/report.md.j2, from the run in the working directory."""
    fine, ab, cl, cz, gen = (
        read_json(artifacts.metrics(s)) for s in ("finetune", "ablate", "classify", "causal", "generate")
    )
    graded, factorial = read_study("graded"), read_study("factorial")
    power = head_power(graded) if p["model"]["stem"] == "conv" and not p["plant"]["cues"] else None  # its models
    return {
        "run": run_summary(p),
        "answer": studies.answer(read_study("estimates")),
        "planted": studies.planted("planted", read_study("planted")),
        "frame_band": studies.planted("frame-band", read_study("frame-band")),
        "graded": graded_section(graded, artifacts.GRADED_POWER),
        "factorial": factorial_section(factorial, artifacts.FACTORIAL_INTERACTIONS),
        "distortion": studies.distortion(read_study("distortion")),
        "this_run": this_run(p, ab, cl),
        "accuracy": accuracy(fine),
        "ablation": ablation(ab, p["ablate"]["modes"]),
        "attention": attention(cl, p),
        "causal": causal(cz, p["causal"], fine, gen) | {"power": power},
        "routes": routes(cz)
        | {
            "power": power,
            "over_runs": {
                "default model (the factorial's all-on cells)": pooled_routes(
                    factorial, "routes_all_on", FACTORIAL_ALL_ON
                ),
                "pure ViT (the routes study)": pooled_routes(read_study("routes"), "patch_routes", "patch"),
            },
        },
        "explorer_note": explorer.NOTE,
    }


def report_markdown(p: dict) -> str:
    return render("report.md.j2", **report_data(p))
