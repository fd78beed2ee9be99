"""The pipeline's plots: which figure is drawn from which result file, under plots/ (the figures stage).
The drawing itself is vitheads.report.figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads import artifacts, paper
from vitheads.analysis.causal import discoveries
from vitheads.analysis.tables import read_arrays, read_table
from vitheads.analysis.taxonomy import LABEL_COLOURS, LABELS
from vitheads.artifacts import read_json, read_study
from vitheads.data.dataset import load_split
from vitheads.data.regions import patch_fractions
from vitheads.names import CLASS_ID, TARGETS, UNITS, VIEW_TITLES, head_name, view_reaches_output
from vitheads.outputs import atomic_path
from vitheads.report import figures
from vitheads.report.routes import routes_figure
from vitheads.report.study_figures import interaction_figure, power_figure

N_SAMPLES = 4


def samples() -> None:
    test = load_split(artifacts.DATA, "test")
    shown = slice(0, min(N_SAMPLES, len(test.labels)))
    captions = [f"#{r.Image} {r.Chirp_Type}" for r in test.labels.iloc[shown].itertuples()]
    with atomic_path(artifacts.SAMPLES_PNG) as tmp:
        figures.samples(test.images[shown], None if test.masks is None else test.masks[shown], captions, tmp)


def predictions() -> None:
    table = read_table(artifacts.PREDICTIONS)
    fine = read_json(artifacts.metrics("finetune"))
    true, pred = table[[f"true_{t}" for t in TARGETS]].to_numpy(), table[[f"pred_{t}" for t in TARGETS]].to_numpy()
    with atomic_path(artifacts.PRED_VS_TRUE_PNG) as tmp:
        figures.pred_vs_true(
            pred, true, list(TARGETS), [UNITS[t] for t in TARGETS], [fine[t]["r2"] for t in TARGETS], tmp
        )


def ablation(heads: pd.DataFrame) -> None:
    """Per mode a heatmap of every head, all modes on one colour scale, and the layer means beside the paper's."""
    modes = list(dict.fromkeys(heads["mode"]))
    grid = lambda mode, column: (
        heads[heads["mode"] == mode].pivot(index="layer", columns="head", values=column).to_numpy()
    )
    top = figures.symmetric_top([grid(m, "increase_pct") for m in modes])
    with atomic_path(artifacts.ABLATE_PLOTS, is_dir=True) as tmp:
        for mode in modes:
            figures.head_heatmap(
                grid(mode, "increase_pct"),
                (grid(mode, "ci_low_pct") > 0) | (grid(mode, "ci_high_pct") < 0),
                f"MSE increase when one head is {mode}-ablated (%, test images of the {mode} sweep)",
                "MSE increase (%)",
                tmp / artifacts.heatmap_png(mode).name,
                top,
            )
        figures.layer_means(
            layer_means(heads, modes), PAPER_MARKS, "MSE increase (%, symlog)", tmp / artifacts.LAYERS_PNG.name
        )


PAPER_MARKS = [
    (paper.EARLY_LAYERS, paper.EARLY_MEAN_PCT, paper.EARLY_SD_PCT),
    ((paper.MIDDLE_LAYER, paper.MIDDLE_LAYER), paper.MIDDLE_MEAN_PCT, paper.MIDDLE_SD_PCT),
]


def layer_means(heads: pd.DataFrame, modes: list[str]) -> dict[str, dict]:
    """Per mode, each layer's mean increase with its CI over images, and every head's increase."""
    layers = read_table(artifacts.ABLATE_LAYERS)
    per_mode = {}
    for mode in modes:
        rows = layers[layers["mode"] == mode].sort_values("layer")
        per_mode[mode] = {
            "mean": rows["mean_pct"].to_numpy(),
            "low": rows["ci_low_pct"].to_numpy(),
            "high": rows["ci_high_pct"].to_numpy(),
            "heads": heads[heads["mode"] == mode][["layer", "increase_pct"]],
        }
    return per_mode


def plot_area(masks: np.ndarray, patch: int) -> np.ndarray:
    """[G, G] bool: patches that are mostly spectrogram (background or chirp pixels) on average."""
    shares = patch_fractions(np.asarray(masks), patch)  # [n, G, G, C]
    return shares[..., [CLASS_ID["background"], CLASS_ID["chirp"]]].sum(-1).mean(0) >= 0.5


def attention(heads: pd.DataFrame, p: dict) -> None:
    """Every view's grid and the overlays on one scale, in multiples of uniform attention."""
    maps, examples = read_arrays(artifacts.ATTENTION_MAPS), read_arrays(artifacts.ATTENTION_EXAMPLES)
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
    with atomic_path(artifacts.ATTENTION_PLOTS, is_dir=True) as tmp:
        for v, grid in grids.items():
            unread = (
                ""
                if view_reaches_output(v, p["model"]["pooling"])
                else f" (not read by the {p['model']['pooling']} readout)"
            )
            title = f"{VIEW_TITLES[v]}{unread}, mean over test images"
            figures.head_grid(grid, title, tmp / artifacts.grid_png(v).name, grid_norm, outline)
        names = [head_name(l + 1, h + 1) for l, h in chosen]
        title = (
            f"{VIEW_TITLES[view]}: the {len(chosen)} heads whose {p['classify']['importance_mode']} ablation hurts most"
        )
        figures.overlays(
            examples["images"][:k], example_maps, names, title, tmp / artifacts.OVERLAYS_PNG.name, example_norm
        )
        scores = read_arrays(artifacts.ATTENTION_SCORES)
        distance = (
            read_table(artifacts.ATTENTION_HEADS).pivot(index="layer", columns="head", values="distance").to_numpy()
        )
        figures.attention_distance(distance, float(scores["uniform_distance"]), tmp / artifacts.DISTANCE_PNG.name)


def taxonomy(view: str) -> None:
    labelled = read_table(artifacts.CLASSIFY_HEADS)
    grid = labelled.pivot(index="layer", columns="head", values="label").to_numpy()
    with atomic_path(artifacts.TAXONOMY_PNG) as tmp:
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


def measured(table: pd.DataFrame, column: str, every: bool = False) -> list[str]:
    """The variants with a value of `column` for some head (for every head with `every`)."""
    if column not in table:
        return []
    present = table[column].notna().groupby(table["variant"], sort=False)
    flags = present.all() if every else present.any()
    return list(flags[flags].index)


OUTPUT_CHANGE = "||z_B - z_A|| / typical ||z||"
CAUSAL_PANELS = (  # figure, column, title, colour-bar unit, threshold (causal param), test column, every head
    ("sensitivity", "sensitivity_element", "Head output change at the changed element's patches, mean over pairs",
     OUTPUT_CHANGE, "min_response", "sensitivity_element_p", False),
    ("broadcast", "sensitivity_elsewhere",
     "Head output change at the pair's other patches (the broadcast: reported, not subtracted)",
     OUTPUT_CHANGE, "min_response", None, False),
    ("reads", "kv_read",
     "Head output change when only its own keys and values at the changed tokens are swapped (reads)",
     "||z_patched - z|| / typical ||z||", "min_response", "kv_read_p", False),
    ("patching", "patch_prediction_change",
     "Prediction change when the head's output is patched between the pair (both ways; mean over targets; "
     "NaN: screened out by attribution patching)",
     "mean |change| (z units, sd of the target)", "min_prediction_change", None, False),
    ("follow", "follow", "Attention moved with the moved element (received view)",
     "follow score (2: all of a\nuniform head's mass moved)", "min_follow", "follow_p", True),
)  # fmt: skip


def causal(c: dict) -> None:
    """Per head and variant, one figure per measure of CAUSAL_PANELS over the variants that measured it, the
    heads its rule passes framed; the patching figure names each variant's whole-model effect."""
    table = read_table(artifacts.CAUSAL_HEADS)
    effects = read_json(artifacts.metrics("causal"))["model_effect"]
    fine = read_json(artifacts.metrics("finetune"))
    targets = [t for t, m in fine.items() if isinstance(m, dict) and "r2" in m]
    with atomic_path(artifacts.CAUSAL_PLOTS, is_dir=True) as tmp:
        for name, column, title, unit, threshold, test, every in CAUSAL_PANELS:
            variants = measured(table, column, every)
            if not variants:
                continue
            grids = {
                v: table[table["variant"] == v].pivot(index="layer", columns="head", values=column).to_numpy()
                for v in variants
            }
            extra = {"passing": passing(table, variants, test, c["fdr"])} if test else {}
            if name == "patching":
                extra["references"] = whole_model(effects, variants, targets)
            path = tmp / artifacts.causal_png(name).name
            figures.head_panels(grids, title, unit, path, c[threshold], **extra)
        if artifacts.CAUSAL_DECOMPOSITION.is_file():
            routes_figure(
                read_table(artifacts.CAUSAL_DECOMPOSITION), tmp / artifacts.causal_png(artifacts.ROUTES_FIGURE).name
            )


def claim_panel(claim: str, entry: dict, held_out: list[float]) -> dict:
    """One forest panel: each seed's estimate +- 1.96 se, the pooled estimate and the paper's mark. The
    difference claim is in percentage points, its own unit and scale."""
    seeds = [
        {"label": str(seed), "value": v, "low": v - 1.96 * se, "high": v + 1.96 * se}
        for seed, v, se in zip(entry["seeds"], entry["values"], entry["se"])
    ]
    if claim == "difference":
        title = f"layer {paper.MIDDLE_LAYER} - {paper.MIDDLE_OVER_EARLY:g} x layers 1-3"
        unit, mark = "difference of MSE increases (percentage points)", (paper.PAPER_DIFFERENCE, None)
    else:
        sd = {"early": paper.EARLY_SD_PCT, "middle": paper.MIDDLE_SD_PCT}[claim]
        title = {"early": "layers 1-3", "middle": f"layer {paper.MIDDLE_LAYER}"}[claim] + ", mean over heads"
        unit, mark = "MSE increase, mean ablation (%)", (paper.PAPER_FIGURES[claim], sd)
    return {
        "title": title,
        "unit": unit,
        "seeds": seeds,
        "pooled": entry["pooled"],
        "paper": mark,
        "held_out": held_out,
    }


def study_plots() -> None:
    """Forest plots of the estimates study's claims, a figure per model (plots/study/forest_<model>.png), the
    graded benchmark's power curves and the factorial's cell means (plots/study/{graded_power,
    factorial_interactions}.png)."""
    estimates, graded, factorial = (read_study(s) for s in ("estimates", "graded", "factorial"))
    with atomic_path(artifacts.STUDY_PLOTS, is_dir=True) as tmp:
        if graded and graded["summary"]:
            power_figure(graded, tmp / artifacts.GRADED_POWER.name)
        if factorial:
            interaction_figure(factorial, tmp / artifacts.FACTORIAL_INTERACTIONS.name)
        if not estimates:
            return
        summary = estimates["summary"]
        for stem in [s for s in ("conv", "patch") if s in summary]:
            held = summary[stem].get("held_out", {})
            panels = [
                claim_panel(claim, by_mode["mean"], held.get(claim, {}).get("values", []))
                for claim, by_mode in summary[stem]["claims"].items()
                if by_mode.get("mean")
            ]
            title = f"The paper's ablation claims over training runs ({stem} stem; seeds as rows)"
            figures.forest(panels, title, tmp / artifacts.forest_png(stem).name)


def draw_all(p: dict) -> None:
    """Every PNG under plots/ from the computing stages' tables and arrays."""
    heads = read_table(artifacts.ABLATE_HEADS)
    samples()
    predictions()
    ablation(heads)
    attention(heads, p)
    taxonomy(p["classify"]["view"])
    causal(p["causal"])
    study_plots()
