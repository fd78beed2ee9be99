"""The pipeline's plots: which figure is drawn from which result file, under plots/ (the figures stage).
The drawing itself is vitheads.report.figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vitheads import paper
from vitheads.analysis.causal import discoveries
from vitheads.analysis.tables import read_arrays, read_table
from vitheads.analysis.taxonomy import LABEL_COLOURS, LABELS
from vitheads.data.dataset import load_split
from vitheads.data.regions import patch_fractions
from vitheads.names import CLASS_ID, TARGETS, UNITS, VIEW_TITLES, head_name, view_reaches_output
from vitheads.outputs import atomic_path
from vitheads.report import figures

DATA = "data/generated"
N_SAMPLES = 4


def samples() -> None:
    test = load_split(DATA, "test")
    shown = slice(0, min(N_SAMPLES, len(test.labels)))
    captions = [f"#{r.Image} {r.Chirp_Type}" for r in test.labels.iloc[shown].itertuples()]
    with atomic_path("plots/generate/samples.png") as tmp:
        figures.samples(test.images[shown], None if test.masks is None else test.masks[shown], captions, tmp)


def predictions() -> None:
    table = read_table("results/finetune/predictions.csv")
    fine = json.loads(Path("metrics/finetune.json").read_text())
    true, pred = table[[f"true_{t}" for t in TARGETS]].to_numpy(), table[[f"pred_{t}" for t in TARGETS]].to_numpy()
    with atomic_path("plots/finetune/pred_vs_true.png") as tmp:
        figures.pred_vs_true(
            pred, true, list(TARGETS), [UNITS[t] for t in TARGETS], [fine[t]["r2"] for t in TARGETS], tmp
        )


def ablation(heads: pd.DataFrame) -> None:
    modes = list(dict.fromkeys(heads["mode"]))
    layers = read_table("results/ablate/layers.csv")
    with atomic_path("plots/ablate", is_dir=True) as tmp:
        for mode in modes:
            grid = lambda column, mode=mode: (
                heads[heads["mode"] == mode].pivot(index="layer", columns="head", values=column).to_numpy()
            )
            significant = (grid("ci_low_pct") > 0) | (grid("ci_high_pct") < 0)
            figures.head_heatmap(
                grid("increase_pct"),
                significant,
                f"MSE increase when one head is {mode}-ablated (%, test images of the {mode} sweep)",
                "MSE increase (%)",
                tmp / f"heatmap_{mode}.png",
            )
        per_mode = {}
        for mode in modes:
            rows = layers[layers["mode"] == mode].sort_values("layer")
            per_mode[mode] = {
                "mean": rows["mean_pct"].to_numpy(),
                "low": rows["ci_low_pct"].to_numpy(),
                "high": rows["ci_high_pct"].to_numpy(),
                "heads": [g["increase_pct"].to_numpy() for _, g in heads[heads["mode"] == mode].groupby("layer")],
            }
        marks = [
            (paper.EARLY_LAYERS, paper.EARLY_MEAN_PCT, paper.EARLY_SD_PCT),
            ((paper.MIDDLE_LAYER, paper.MIDDLE_LAYER), paper.MIDDLE_MEAN_PCT, paper.MIDDLE_SD_PCT),
        ]
        figures.layer_means(per_mode, marks, "MSE increase (%, symlog)", tmp / "layers.png")


def plot_area(masks: np.ndarray, patch: int) -> np.ndarray:
    """[G, G] bool: patches that are mostly spectrogram (background or chirp pixels) on average."""
    shares = patch_fractions(np.asarray(masks), patch)  # [n, G, G, C]
    return shares[..., [CLASS_ID["background"], CLASS_ID["chirp"]]].sum(-1).mean(0) >= 0.5


def attention(heads: pd.DataFrame, p: dict) -> None:
    """Every view's grid and the overlays on one scale, in multiples of uniform attention."""
    maps, examples = read_arrays("results/attention/maps.npz"), read_arrays("results/attention/examples.npz")
    patches = maps["received"].shape[-1] * maps["received"].shape[-2]
    ranked = heads[heads["mode"] == p["classify"]["importance_mode"]].nlargest(
        p["figures"]["overlay_heads"], "increase_pct"
    )
    chosen = [(int(r.layer) - 1, int(r.head) - 1) for r in ranked.itertuples()]
    view, k = p["classify"]["view"], p["figures"]["overlay_images"]
    example_maps = examples[view][:k][:, [l for l, _ in chosen], [h for _, h in chosen]] * patches
    grids = {v: m * patches for v, m in maps.items()}
    grid_norm = figures.uniform_multiples_norm(max(float(g.max()) for g in grids.values()))  # fits the mean maps
    example_norm = figures.uniform_multiples_norm(float(example_maps.max()))  # fits the single images' maps
    outline = plot_area(examples["masks"], int(p["model"]["patch_size"])) if "masks" in examples else None
    with atomic_path("plots/attention", is_dir=True) as tmp:
        for v, grid in grids.items():
            unread = (
                ""
                if view_reaches_output(v, p["model"]["pooling"])
                else f" (not read by the {p['model']['pooling']} readout)"
            )
            title = f"{VIEW_TITLES[v]}{unread}, mean over test images"
            figures.head_grid(grid, title, tmp / f"grid_{v}.png", grid_norm, outline)
        names = [head_name(l + 1, h + 1) for l, h in chosen]
        title = (
            f"{VIEW_TITLES[view]}: the {len(chosen)} heads whose {p['classify']['importance_mode']} ablation hurts most"
        )
        figures.overlays(examples["images"][:k], example_maps, names, title, tmp / "overlays.png", example_norm)
        scores = read_arrays("results/attention/scores.npz")
        distance = (
            read_table("results/attention/heads.csv").pivot(index="layer", columns="head", values="distance").to_numpy()
        )
        figures.attention_distance(distance, float(scores["uniform_distance"]), tmp / "distance.png")


def taxonomy(view: str) -> None:
    labelled = read_table("results/classify/heads.csv")
    grid = labelled.pivot(index="layer", columns="head", values="label").to_numpy()
    with atomic_path("plots/classify/taxonomy.png") as tmp:
        title = (
            f"Head roles: attention in the {view} view (patch-level enrichment vs shuffle null), "
            "then causal evidence (detector-*)"
        )
        figures.label_grid(grid, LABELS, LABEL_COLOURS, title, tmp)


def passing(table: pd.DataFrame, variants: list[str], column: str, fdr: float) -> dict[str, np.ndarray]:
    """Per variant, [L, H] bool: the heads whose test on `column` passes Benjamini-Hochberg within the panel."""
    indexed = table.set_index(["variant", "layer", "head"])
    out = {}
    for v in variants:
        layers, heads = indexed.loc[v].index.get_level_values(0).max(), indexed.loc[v].index.get_level_values(1).max()
        out[v] = discoveries(indexed, [v], [column], fdr).reshape(layers, heads)
    return out


def whole_model(effects: dict, variants: list[str], targets: list[str]) -> dict[str, float]:
    """Each variant's whole-model mean |prediction change| averaged over the targets (z units)."""
    return {v: float(np.mean([effects[v][f"{t}_abs_change"] for t in targets])) for v in variants if v in effects}


def causal(c: dict) -> None:
    """Per head and variant: output change at the element's patches (share of the head's typical
    output norm); and the prediction change when its output is patched between the pair."""
    table = read_table("results/causal/heads.csv")
    effects = json.loads(Path("metrics/causal.json").read_text())["model_effect"]
    fine = json.loads(Path("metrics/finetune.json").read_text())
    targets = [t for t, m in fine.items() if isinstance(m, dict) and "r2" in m]
    grids = lambda column, variants: {
        v: table[table["variant"] == v].pivot(index="layer", columns="head", values=column).to_numpy() for v in variants
    }
    variants = list(dict.fromkeys(table["variant"]))
    patched = (
        [v for v in variants if table.loc[table["variant"] == v, "patch_prediction_change"].notna().any()]
        if "patch_prediction_change" in table
        else []
    )
    with atomic_path("plots/causal", is_dir=True) as tmp:
        figures.head_panels(
            grids("sensitivity_element", variants),
            "Head output change at the changed element's patches, mean over pairs",
            "||z_B - z_A|| / typical ||z||",
            tmp / "sensitivity.png",
            c["min_response"],
            passing=passing(table, variants, "sensitivity_element_p", c["fdr"]),
        )
        figures.head_panels(
            grids("sensitivity_elsewhere", variants),
            "Head output change at the pair's other patches (the broadcast: reported, not subtracted)",
            "||z_B - z_A|| / typical ||z||",
            tmp / "broadcast.png",
            c["min_response"],
        )
        read = [v for v in variants if "kv_read" in table and table.loc[table["variant"] == v, "kv_read"].notna().any()]
        if read:
            figures.head_panels(
                grids("kv_read", read),
                "Head output change when only its own keys and values at the changed tokens are swapped (reads)",
                "||z_patched - z|| / typical ||z||",
                tmp / "reads.png",
                c["min_response"],
                passing=passing(table, read, "kv_read_p", c["fdr"]),
            )
        if patched:
            figures.head_panels(
                grids("patch_prediction_change", patched),
                "Prediction change when the head's output is patched between the pair (both ways; mean over targets; "
                "NaN: screened out by attribution patching)",
                "mean |change| (z units, sd of the target)",
                tmp / "patching.png",
                c["min_prediction_change"],
                references=whole_model(effects, patched, targets),
            )
        followed = [
            v for v in variants if "follow" in table and table.loc[table["variant"] == v, "follow"].notna().all()
        ]
        if followed:
            figures.head_panels(
                grids("follow", followed),
                "Attention moved with the moved element (received view)",
                "follow score (2: all of a\nuniform head's mass moved)",
                tmp / "follow.png",
                c["min_follow"],
                passing=passing(table, followed, "follow_p", c["fdr"]),
            )


def study_plots() -> None:
    """Forest plots of the estimates study's claims, a figure per model (plots/study/forest_<model>.png)."""
    path = Path("study/estimates.json")
    with atomic_path("plots/study", is_dir=True) as tmp:
        if not path.is_file():
            return
        summary = json.loads(path.read_text())["summary"]
        for stem in ("conv", "patch"):
            if stem not in summary:
                continue
            panels = []
            for claim, by_mode in summary[stem]["claims"].items():
                entry = by_mode.get("mean")
                if not entry:
                    continue
                seeds = [
                    {"label": str(seed), "value": v, "low": v - 1.96 * se, "high": v + 1.96 * se}
                    for seed, v, se in zip(entry["seeds"], entry["values"], entry["se"])
                ]
                paper_mark = (
                    (paper.PAPER_DIFFERENCE, None)
                    if claim == "difference"
                    else (
                        paper.PAPER_FIGURES[claim],
                        {"early": paper.EARLY_SD_PCT, "middle": paper.MIDDLE_SD_PCT}[claim],
                    )
                )
                title = {
                    "early": "layers 1-3, mean over heads",
                    "middle": f"layer {paper.MIDDLE_LAYER}, mean over heads",
                    "difference": f"layer {paper.MIDDLE_LAYER} - {paper.MIDDLE_OVER_EARLY:g} x layers 1-3",
                }[claim]
                panels.append(
                    {
                        "title": title,
                        "unit": "MSE increase, mean ablation (%)",
                        "seeds": seeds,
                        "pooled": entry["pooled"],
                        "paper": paper_mark,
                        "held_out": summary[stem].get("held_out", {}).get(claim, {}).get("values", []),
                    }
                )
            figures.forest(
                panels,
                f"The paper's ablation claims over training runs ({stem} stem; seeds as rows)",
                tmp / f"forest_{stem}.png",
            )


def draw_all(p: dict) -> None:
    """Every PNG under plots/ from the computing stages' tables and arrays."""
    heads = read_table("results/ablate/heads.csv")
    samples()
    predictions()
    ablation(heads)
    attention(heads, p)
    taxonomy(p["classify"]["view"])
    causal(p["causal"])
    study_plots()
