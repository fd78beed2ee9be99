"""Every static figure of the pipeline, drawn with matplotlib's object API (no pyplot state); seaborn draws the
statistical ones (head-grid heatmaps, per-seed forest plots, distributions over heads).

Only the figures stage imports this module: restyling a figure reruns figures and report, never
a computation.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.colors import ListedColormap, LogNorm, SymLogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from vitheads.names import CLASSES


def new_figure(width: float, height: float, dpi: int = 110) -> Figure:
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | Path) -> None:
    figure.savefig(path, format="png")


def seaborn_theme(font_scale: float):
    """seaborn's whitegrid theme for one figure only: sns.set_theme would change matplotlib's settings for the
    rest of the process, and the tests render plot images in the same process as the figures."""
    return matplotlib.rc_context(
        {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=font_scale)}
    )


def pred_vs_true(pred: np.ndarray, true: np.ndarray, names: list[str], units: list[str], r2: list[float], path) -> None:
    """One scatter per target in physical units, with the identity line and R^2."""
    figure = new_figure(3.3 * len(names), 3.4)
    for i, ax in enumerate(figure.subplots(1, len(names), squeeze=False)[0]):
        low, high = min(true[:, i].min(), pred[:, i].min()), max(true[:, i].max(), pred[:, i].max())
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
        ax.scatter(true[:, i], pred[:, i], s=4, alpha=0.5, edgecolors="none")
        ax.set_title(f"{names[i]}  R² = {r2[i]:.3f}", fontsize=9)
        ax.set_xlabel(f"true ({units[i]})", fontsize=8)
        ax.set_ylabel(f"predicted ({units[i]})", fontsize=8)
        ax.set_aspect("equal")
    save(figure, path)


def outline_cells(ax, cells: np.ndarray, colour: str = "black") -> None:
    """Frame the cells of a [layers, heads] bool grid drawn by sns.heatmap (cell (l, h) spans [h, h+1] x [l, l+1])."""
    boxes = [Rectangle((h, l), 1, 1) for l, h in np.argwhere(cells)]
    ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=colour, linewidth=1.2))


def head_frame(grid: np.ndarray) -> pd.DataFrame:
    """A [layers, heads] grid labelled 1..L and 1..H, as the paper numbers them."""
    return pd.DataFrame(grid, index=range(1, grid.shape[0] + 1), columns=range(1, grid.shape[1] + 1))


def symmetric_top(grids: list[np.ndarray]) -> float:
    """The largest |value| over the grids that share one colour scale."""
    return max(max(float(np.nanmax(np.abs(g))) for g in grids), 1e-9)


def symlog_ticks(top: float) -> list[float]:
    """Plain numbers for a symmetric log colour bar up to `top` (0.1, 0.3, 1, ... either side of 0)."""
    steps = [v for v in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if top / 30 <= v <= top]
    return [-v for v in reversed(steps)] + [0] + steps


def head_heatmap(values: np.ndarray, significant: np.ndarray, title: str, label: str, path, top: float) -> None:
    """Layers x heads of a signed effect on a symmetric log scale up to `top` (shared by the figures that
    compare; linear within a tenth of it, so one head cannot whiten every other cell), annotated, with the heads
    whose 95% CI excludes 0 framed."""
    layers, heads = values.shape
    norm = SymLogNorm(linthresh=max(top / 10, 1e-6), vmin=-top, vmax=top, base=10)
    figure = new_figure(0.55 * heads + 2.4, 0.42 * layers + 1.5)
    ax = figure.subplots()
    sns.heatmap(
        head_frame(values),
        ax=ax,
        cmap="RdBu_r",
        norm=norm,
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 5},  # seaborn picks black or white for each cell's contrast
        cbar_kws={
            "label": f"{label}\n(symlog, one scale for every mode; framed: 95% CI excludes 0)",
            "ticks": symlog_ticks(top),
            "format": "%g",
        },
    )
    outline_cells(ax, significant)
    ax.tick_params(labelsize=7, rotation=0)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    save(figure, path)


PAPER_COLOUR, POOLED_COLOUR, HELD_COLOUR = "#d62728", "#1f77b4", "#ff7f0e"


def layer_means(per_mode: dict[str, dict], paper_marks: list[tuple], ylabel: str, path) -> None:
    """Per mode, each layer's mean effect over its heads with the 95% CI of that mean over test images, the
    heads' spread as faint dots, and the paper's figures (mean and sd over heads) where it gives them."""
    figure = new_figure(4.4 * len(per_mode), 3.4)
    axes = figure.subplots(1, len(per_mode), squeeze=False, sharey=True)[0]  # one scale: modes compare
    top = max(float(np.abs(d["heads"]["increase_pct"]).max()) for d in per_mode.values())
    for ax, (mode, d) in zip(axes, per_mode.items()):
        layers = np.arange(1, len(d["mean"]) + 1)
        ax.set_yscale("symlog", linthresh=0.5)  # before the swarm, which lays its points out on this scale
        sns.swarmplot(data=d["heads"], x="layer", y="increase_pct", native_scale=True, ax=ax, size=2.5, color="#aaaaaa")
        ax.errorbar(
            layers,
            d["mean"],
            yerr=[d["mean"] - d["low"], d["high"] - d["mean"]],
            fmt="o",
            ms=3,
            lw=1,
            capsize=2,
            color="#1f77b4",
            zorder=3,
            label="layer mean, 95% CI over images",
        )
        x, values, sds = zip(*((np.mean(band) + 0.3, value, sd) for band, value, sd in paper_marks))
        ax.errorbar(x, values, yerr=sds, fmt="s", ms=4, color=PAPER_COLOUR, capsize=3, zorder=4, ls="none",
                    label="the paper (mean, sd over heads)")  # fmt: skip
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_yticks([t for t in symlog_ticks(top) if abs(t) >= 0.3 or t == 0])
        ax.yaxis.set_major_formatter("{x:g}")
        ax.set_xticks(layers, [str(l) for l in layers], fontsize=7)
        ax.set(xlabel="layer (grey: one head each)", ylabel=ylabel)
        ax.set_title(f"{mode} ablation", fontsize=9)
        ax.legend(fontsize=6, frameon=False)
    save(figure, path)


def forest_limits(panels: list[dict]) -> dict[str, tuple[float, float]]:
    """One x-range per unit: panels in the same unit share their scale, whatever each one's spread."""
    values: dict[str, list[float]] = {}
    for panel in panels:
        pooled, (value, sd) = panel["pooled"], panel["paper"]
        seen = [0.0, value - (sd or 0), value + (sd or 0), *pooled["ci"], *(pooled.get("prediction") or [])]
        seen += [s[k] for s in panel["seeds"] for k in ("low", "high")] + list(panel.get("held_out") or [])
        values.setdefault(panel["unit"], []).extend(seen)
    pad = {u: 0.05 * (max(v) - min(v)) for u, v in values.items()}
    return {u: (min(v) - pad[u], max(v) + pad[u]) for u, v in values.items()}


def forest_panel(ax, panel: dict, limits: tuple[float, float]) -> None:
    """Seeds as rows (each run's estimate, its interval), the pooled diamond under them and, where there is one,
    the prediction interval for a next run with the held-out runs on it."""
    seeds = pd.DataFrame(panel["seeds"]).assign(y=lambda t: np.arange(len(t), 0, -1))
    ax.hlines(seeds["y"], seeds["low"], seeds["high"], color="black", lw=1.5)
    sns.scatterplot(data=seeds, x="value", y="y", ax=ax, color="black", s=16, edgecolor="none", zorder=3)
    pooled, (value, sd) = panel["pooled"], panel["paper"]
    low, high = pooled["ci"]
    ax.fill([low, pooled["estimate"], high, pooled["estimate"]], [0, 0.25, 0, -0.25], color=POOLED_COLOUR)
    ticks, labels = [*seeds["y"], 0], [*seeds["label"], "pooled"]
    held = panel.get("held_out") or []
    if pooled.get("prediction") or held:
        ax.plot(pooled.get("prediction") or [], [-0.6] * len(pooled.get("prediction") or []), color=POOLED_COLOUR, lw=1)
        ax.plot(held, [-0.6] * len(held), "x", color=HELD_COLOUR, ms=7, mew=1.5)
        ticks, labels = [*ticks, -0.6], [*labels, "next run"]
    if sd:
        ax.axvspan(value - sd, value + sd, color=PAPER_COLOUR, alpha=0.15, lw=0)
    ax.axvline(value, color=PAPER_COLOUR, lw=1)
    ax.axvline(0, color="grey", lw=0.6, ls="--")
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(min(ticks) - 0.5, max(ticks) + 0.5)
    ax.set_xlim(*limits)
    ax.set_xlabel(panel["unit"], fontsize=8)
    ax.set_ylabel("")
    ax.set_title(panel["title"], fontsize=8, wrap=True)


def forest_legend(panels: list[dict]) -> list:
    """A legend entry for each mark the panels draw."""
    predicted = any(panel["pooled"].get("prediction") for panel in panels)
    held = any(panel.get("held_out") for panel in panels)
    spread = any(panel["paper"][1] for panel in panels)
    entries = [
        (True, Line2D([], [], color="black", marker="o", ms=3, label="one run: estimate +- 1.96 se over test images")),
        (True, Patch(color=POOLED_COLOUR, label="pooled: random effects, 95% CI (Hartung-Knapp)")),
        (predicted, Line2D([], [], color=POOLED_COLOUR, lw=1, label="prediction interval for a next run")),
        (
            held,
            Line2D([], [], color=HELD_COLOUR, marker="x", ls="none", label="held-out run (made after the interval)"),
        ),
        (True, Line2D([], [], color=PAPER_COLOUR, lw=1, label="the paper's value")),
        (spread, Patch(color=PAPER_COLOUR, alpha=0.15, label="the paper's sd over heads")),
    ]
    return [handle for shown, handle in entries if shown]


def forest(panels: list[dict], title: str, path) -> None:
    """A forest plot per claim, panels in one unit on one x-scale, the marks named in a legend."""
    figure = new_figure(4.0 * len(panels), 0.32 * max(len(panel["seeds"]) for panel in panels) + 2.8)
    limits = forest_limits(panels)
    for ax, panel in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        forest_panel(ax, panel, limits[panel["unit"]])
    figure.legend(handles=forest_legend(panels), loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    save(figure, path)


def multiples_colorbar(figure: Figure, image, norm: LogNorm, label: str, **where):
    """A colour bar in plain multiples of uniform attention (0.5, 1, 2, ...), not powers of ten."""
    ticks = [t for t in (1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16, 64) if norm.vmin <= t <= norm.vmax]
    bar = figure.colorbar(image, label=label, ticks=ticks, **where)
    bar.ax.set_yticklabels([f"{t:g}" if t >= 1 else f"1/{round(1 / t)}" for t in ticks])
    bar.ax.minorticks_off()
    return bar


def uniform_multiples_norm(vmax: float) -> LogNorm:
    """One log colour scale for every attention figure, in multiples of uniform attention: 1 sits
    in the middle of [1/vmax, vmax], so a flat map stays one mid colour and 30x stays distinct from 3x."""
    vmax = max(vmax, 2.0)
    return LogNorm(vmin=1 / vmax, vmax=vmax)


def mosaic(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """[L, H, G, G] -> one [L*(G+gap)-gap, H*(G+gap)-gap] array, panels separated by NaN (drawn white)."""
    layers, heads, g, _ = maps.shape
    out = np.full((layers * (g + gap) - gap, heads * (g + gap) - gap), np.nan)
    for l in range(layers):
        for h in range(heads):
            out[l * (g + gap) : l * (g + gap) + g, h * (g + gap) : h * (g + gap) + g] = maps[l, h]
    return out


def head_grid(maps: np.ndarray, title: str, path, norm: LogNorm, outline: np.ndarray | None = None) -> None:
    """Layers x heads small multiples of [G, G] maps in multiples of uniform attention (1 = uniform), all on
    one colour scale, drawn as one mosaic; each panel's maximum printed in its corner, and the patches of
    `outline` ([G, G] bool: the spectrogram's plot area) framed in every panel."""
    layers, heads, g, _ = maps.shape
    step = g + 1
    figure = new_figure(0.62 * heads + 1.6, 0.62 * layers + 1.0, dpi=110)
    ax = figure.subplots()
    cmap = colormaps["magma"].with_extremes(bad="white")
    image = ax.imshow(mosaic(maps), cmap=cmap, norm=norm, interpolation="nearest")
    if outline is not None and outline.any():
        rows, cols = np.flatnonzero(outline.any(1)), np.flatnonzero(outline.any(0))
        boxes = [
            Rectangle(
                (h * step + cols[0] - 0.5, l * step + rows[0] - 0.5), cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
            )
            for l in range(layers)
            for h in range(heads)
        ]
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor="#00bfff", linewidth=0.5))
    for l in range(layers):
        for h in range(heads):
            ax.text(h * step - 0.4, l * step - 0.4, f"{maps[l, h].max():.1f}", fontsize=4.5, va="top", color="white")
    ax.set_xticks([h * step + (g - 1) / 2 for h in range(heads)], [f"H{h + 1}" for h in range(heads)], fontsize=7)
    ax.set_yticks([l * step + (g - 1) / 2 for l in range(layers)], [f"L{l + 1}" for l in range(layers)], fontsize=7)
    ax.tick_params(length=0)
    label = "attention / uniform (log scale, 1 = uniform); corner: panel max"
    if outline is not None:
        label += "\nblue box: the spectrogram's plot area"
    multiples_colorbar(figure, image, norm, label, ax=ax, shrink=0.6)
    ax.set_title(title, fontsize=9)
    save(figure, path)


def overlays(images: np.ndarray, maps: np.ndarray, head_names: list[str], title: str, path, norm: LogNorm) -> None:
    """Example images (rows) under chosen heads' maps (columns), in multiples of uniform attention on
    one shared scale, each panel's maximum printed: a flat map stays one mid colour."""
    n, k = maps.shape[:2]
    size = images.shape[1]
    figure = new_figure(1.9 * (k + 1) + 0.8, 1.9 * n + 0.5, dpi=100)
    axes = figure.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=8)
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(images[i])
            image = ax.imshow(
                maps[i, j], cmap="magma", alpha=0.7, norm=norm, extent=(0, size, size, 0), interpolation="nearest"
            )
            ax.text(
                0.03, 0.97, f"max {maps[i, j].max():.1f}", transform=ax.transAxes, fontsize=6, va="top", color="white"
            )
            if i == 0:
                ax.set_title(head_names[j], fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    multiples_colorbar(figure, image, norm, "attention / uniform (log scale)", ax=axes, shrink=0.6)
    figure.suptitle(title, fontsize=9)
    save(figure, path)


def attention_distance(distance: np.ndarray, uniform: float, path) -> None:
    """Mean attention distance of every head by layer (Dosovitskiy et al. 2021, Fig. 7), in patches."""
    layers, heads = distance.shape
    figure = new_figure(5.0, 3.4)
    ax = figure.subplots()
    per_head = head_frame(distance).rename_axis(index="layer", columns="head").stack().rename("distance").reset_index()
    per_head["x"] = per_head["layer"] + (per_head["head"] - (heads + 1) / 2) * 0.6 / heads  # heads in order
    sns.scatterplot(data=per_head, x="x", y="distance", ax=ax, s=12, color="#1f77b4", alpha=0.7, edgecolor="none")
    ax.axhline(uniform, color="grey", lw=0.8, ls="--", label=f"uniform attention ({uniform:.2f})")
    ax.set_xticks(range(1, layers + 1))
    ax.set_ylim(0, None)
    ax.set_xlabel("layer (its heads 1 to H left to right)")
    ax.set_ylabel("mean attention distance (patches)")
    ax.set_title("Attention distance per head, mean over patch queries and test images", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    save(figure, path)


def label_grid(labels: np.ndarray, order: tuple[str, ...], colours: dict[str, str], title: str, path) -> None:
    """Layers x heads grid coloured by taxonomy label, with a legend."""
    layers, heads = labels.shape
    codes = head_frame(np.vectorize(order.index)(labels))
    figure = new_figure(0.5 * heads + 3.4, 0.4 * layers + 1.2)
    ax = figure.subplots()
    palette = ListedColormap([colours[o] for o in order])
    sns.heatmap(codes, ax=ax, cmap=palette, vmin=-0.5, vmax=len(order) - 0.5, cbar=False, square=True, linewidths=0.5)
    ax.tick_params(labelsize=7, rotation=0)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    ax.legend(
        handles=[Patch(color=colours[o], label=o) for o in order],
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
        fontsize=7,
        frameon=False,
    )
    save(figure, path)


CLASS_COLOURS = {
    "margin": "#ffffff",
    "background": "#d9d9d9",
    "chirp": "#e41a1c",
    "title": "#377eb8",
    "axis_labels": "#4daf4a",
    "tick_labels": "#984ea3",
    "colorbar": "#ff7f00",
    "colorbar_text": "#a65628",
    "frame": "#000000",
}


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    palette = np.array([to_rgb(CLASS_COLOURS[c]) for c in CLASSES])
    return (palette[mask] * 255).astype(np.uint8)


def samples(images: np.ndarray, masks: np.ndarray | None, captions: list[str], path) -> None:
    """Images above their colour-coded masks, with a class legend, to check alignment by eye.
    Without masks (ingested data) only the images."""
    n, rows = len(images), 1 if masks is None else 2
    figure = new_figure(2.2 * n, 2.45 * rows)
    axes = figure.subplots(rows, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], interpolation="nearest")
        axes[0, i].set_title(captions[i], fontsize=7)
        if masks is not None:
            axes[1, i].imshow(mask_to_rgb(masks[i]), interpolation="nearest")
            axes[1, i].imshow(images[i], interpolation="nearest", alpha=0.25)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    if masks is None:
        save(figure, path)
        return
    handles = [Patch(facecolor=CLASS_COLOURS[c], edgecolor="grey", label=c) for c in CLASSES]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(CLASSES) // 2 + 1, fontsize=7, frameon=False)
    save(figure, path)


def head_panels(
    grids: dict[str, np.ndarray],
    title: str,
    label: str,
    path,
    threshold: float,
    columns: int = 4,
    passing: dict[str, np.ndarray] | None = None,
    references: dict[str, float] | None = None,
) -> None:
    """One layers x heads heatmap per name on one shared linear colour scale, from 0 (or symmetric about 0 when
    a value is negative), so a variant that moves nothing stays dark instead of being stretched to look sharp;
    each panel's title gives its min and max (and its reference: the variant's whole-model effect), and the heads
    its rule passes are framed. The scale reaches at least the rule's threshold (marked on the colour bar; a tenth
    beyond it, so the mark shows), so values far below it stay pale."""
    vmax = max(1.1 * threshold, symmetric_top(list(grids.values())))
    signed = any(float(np.nanmin(g)) < 0 for g in grids.values())
    cmap, vmin = ("RdBu_r", -vmax) if signed else ("viridis", 0)
    rows = -(-len(grids) // columns)
    figure = new_figure(max(6.5, 2.6 * min(columns, len(grids)) + 1.8), 2.6 * rows + 0.9)  # room for the texts
    axes = figure.subplots(rows, min(columns, len(grids)), squeeze=False).ravel()
    for ax, (name, grid) in zip(axes, grids.items()):
        sns.heatmap(head_frame(grid), ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar=False, square=True)
        ax.spines[:].set_visible(True)  # the panel's edge, where NaN (not measured) leaves cells blank
        reference = f"; whole model {references[name]:.3g}" if references and name in references else ""
        ax.set_title(f"{name}\nmin {np.nanmin(grid):.3g}, max {np.nanmax(grid):.3g}{reference}", fontsize=7)
        if passing and name in passing:
            outline_cells(ax, passing[name], colour="red")
        ax.set_xlabel("head", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        ax.tick_params(labelsize=5, rotation=0)
    for ax in axes[len(grids) :]:
        ax.set_axis_off()
    bar = figure.colorbar(axes[0].collections[0], ax=list(axes), shrink=0.8)
    bar.set_label(
        f"{label}\n(one scale for every panel)\nred line: the rule's threshold\nred frames: heads it passes", fontsize=7
    )
    bar.ax.axhline(threshold, color="red", lw=1.5)
    figure.suptitle(title, fontsize=8, wrap=True)
    save(figure, path)
