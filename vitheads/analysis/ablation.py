"""Ablation tables: each head's relative MSE increase with paired bootstrap CIs, the per-layer summary,
and the paper's figures measured under our protocol and under the seed author's (emulated)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads import paper
from vitheads.analysis.stats import bootstrap_se, bootstrap_weights, percentile_interval
from vitheads.names import TARGETS, head_name

TOP_HEADS = 5  # the most damaging heads named in metrics/ablate.json


def per_target_ci(baseline: np.ndarray, ablated: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap 95% CI of each ablation's relative increase (%) per target, [T, V] each, from
    squared errors baseline [n, T] and ablated [n, V, T], with the resample weights [R, n] of the total."""
    base_boot = weights @ baseline  # [R, T] sums
    ablated_boot = np.einsum("rn,nvt->rtv", weights, ablated)  # [R, T, V]
    return percentile_interval((ablated_boot - base_boot[:, :, None]) / base_boot[:, :, None] * 100)


def summarise(
    baseline: np.ndarray, ablated: dict, resamples: int, seed: int, targets: tuple[str, ...] = TARGETS
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per single-head ablation (interp.ablation.Ablation keys of `ablated`, squared errors
    [n, T] each; baseline [n, T]): MSEs, relative increase (%), per target, and a paired bootstrap 95% CI;
    and the bootstrap increases themselves, [resamples, rows], for CIs of aggregates."""
    keys = list(ablated)
    if any(len(a.heads) != 1 for a in keys):
        raise ValueError("summarise tabulates single-head ablations (one integer head per row)")
    baseline = baseline.astype(np.float64)
    ablated = {a: e.astype(np.float64) for a, e in ablated.items()}
    base_img = baseline.mean(1)  # per-image MSE over targets
    abl_img = np.stack([ablated[a].mean(1) for a in keys], axis=1)  # [n, V]
    weights = bootstrap_weights(len(base_img), resamples, seed)
    base_boot = weights @ base_img  # sums; the 1/n cancels in the ratio
    increase_boot = (weights @ abl_img - base_boot[:, None]) / base_boot[:, None] * 100
    low, high = percentile_interval(increase_boot)
    target_low, target_high = per_target_ci(baseline, np.stack([ablated[a] for a in keys], axis=1), weights)
    base_mse = baseline.mean()
    rows = []
    for i, a in enumerate(keys):
        per_target = ablated[a].mean(0)
        row = {
            "layer": a.layer + 1,
            "head": a.heads[0] + 1,
            "mode": a.mode,
            "baseline_mse": base_mse,
            "ablated_mse": abl_img[:, i].mean(),
            "increase_pct": (abl_img[:, i].mean() - base_mse) / base_mse * 100,
            "ci_low_pct": low[i],
            "ci_high_pct": high[i],
        }
        for t, name in enumerate(targets):
            base_t = baseline[:, t].mean()
            row[f"increase_pct_{name}"] = (per_target[t] - base_t) / base_t * 100
            row[f"ci_low_pct_{name}"], row[f"ci_high_pct_{name}"] = target_low[t, i], target_high[t, i]
        rows.append(row)
    return pd.DataFrame(rows), increase_boot


def layer_summary(heads: pd.DataFrame, boot: np.ndarray | None = None) -> pd.DataFrame:
    """Mean and sd over heads of the relative increase, per mode and layer (1-based); with the bootstrap
    increases of these rows ([resamples, rows]), the 95% CI of each layer's mean over the test images."""
    grouped = heads.groupby(["mode", "layer"])["increase_pct"]
    table = grouped.agg(mean_pct="mean", sd_pct="std").reset_index()
    if boot is not None:
        layers = heads["layer"].to_numpy()
        low, high = zip(*(percentile_interval(boot[:, layers == l].mean(1)) for l in table["layer"]))
        table = table.assign(ci_low_pct=low, ci_high_pct=high)
    return table


def rounded_interval(resampled: np.ndarray) -> list[float]:
    low, high = percentile_interval(resampled)
    return [round(float(low), 5), round(float(high), 5)]


def paper_comparison(heads: pd.DataFrame, boot: np.ndarray, mode: str) -> dict[str, float]:
    """The paper's figures, measured: its early band vs its middle layer (mean, sd over heads, bootstrap
    95% CI of the mean over images and the bootstrap's sd, its standard error) and their ratio. Rows of `heads`
    match columns of `boot`."""
    early = ((heads["mode"] == mode) & heads["layer"].between(*paper.EARLY_LAYERS)).to_numpy()
    middle = ((heads["mode"] == mode) & (heads["layer"] == paper.MIDDLE_LAYER)).to_numpy()
    if not early.any() or not middle.any():
        return {}  # a model with fewer layers has no middle layer to compare
    early_boot, middle_boot = boot[:, early].mean(1), boot[:, middle].mean(1)
    ratio_boot = middle_boot / np.where(early_boot == 0, np.nan, early_boot)
    early_mean, middle_mean = heads["increase_pct"][early].mean(), heads["increase_pct"][middle].mean()
    return {
        paper.FIGURE_KEYS["early"]: round(float(early_mean), 5),
        paper.SD_KEYS["early"]: round(float(heads["increase_pct"][early].std()), 5),
        paper.CI_KEYS["early"]: rounded_interval(early_boot),
        paper.SE_KEYS["early"]: round(float(bootstrap_se(early_boot)), 5),
        paper.FIGURE_KEYS["middle"]: round(float(middle_mean), 5),
        paper.SD_KEYS["middle"]: round(float(heads["increase_pct"][middle].std()), 5),
        paper.CI_KEYS["middle"]: rounded_interval(middle_boot),
        paper.SE_KEYS["middle"]: round(float(bootstrap_se(middle_boot)), 5),
        paper.FIGURE_KEYS["ratio"]: round(float(middle_mean / early_mean), 4) if early_mean else float("nan"),
        paper.CI_KEYS["ratio"]: rounded_interval(ratio_boot),
        paper.DIFFERENCE_KEY: round(float(middle_mean - paper.MIDDLE_OVER_EARLY * early_mean), 5),
        f"{paper.DIFFERENCE_KEY}_ci": rounded_interval(middle_boot - paper.MIDDLE_OVER_EARLY * early_boot),
        paper.SE_KEYS["difference"]: round(float(bootstrap_se(middle_boot - paper.MIDDLE_OVER_EARLY * early_boot)), 5),
    }


def mode_metrics(heads: pd.DataFrame, boot: np.ndarray, layers: pd.DataFrame, mode: str) -> dict:
    """metrics/ablate.json for one mode: the paper's figures, per-layer means, and the top heads."""
    h = heads[heads["mode"] == mode]
    top = h.nlargest(TOP_HEADS, "increase_pct")
    return {
        **paper_comparison(heads, boot, mode),
        "per_layer_mean_pct": {str(r.layer): round(r.mean_pct, 5) for r in layers[layers["mode"] == mode].itertuples()},
        "heads_ci_above_zero": int((h["ci_low_pct"] > 0).sum()),
        "top_heads": {head_name(r.layer, r.head): round(r.increase_pct, 4) for r in top.itertuples()},
    }


def author_table(losses: list[tuple[int, int, float]]) -> pd.DataFrame:
    """The emulated author's sweep (interp.author_protocol: (layer, head, loss) in sweep order, 1-based):
    each head's recorded loss and its increase over the first (undamaged) loss in percent."""
    table = pd.DataFrame(losses, columns=["layer", "head", "loss"])
    table["increase_pct"] = (table["loss"] / table["loss"].iloc[0] - 1) * 100
    return table


def author_comparison(table: pd.DataFrame) -> dict[str, float]:
    """The paper's figures under the emulated protocol: mean and sd over heads of the early band and of
    the middle layer, their ratio, and the damage accumulated by the last head (no CI: one cumulative pass)."""
    early = table.loc[table["layer"].between(*paper.EARLY_LAYERS), "increase_pct"]
    middle = table.loc[table["layer"] == paper.MIDDLE_LAYER, "increase_pct"]
    if middle.empty:
        return {}
    return {
        paper.FIGURE_KEYS["early"]: round(float(early.mean()), 5),
        paper.SD_KEYS["early"]: round(float(early.std()), 5),
        paper.FIGURE_KEYS["middle"]: round(float(middle.mean()), 5),
        paper.SD_KEYS["middle"]: round(float(middle.std()), 5),
        paper.FIGURE_KEYS["ratio"]: round(float(middle.mean() / early.mean()), 4),
        "last_head_increase_pct": round(float(table["increase_pct"].iloc[-1]), 5),
        "baseline_raw_label_mse": round(float(table["loss"].iloc[0]), 4),
    }
