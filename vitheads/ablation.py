"""Head ablation: replace one head's output before the output projection, measure the damage.

Correct where the paper's code is not: the replacement happens inside the forward pass that
produces the loss, covers the head's whole slice of `blocks.{l}.attn.hook_z`, and is applied to
that activation, so weights are never modified.

Fast by design: per batch, the clean residual stream entering every block and every block's
head outputs are computed once. Ablating a head in layer l then starts from layer l's clean head
outputs (its attention, half of a block's time on CPU, is not recomputed) and re-runs only the
rest of block l and blocks l+1..L; all ablations of one layer (heads x modes) are stacked into one
larger batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vitheads.hooks import hooked
from vitheads.model import device_of, to_input
from vitheads.names import TARGETS
from vitheads.resampling import bootstrap_weights

STACK_ROWS = 128  # rows per stacked batch of ablated copies; measured: small stacks stay in cache, 1024 rows ran 1.45x slower


@dataclass(frozen=True)
class Ablation:
    """Heads of one layer (0-based) replaced together: one head in a sweep, all for a layer."""

    layer: int
    heads: tuple[int, ...]
    mode: str


@dataclass
class SweepErrors:
    """Squared errors per image and target (z-scored): clean, and under each ablation."""

    baseline: np.ndarray  # [n_images, n_targets]
    ablated: dict[Ablation, np.ndarray]


@dataclass
class CleanPass:
    """One clean forward pass, kept per block: what enters it and its heads' outputs."""

    inputs: list[torch.Tensor]  # per block, the residual stream entering it [B, N, D]
    z: list[torch.Tensor]  # per block, hook_z [B, N, H, Dh]
    output: torch.Tensor  # the model's output [B, T]


def clean_pass(model: nn.Module, x: torch.Tensor) -> CleanPass:
    """The clean forward pass, timm's forward_features steps, with every block's input and hook_z kept."""
    z = [None] * len(model.blocks)

    def keep(layer):
        def hook(value):
            z[layer] = value

        return hook

    h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    inputs = []
    with hooked(model, {f"blocks.{l}.attn.hook_z": keep(l) for l in range(len(model.blocks))}):
        for block in model.blocks:
            inputs.append(h)
            h = block(h)
    return CleanPass(inputs, z, model.forward_head(model.norm(h)))


def finish_block(block: nn.Module, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Block output for input h when its heads output z [B, N, H, Dh]: timm's Block and Attention
    steps from the output projection on (z is what hook_z sees, the projection's input)."""
    attn = block.attn
    x = h + block.drop_path1(block.ls1(attn.proj_drop(attn.proj(z.flatten(2)))))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def run_from(model: nn.Module, layer: int, h: torch.Tensor) -> torch.Tensor:
    """Model output when the residual stream entering block `layer` is h."""
    for block in model.blocks[layer:]:
        h = block(h)
    return model.forward_head(model.norm(h))


@torch.inference_mode()
def mean_head_outputs(model: nn.Module, images: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Per layer, every head's output averaged over the images, per token position: [N, H, Dh]."""
    sums = [None] * len(model.blocks)

    def accumulate(layer):
        def hook(z):
            sums[layer] = z.sum(0) if sums[layer] is None else sums[layer] + z.sum(0)

        return hook

    with hooked(model, {f"blocks.{l}.attn.hook_z": accumulate(l) for l in range(len(model.blocks))}):
        for start in range(0, len(images), batch_size):
            model(to_input(images[start : start + batch_size], device_of(model)))
    return [s / len(images) for s in sums]


def replace_heads(z: torch.Tensor, chunks: list[Ablation], means: list[torch.Tensor]) -> torch.Tensor:
    """Head outputs of stacked copies [K*B, N, H, Dh] with copy k's heads replaced per chunks[k]."""
    z = z.clone()
    per_copy = z.view(len(chunks), -1, *z.shape[1:])  # [K, B, N, H, Dh], a view of z
    for k, a in enumerate(chunks):
        heads = list(a.heads)
        per_copy[k, :, :, heads] = 0 if a.mode == "zero" else means[a.layer][:, heads]
    return z


@torch.inference_mode()
def sweep(
    model: nn.Module,
    images: np.ndarray,
    z_true: np.ndarray,
    ablations: list[Ablation],
    batch_size: int,
    max_rows: int = STACK_ROWS,
) -> SweepErrors:
    """Squared errors of the clean model and of every ablation, per image and target."""
    model.eval()
    means = mean_head_outputs(model, images, batch_size) if any(a.mode == "mean" for a in ablations) else []
    by_layer = {l: [a for a in ablations if a.layer == l] for l in sorted({a.layer for a in ablations})}
    baseline, ablated = [], {a: [] for a in ablations}
    progress = tqdm(total=len(ablations) * len(images), desc="ablate", unit="img·head")
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size], device_of(model))
        y = torch.from_numpy(z_true[start : start + batch_size]).to(x.device)
        clean = clean_pass(model, x)
        baseline.append(((clean.output - y) ** 2).cpu().numpy())
        per_group = max(1, max_rows // len(x))
        for layer, todo in by_layer.items():
            for g in range(0, len(todo), per_group):
                chunks = todo[g : g + per_group]
                z = replace_heads(clean.z[layer].repeat(len(chunks), 1, 1, 1), chunks, means)  # [K*B, N, H, Dh]
                h = finish_block(model.blocks[layer], clean.inputs[layer].repeat(len(chunks), 1, 1), z)
                out = run_from(model, layer + 1, h).view(len(chunks), len(x), -1)
                for k, a in enumerate(chunks):
                    ablated[a].append(((out[k] - y) ** 2).cpu().numpy())
                progress.update(len(chunks) * len(x))
    progress.close()
    return SweepErrors(np.concatenate(baseline), {a: np.concatenate(e) for a, e in ablated.items()})


def all_heads(depth: int, num_heads: int, modes: list[str]) -> list[Ablation]:
    return [Ablation(l, (h,), m) for m in modes for l in range(depth) for h in range(num_heads)]


def per_target_ci(baseline: np.ndarray, ablated: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap 95% CI of each ablation's relative increase (%) per target, [T, V] each, from
    squared errors baseline [n, T] and ablated [n, V, T], with the resample weights [R, n] of the total."""
    base_boot = weights @ baseline  # [R, T] sums
    ablated_boot = np.einsum("rn,nvt->rtv", weights, ablated)  # [R, T, V]
    increase = (ablated_boot - base_boot[:, :, None]) / base_boot[:, :, None] * 100
    low, high = np.percentile(increase, [2.5, 97.5], axis=0)
    return low, high


def summarise(errors: SweepErrors, resamples: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per ablation: MSEs, relative increase (%), per target, and a paired bootstrap 95% CI;
    and the bootstrap increases themselves, [resamples, rows], for CIs of aggregates."""
    keys = list(errors.ablated)
    if any(len(a.heads) != 1 for a in keys):
        raise ValueError("summarise tabulates single-head ablations (one integer head per row)")
    baseline = errors.baseline.astype(np.float64)
    ablated = {a: e.astype(np.float64) for a, e in errors.ablated.items()}
    base_img = baseline.mean(1)  # per-image MSE over targets
    abl_img = np.stack([ablated[a].mean(1) for a in keys], axis=1)  # [n, V]
    weights = bootstrap_weights(len(base_img), resamples, seed)
    base_boot = weights @ base_img  # sums; the 1/n cancels in the ratio
    increase_boot = (weights @ abl_img - base_boot[:, None]) / base_boot[:, None] * 100
    low, high = np.percentile(increase_boot, [2.5, 97.5], axis=0)
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
        for t, name in enumerate(TARGETS):
            base_t = baseline[:, t].mean()
            row[f"increase_pct_{name}"] = (per_target[t] - base_t) / base_t * 100
            row[f"ci_low_pct_{name}"], row[f"ci_high_pct_{name}"] = target_low[t, i], target_high[t, i]
        rows.append(row)
    return pd.DataFrame(rows), increase_boot


def layer_summary(heads: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over heads of the relative increase, per mode and layer (1-based)."""
    grouped = heads.groupby(["mode", "layer"])["increase_pct"]
    return grouped.agg(mean_pct="mean", sd_pct="std").reset_index()


def paper_comparison(heads: pd.DataFrame, boot: np.ndarray, mode: str) -> dict[str, float]:
    """The paper's figures, measured: layers 1-3 vs layer 6 (mean, sd over heads, bootstrap 95% CI
    of the mean over images) and their ratio. Rows of `heads` match columns of `boot`."""
    early = ((heads["mode"] == mode) & (heads["layer"] <= 3)).to_numpy()
    six = ((heads["mode"] == mode) & (heads["layer"] == 6)).to_numpy()
    if not early.any() or not six.any():
        return {}  # a model with fewer than 6 layers has no layer 6 to compare
    early_boot, six_boot = boot[:, early].mean(1), boot[:, six].mean(1)
    ratio_boot = six_boot / np.where(early_boot == 0, np.nan, early_boot)
    early_mean, six_mean = heads["increase_pct"][early].mean(), heads["increase_pct"][six].mean()

    def ci(values):
        low, high = np.nanpercentile(values, [2.5, 97.5])
        return [round(float(low), 5), round(float(high), 5)]

    return {
        "early_layers_1_3_mean_pct": round(float(early_mean), 5),
        "early_layers_1_3_sd_pct": round(float(heads["increase_pct"][early].std()), 5),
        "early_layers_1_3_ci_pct": ci(early_boot),
        "layer_6_mean_pct": round(float(six_mean), 5),
        "layer_6_sd_pct": round(float(heads["increase_pct"][six].std()), 5),
        "layer_6_ci_pct": ci(six_boot),
        "layer_6_over_early_ratio": round(float(six_mean / early_mean), 4) if early_mean else float("nan"),
        "layer_6_over_early_ratio_ci": ci(ratio_boot),
    }
