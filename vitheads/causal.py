"""Causal evidence per head from paired renders (README "causal"): does a head process a distractor?

For each variant (vitheads.pairs) the test images and their variants run through the model once
each (clean passes, cached as in the ablation engine). Per head, per image:
  sensitivity  how much the head's output (hook_z) changes between the pair at the changed
               element's patch tokens, and at the other patch tokens, as a share of the head's
               typical output norm (mean over the test images' patch tokens);
  follow       for a moved element (title left -> right, colorbar top -> bottom half, frame
               left/bottom -> top/right): attention (received view: mean over patch queries) gained
               on the element's new patches minus that on its old ones, from member A to member B,
               in multiples of the attention a uniform head puts there;
  patching     the head's output from one member put into the other's forward pass, each way:
               |change| of each target's prediction (z units) and change of its squared error.
Per pair: the model-level effect of the distractor alone (the change in predictions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vitheads.ablation import CleanPass, clean_pass
from vitheads.hooks import hooked
from vitheads.model import device_of, to_input
from vitheads.names import DISTRACTOR_KINDS
from vitheads.pairs import VARIANTS, PairSet
from vitheads.patching import patched_layer
from vitheads.resampling import bootstrap_means

def response_variants(kind: str, variants: list[str]) -> list[str]:
    """The variants that test whether a head responds to a kind: its content swaps, or blanking where
    it has none (the frame's only content is its ink)."""
    mine = [v for v in variants if VARIANTS[v].kind == kind]
    return [v for v in mine if VARIANTS[v].role == "content"] or [v for v in mine if VARIANTS[v].role == "blank"]


def moved_variant(kind: str, variants: list[str]) -> str | None:
    return next((v for v in variants if VARIANTS[v].kind == kind and VARIANTS[v].role == "moved"), None)


@dataclass
class VariantMeasures:
    """Per image (and layer, head) measures of one variant; see the module doc."""

    sensitivity_element: np.ndarray  # [n, L, H] mean ||dz|| at the element's patch tokens
    sensitivity_elsewhere: np.ndarray  # [n, L, H] the same at the other patch tokens
    typical_norm: np.ndarray  # [n, L, H] mean ||z|| over member A's patch tokens
    squared_error: np.ndarray  # [n, T] member A's
    prediction_change: np.ndarray  # [n, T] member B minus member A (z units)
    squared_error_change: np.ndarray  # [n, T]
    follow: np.ndarray | None  # [n, L, H] in multiples of uniform attention (moved elements only)
    patch_prediction_change: np.ndarray | None  # [n_patch, L, H, 2, T] |change|; directions: B's output into A, A's into B
    patch_squared_error_change: np.ndarray | None  # [n_patch, L, H, 2, T]

    @property
    def patch_effect(self) -> np.ndarray:
        """[n_patch, L, H]: mean |prediction change| over both directions and the targets (the rule's measure)."""
        return self.patch_prediction_change.mean((-2, -1))


def head_norm_change(a: CleanPass, b: CleanPass, element: torch.Tensor, prefix: int) -> tuple[np.ndarray, ...]:
    """Per image, layer and head: mean ||z_B - z_A|| over the element's patch tokens and over the
    others, and mean ||z_A|| over all patch tokens."""
    at, elsewhere, norm = [], [], []
    weights = {"at": element.float(), "else": (~element).float()}  # [B, P]
    for za, zb in zip(a.z, b.z):
        change = (zb - za)[:, prefix:].norm(dim=-1)  # [B, P, H]
        for key, out in (("at", at), ("else", elsewhere)):
            w = weights[key]
            out.append(torch.einsum("bph,bp->bh", change, w) / w.sum(1, keepdim=True).clamp_min(1))
        norm.append(za[:, prefix:].norm(dim=-1).mean(1))  # [B, H]
    return tuple(torch.stack(x, 1).cpu().numpy() for x in (at, elsewhere, norm))  # each [B, L, H]


@torch.inference_mode()
def received_attention(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[B, L, H, P]: attention each patch receives, mean over patch queries (the received view)."""
    prefix, maps = model.num_prefix_tokens, []

    def keep(pattern):
        maps.append(pattern[:, :, prefix:, prefix:].mean(2))

    with hooked(model, {f"blocks.{l}.attn.hook_pattern": keep for l in range(len(model.blocks))}):
        model(x)
    return torch.stack(maps, 1)


def follow_score(model: nn.Module, xa: torch.Tensor, xb: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> np.ndarray:
    """[B, L, H]: (mass_B(new) - mass_B(old)) - (mass_A(new) - mass_A(old)), over a uniform head's
    mass on the element ((|old| + |new|) / 2 of P patches)."""
    ra, rb = received_attention(model, xa), received_attention(model, xb)  # [B, L, H, P]
    gain = torch.einsum("blhp,bp->blh", rb - ra, new.float() - old.float())
    uniform = (old.sum(1) + new.sum(1)).float() / 2 / old.shape[1]  # [B]
    return (gain / uniform[:, None, None]).cpu().numpy()


PATCH_DIRECTIONS = ("variant_into_original", "original_into_variant")  # whose head output goes into whose pass


@torch.inference_mode()
def patch_both_ways(model: nn.Module, a: CleanPass, b: CleanPass, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """[B, L, H, 2, T] each: |prediction change| and squared-error change when one head's output
    comes from the other member, per direction (PATCH_DIRECTIONS)."""
    abs_change, err_change = [], []
    for layer in range(len(a.z)):
        outs = [(patched_layer(model, target, source, layer), target.output) for target, source in ((a, b), (b, a))]  # [H, B, T]
        abs_change.append(torch.stack([(out - clean).abs() for out, clean in outs], 2))  # [H, B, 2, T]
        err_change.append(torch.stack([(out - y) ** 2 - (clean - y) ** 2 for out, clean in outs], 2))
    stack = lambda xs: torch.stack(xs).permute(2, 0, 1, 3, 4).cpu().numpy()  # [L, H, B, 2, T] -> [B, L, H, 2, T]
    return stack(abs_change), stack(err_change)


@torch.inference_mode()
def measure_variant(model: nn.Module, pairs: PairSet, z_true: np.ndarray, batch_size: int, n_patch: int) -> VariantMeasures:
    """Every measure of one variant, batch by batch from cached clean passes of both members."""
    model.eval()
    device, prefix, n = device_of(model), model.num_prefix_tokens, len(pairs.images)
    parts: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, n, batch_size), desc=f"causal {pairs.variant}", unit="batch", leave=False):
        rows = slice(start, start + batch_size)
        xa, xb = (to_input(pairs.images[rows, k], device) for k in (0, 1))
        element = torch.from_numpy(pairs.element[rows]).to(device)
        y = torch.from_numpy(z_true[rows]).to(device)
        a, b = clean_pass(model, xa), clean_pass(model, xb)
        found = dict(zip(("at", "else", "norm"), head_norm_change(a, b, element, prefix)))
        found["clean_err"] = ((a.output - y) ** 2).cpu().numpy()
        found["pred"] = (b.output - a.output).cpu().numpy()
        found["err"] = ((b.output - y) ** 2 - (a.output - y) ** 2).cpu().numpy()
        if VARIANTS[pairs.variant].role == "moved":
            old, new = (torch.from_numpy(r[rows]).to(device) for r in (pairs.old, pairs.new))
            found["follow"] = follow_score(model, xa, xb, old, new)
        if start < n_patch:
            keep = slice(0, min(batch_size, n_patch - start))
            a_kept, b_kept = (CleanPass([t[keep] for t in c.inputs], [t[keep] for t in c.z], c.output[keep]) for c in (a, b))
            found["patch_abs"], found["patch_err"] = patch_both_ways(model, a_kept, b_kept, y[keep])
        for key, value in found.items():
            parts.setdefault(key, []).append(value)
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return VariantMeasures(joined["at"], joined["else"], joined["norm"], joined["clean_err"], joined["pred"], joined["err"],
                           joined.get("follow"), joined.get("patch_abs"), joined.get("patch_err"))


def resampled_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[R, K] means of [n, ...] values (flattened) under the image resamples weights [R, n]."""
    return bootstrap_means(weights, values.reshape(len(values), -1).astype(np.float64))


def mean_ci(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over images (axis 0) and its bootstrap 95% CI, for [n, ...] values; weights [R, n]."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    low, high = np.percentile(resampled_means(values, weights), [2.5, 97.5], axis=0)
    shape = values.shape[1:]
    return flat.mean(0).reshape(shape), low.reshape(shape), high.reshape(shape)


def passing_heads(alternatives: list[list[tuple[np.ndarray, float]]], weights: np.ndarray) -> tuple[int, list[int]]:
    """Heads whose means over images pass any alternative (each a list of (values [n, L, H], threshold),
    all exceeded): how many, and the 95% interval of that count over image resamples (weights [R, n])."""
    point, resampled = False, False
    for conditions in alternatives:
        point = point | np.all([v.mean(0).ravel() > t for v, t in conditions], axis=0)
        resampled = resampled | np.all([resampled_means(v, weights) > t for v, t in conditions], axis=0)
    return int(np.sum(point)), [int(v) for v in np.percentile(np.sum(resampled, axis=1), [2.5, 97.5])]


def response_conditions(m: VariantMeasures, c: dict) -> list[tuple[np.ndarray, float]]:
    """`responds` on means: the change at the element above `min_response`, and above the change elsewhere."""
    typical = m.typical_norm.mean(0)
    return [(m.sensitivity_element / typical, c["min_response"]), ((m.sensitivity_element - m.sensitivity_elsewhere) / typical, 0.0)]


def head_rows(variant: str, m: VariantMeasures, weights: np.ndarray, patch_weights: np.ndarray | None,
              targets: tuple[str, ...]) -> list[dict]:
    """One row per head (1-based layer and head) of one variant: every measure's mean and 95% CI over images."""
    typical = m.typical_norm.mean(0)  # [L, H]
    stats = {
        "sensitivity_element": mean_ci(m.sensitivity_element / typical, weights),
        "sensitivity_elsewhere": mean_ci(m.sensitivity_elsewhere / typical, weights),
        "sensitivity_excess": mean_ci((m.sensitivity_element - m.sensitivity_elsewhere) / typical, weights),
    }
    if m.follow is not None:
        stats["follow"] = mean_ci(m.follow, weights)
    if m.patch_prediction_change is not None:
        stats["patch_prediction_change"] = mean_ci(m.patch_effect, patch_weights)
        stats["patch_squared_error_change"] = mean_ci(m.patch_squared_error_change.mean((-2, -1)), patch_weights)
        for d, direction in enumerate(PATCH_DIRECTIONS):
            stats[f"patch_prediction_change_{direction}"] = mean_ci(m.patch_prediction_change[..., d, :].mean(-1), patch_weights)
        for t, target in enumerate(targets):
            stats[f"patch_prediction_change_{target}"] = mean_ci(m.patch_prediction_change[..., t].mean(-1), patch_weights)
            stats[f"patch_squared_error_change_{target}"] = mean_ci(m.patch_squared_error_change[..., t].mean(-1), patch_weights)
    layers, heads = typical.shape
    rows = []
    for l in range(layers):
        for h in range(heads):
            row = {"variant": variant, "distractor": VARIANTS[variant].kind, "layer": l + 1, "head": h + 1}
            for name, (mean, low, high) in stats.items():
                row |= {name: mean[l, h], f"{name}_ci_low": low[l, h], f"{name}_ci_high": high[l, h]}
            rows.append(row)
    return rows


def model_effect(variant: str, m: VariantMeasures, weights: np.ndarray, targets: tuple[str, ...]) -> dict:
    """The distractor alone: mean change and mean |change| of each prediction (z units), and the
    change of the MSE in percent of the clean MSE, with 95% CIs over images."""
    change, low, high = mean_ci(m.prediction_change, weights)
    size, size_low, size_high = mean_ci(np.abs(m.prediction_change), weights)
    err, err_low, err_high = mean_ci(m.squared_error_change.mean(1, keepdims=True) / m.squared_error.mean() * 100, weights)
    r = lambda v: round(float(v), 5)
    return {
        "distractor": VARIANTS[variant].kind,
        "images": len(m.prediction_change),
        "mse_change_pct": r(err[0]), "mse_change_pct_ci": [r(err_low[0]), r(err_high[0])],
        **{f"{t}_change": r(change[i]) for i, t in enumerate(targets)},
        **{f"{t}_change_ci": [r(low[i]), r(high[i])] for i, t in enumerate(targets)},
        **{f"{t}_abs_change": r(size[i]) for i, t in enumerate(targets)},
        **{f"{t}_abs_change_ci": [r(size_low[i]), r(size_high[i])] for i, t in enumerate(targets)},
    }


def responds(v: pd.DataFrame, c: dict) -> pd.Series:
    """Output change at the element's patches: CI above `min_response` of the head's typical norm, and
    above the change at the other patches (the positional null: any other tokens of the same pair)."""
    return (v["sensitivity_element_ci_low"] > c["min_response"]) & (v["sensitivity_excess_ci_low"] > 0)


def head_evidence(rows: pd.DataFrame, c: dict) -> pd.DataFrame:
    """Per head (1-based), per distractor kind: does its output respond to the element (any response
    variant, `responds`), does its attention follow the element when it moves (CI of follow above
    `min_follow`), and does patching its output between a response pair change predictions (CI of
    the mean |change| above `min_prediction_change`). A detector responds and follows."""
    table = rows.set_index(["variant", "layer", "head"])
    variants = list(dict.fromkeys(rows["variant"]))
    out = pd.DataFrame(index=table.loc[variants[0]].index)
    for kind in DISTRACTOR_KINDS:
        tested = response_variants(kind, variants)
        if not tested:
            continue
        out[f"responds_{kind}"] = np.any([responds(table.loc[v], c) for v in tested], axis=0)
        patched = [table.loc[v]["patch_prediction_change_ci_low"] for v in tested if "patch_prediction_change_ci_low" in table]
        if patched and all(p.notna().all() for p in patched):
            out[f"changes_predictions_{kind}"] = np.any([p > c["min_prediction_change"] for p in patched], axis=0)
        moved = moved_variant(kind, variants)
        out[f"follows_{kind}"] = table.loc[moved]["follow_ci_low"] > c["min_follow"] if moved else False
        out[f"{kind}_detector"] = out[f"responds_{kind}"] & out[f"follows_{kind}"]
    changes = [col for col in out if col.startswith("changes_predictions_")]
    out["task_relevant"] = out[changes].any(axis=1) if changes else False
    return out.astype(bool).reset_index()
