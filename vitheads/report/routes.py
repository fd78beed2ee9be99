"""The route split's figure (plots/causal/routes.png): per element, its whole change and the routes it takes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vitheads.analysis.decomposition import ROUTES
from vitheads.paper import ELEMENT_EQUIVALENCE_Z
from vitheads.report.figures import seaborn_theme

SHOWN = ("whole", *ROUTES)


def routes_figure(table: pd.DataFrame, out: Path) -> None:
    """One panel per target, one row per element: the signed whole change and each route's share of it, with
    95% CIs over test images; one x-scale for all panels, linear inside the equivalence bound (shaded) and
    logarithmic beyond it, since elements' effects span three orders of magnitude."""
    paired = table[(table["baseline"] == "paired") & table["route"].isin(SHOWN)]
    variants = list(dict.fromkeys(paired["variant"]))
    targets = list(dict.fromkeys(paired["target"]))
    colours = dict(zip(SHOWN, sns.color_palette("colorblind", len(SHOWN))))
    with seaborn_theme(0.8):
        fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 0.45 * len(variants) + 1.6), sharey=True)
        axes = np.atleast_1d(axes)
        limit = max(np.abs(paired[["ci_low", "ci_high"]].to_numpy()).max(), 2 * ELEMENT_EQUIVALENCE_Z) * 1.05
        for ax, target in zip(axes, targets):
            route_panel(ax, paired[paired["target"] == target], variants, colours)
            ax.set_xscale("symlog", linthresh=ELEMENT_EQUIVALENCE_Z, linscale=0.5)
            ticks = [0.0] + [sign * 10.0**k for k in range(-2, 2) for sign in (-1, 1) if 10.0**k <= limit]
            ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
            ax.set(title=target, xlim=(-limit, limit), xlabel="mean change, B - A (z units)")
        axes[0].set_yticks(range(len(variants)), variants)
        axes[0].invert_yaxis()
        handles = legend_handles(colours)
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
        fig.suptitle(
            "Where each element's change enters the output: route split, signed (routes cancel), "
            "95% CI over test images\n"
            f"x linear within ±{ELEMENT_EQUIVALENCE_Z:.4f} z (shaded), logarithmic beyond"
        )
        fig.tight_layout(rect=(0, 0.08, 1, 0.92))
        fig.savefig(out, dpi=120)
        plt.close(fig)


def legend_handles(colours: dict) -> list:
    """A marker per route, and the shaded equivalence bound."""
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=r.replace("_", " ")) for r, c in colours.items()]
    bound = f"±{ELEMENT_EQUIVALENCE_Z:.4f} z: the equivalence bound (on mean |change|)"
    return handles + [plt.Rectangle((0, 0), 1, 1, color="0.85", label=bound)]


def route_panel(ax, rows: pd.DataFrame, variants: list[str], colours: dict) -> None:
    """One target: per element a point and CI for the whole and for each route, offset vertically."""
    ax.axvspan(-ELEMENT_EQUIVALENCE_Z, ELEMENT_EQUIVALENCE_Z, color="0.85", zorder=0)
    ax.axvline(0, color="0.4", lw=0.8)
    offsets = np.linspace(-0.3, 0.3, len(colours))
    for offset, (route, colour) in zip(offsets, colours.items()):
        r = rows[rows["route"] == route].set_index("variant").reindex(variants)
        y = np.arange(len(variants)) + offset
        err = np.abs(np.stack([r["mean"] - r["ci_low"], r["ci_high"] - r["mean"]]))
        ax.errorbar(r["mean"], y, xerr=err, fmt="o", ms=3, color=colour, lw=1, capsize=0)
