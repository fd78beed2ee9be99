"""Direct attribution tables: each head's exact contribution to each target through the flatten
readout, per region of the image (vitheads.interp.attribution computes it)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from vitheads.analysis.stats import mean_ci
from vitheads.data.regions import PIXEL_REGIONS
from vitheads.names import TARGETS, head_name


def attribution_table(values: np.ndarray, weights: np.ndarray, targets: tuple[str, ...] = TARGETS) -> pd.DataFrame:
    """One row per head, target and region of values [n, L, H, T, R]: mean contribution with its 95% CI
    over images, and mean |contribution|."""
    mean, low, high = mean_ci(values, weights)
    mean_abs = np.abs(values).mean(0)
    layers, heads = values.shape[1:3]
    return pd.DataFrame(
        [
            {
                "layer": l + 1,
                "head": h + 1,
                "target": t,
                "region": r,
                "contribution": mean[l, h, i, j],
                "ci_low": low[l, h, i, j],
                "ci_high": high[l, h, i, j],
                "mean_abs": mean_abs[l, h, i, j],
            }
            for l, h, (i, t), (j, r) in itertools.product(
                range(layers), range(heads), enumerate(targets), enumerate(PIXEL_REGIONS)
            )
        ]
    )


def attribution_summary(table: pd.DataFrame, gap: float) -> dict:
    """metrics/causal.json's direct_attribution: the decomposition's largest gap, the share of the heads'
    |contribution| written at chirp pixels per target, and the heads writing most from the chirp."""
    chirp = table[table["region"] == "chirp"]
    return {
        "max_abs_gap_parts_vs_prediction": round(gap, 7),
        "chirp_share_of_heads_abs_contribution": {
            t: round(
                float(chirp[chirp["target"] == t]["mean_abs"].sum() / table[table["target"] == t]["mean_abs"].sum()), 4
            )
            for t in dict.fromkeys(table["target"])
        },
        "top_chirp_writers": {
            t: {
                head_name(r.layer, r.head): round(float(r.mean_abs), 4)
                for r in chirp[chirp["target"] == t].nlargest(3, "mean_abs").itertuples()
            }
            for t in dict.fromkeys(table["target"])
        },
    }
