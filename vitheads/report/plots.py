"""The pipeline's plots: which figure is drawn from which result file, under plots/ (the figures stage).
The drawing itself is vitheads.report.figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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
    with atomic_path("plots/ablate", is_dir=True) as tmp:
        for mode in modes:
            grid = heads[heads["mode"] == mode].pivot(index="layer", columns="head", values="increase_pct").to_numpy()
            figures.head_heatmap(
                grid,
                f"MSE increase when one head is {mode}-ablated (%)",
                "MSE increase (%)",
                tmp / f"heatmap_{mode}.png",
            )
        per_layer = {
            m: [g["increase_pct"].to_numpy() for _, g in heads[heads["mode"] == m].groupby("layer")] for m in modes
        }
        figures.layer_boxes(per_layer, "MSE increase (%)", tmp / "layers.png")


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


def causal(c: dict) -> None:
    """Per head and variant: output change at the element's patches (share of the head's typical
    output norm); and the prediction change when its output is patched between the pair."""
    table = read_table("results/causal/heads.csv")
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
        )
        figures.head_panels(
            grids("sensitivity_elsewhere", variants),
            "Head output change at the pair's other patches (the broadcast: reported, not subtracted)",
            "||z_B - z_A|| / typical ||z||",
            tmp / "broadcast.png",
            c["min_response"],
        )
        if "kv_read" in table:
            figures.head_panels(
                grids("kv_read", patched),
                "Head output change when only its own keys and values at the changed tokens are swapped (reads)",
                "||z_patched - z|| / typical ||z||",
                tmp / "reads.png",
                c["min_response"],
            )
        if patched:
            figures.head_panels(
                grids("patch_prediction_change", patched),
                "Prediction change when the head's output is patched between the pair (both ways)",
                "mean |change| (z units, sd of the target)",
                tmp / "patching.png",
                c["min_prediction_change"],
            )
        if "follow" in table:
            figures.head_panels(
                grids("follow", [v for v in variants if table.loc[table["variant"] == v, "follow"].notna().all()]),
                "Attention moved with the moved element (received view)",
                "follow score (2: all of a\nuniform head's mass moved)",
                tmp / "follow.png",
                c["min_follow"],
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
