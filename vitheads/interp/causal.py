"""Per-head measures from paired renders (vitheads.data.pairs): does a head process a distractor?

For each variant the test images and their variants run through the model once each (activation
caches, vitheads.interp.cache). Per head, per image:
  sensitivity  how much the head's output (hook_z) changes between the pair at the changed element's
               patch tokens, and at the other patch tokens, with the head's typical output norm (mean
               over member A's patch tokens) to scale them
  follow       for a moved element: attention (the received view) gained on the element's new patches
               minus that on its old ones, from member A to member B, in multiples of the attention a
               uniform head puts there
  patching     the head's output from one member put into the other's forward pass, each way:
               |change| of each target's prediction (z units) and change of its squared error
Per pair: the model-level effect of the distractor alone (the change in predictions). The rules that
read these measures are in vitheads.analysis.causal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.data.variants import PairSet
from vitheads.interp import decompose
from vitheads.interp.attention import patterns, received, received_attention
from vitheads.interp.attribution import ATTRIBUTION_POINTS
from vitheads.interp.baselines import direct_change, linearised_change, rollout_mass
from vitheads.interp.cache import ActivationCache, run_with_cache
from vitheads.interp.hooked import HookedViT
from vitheads.interp.patching import attribution_patching, kv_patched_layer, patched_layer
from vitheads.model.vit import device_of, to_input
from vitheads.records import VariantMeasures

CACHED = tuple(dict.fromkeys((*ATTRIBUTION_POINTS, *decompose.POINTS)))  # what every measure reads


def head_norm_change(
    a: ActivationCache, b: ActivationCache, element: torch.Tensor, prefix: int
) -> tuple[np.ndarray, ...]:
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


def follow_score(
    model: nn.Module, xa: torch.Tensor, xb: torch.Tensor, old: torch.Tensor, new: torch.Tensor
) -> np.ndarray:
    """[B, L, H]: (mass_B(new) - mass_B(old)) - (mass_A(new) - mass_A(old)) in the received view, over a
    uniform head's mass on the element ((|old| + |new|) / 2 of P patches)."""
    ra, rb = received_attention(model, xa), received_attention(model, xb)  # [B, L, H, P]
    gain = torch.einsum("blhp,bp->blh", rb - ra, new.float() - old.float())
    uniform = (old.sum(1) + new.sum(1)).float() / 2 / old.shape[1]  # [B]
    return (gain / uniform[:, None, None]).cpu().numpy()


def patch_estimates(model: nn.Module, a: ActivationCache, b: ActivationCache) -> np.ndarray:
    """[B, L, H, 2, T]: attribution patching's estimate of each head's prediction change, per direction."""
    both = [attribution_patching(model, target, source) for target, source in ((a, b), (b, a))]  # [L, H, B, T]
    return torch.stack(both, 3).permute(2, 0, 1, 3, 4).cpu().numpy()


@torch.inference_mode()
def patch_both_ways(
    model: nn.Module, a: ActivationCache, b: ActivationCache, y: torch.Tensor, patched: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[B, L, H, 2, T] each: |prediction change| and squared-error change when one head's output comes
    from the other member, per direction (names.PATCH_DIRECTIONS), for the heads marked in patched [L, H];
    NaN for the others."""
    n_layers, n_heads = patched.shape
    abs_change = torch.full((n_layers, n_heads, len(y), 2, y.shape[1]), float("nan"))
    err_change = abs_change.clone()
    for layer in range(n_layers):
        heads = np.flatnonzero(patched[layer]).tolist()
        if not heads:
            continue
        for d, (target, source) in enumerate(((a, b), (b, a))):
            out, clean = patched_layer(model, target, source, layer, heads).cpu(), target.output.cpu()  # [K, B, T]
            abs_change[layer, heads, :, d] = (out - clean).abs()
            err_change[layer, heads, :, d] = (out - y.cpu()) ** 2 - (clean - y.cpu()) ** 2
    return abs_change.permute(2, 0, 1, 3, 4).numpy(), err_change.permute(2, 0, 1, 3, 4).numpy()


def changed_tokens(a: ActivationCache, b: ActivationCache, tolerance: float = 1e-6) -> torch.Tensor:
    """[B, N] bool: the tokens whose embedding differs between the members: all the stem lets the element
    reach (31 px per token for the conv stem), not only the patches its mask touches."""
    return (a.resid_pre[0] - b.resid_pre[0]).abs().amax(-1) > tolerance


@torch.inference_mode()
def kv_both_ways(model: nn.Module, a: ActivationCache, b: ActivationCache) -> dict[str, np.ndarray]:
    """Key/value patching of every head at the changed tokens, each way (names.PATCH_DIRECTIONS): the
    |prediction change| [B, L, H, 2, T], and the head's own output change (what it read) at the changed
    tokens' queries and at the other patch queries (the broadcast), [B, L, H, 2] each."""
    prefix = model.num_prefix_tokens
    tokens = changed_tokens(a, b)  # [B, N]
    at, other = tokens[:, prefix:].float(), (~tokens[:, prefix:]).float()  # [B, P]
    changes, reads, broadcasts = [], [], []
    for layer in range(len(a.z)):
        per_direction = [kv_patched_layer(model, t, s, layer, tokens) for t, s in ((a, b), (b, a))]
        changes.append(torch.stack([(out - t.output).abs() for (out, _), t in zip(per_direction, (a, b))], 2))
        norms = [dz[:, :, prefix:].norm(dim=-1) for _, dz in per_direction]  # [H, B, P] each
        reads.append(torch.stack([(n * at).sum(-1) / at.sum(-1).clamp_min(1) for n in norms], -1))  # [H, B, 2]
        broadcasts.append(torch.stack([(n * other).sum(-1) / other.sum(-1).clamp_min(1) for n in norms], -1))
    as_array = lambda xs: (
        torch.stack(xs).transpose(0, 2).transpose(1, 2).cpu().numpy()
    )  # [L, H, B, ...] -> [B, L, H, ...]
    return {"kv_prediction_change": as_array(changes), "kv_read": as_array(reads), "kv_broadcast": as_array(broadcasts)}


def route_measures(hooked: HookedViT, a: ActivationCache, b: ActivationCache) -> dict[str, np.ndarray]:
    """The exact route split of the pair's change, its frozen-attention counterpart, and the same split with the
    changed tokens resampled from another image of the batch (vitheads.interp.decompose)."""
    changed = changed_tokens(a, b)
    other = decompose.resampled(hooked, a, changed)
    alone = float("nan") if len(changed) < 2 else 1.0  # a batch of one image has no other image to resample from
    return {
        "route_changes": decompose.route_changes(hooked, a, b, changed).cpu().numpy(),
        "frozen_attention_change": decompose.frozen_attention_change(hooked, a, b).cpu().numpy(),
        "resampled_change": (other.output - a.output).cpu().numpy() * alone,
        "resampled_route_changes": decompose.route_changes(hooked, a, other, changed).cpu().numpy() * alone,
    }


def baseline_measures(model: nn.Module, xa, xb, a: ActivationCache, b: ActivationCache) -> dict[str, np.ndarray]:
    """The baselines of vitheads.interp.baselines for a batch of pairs, and member A's received attention and
    the changed tokens, from which the analysis scores attention without a ceiling (AUROC)."""
    tokens = changed_tokens(a, b)
    prefix = model.num_prefix_tokens
    attention = patterns(model, xa)  # [B, L, H, N, N]: one pass serves the received view and the rollout
    return {
        "baseline_received": received(attention, prefix).cpu().numpy(),  # [B, L, H, P]
        "baseline_tokens": tokens[:, prefix:].cpu().numpy(),  # [B, P]
        "baseline_rollout": rollout_mass(attention, tokens, prefix),  # [B, L, H]
        "baseline_direct": direct_change(model, a, b),  # [B, L, H, T]
        "baseline_linearised": linearised_change(model, xa, xb),  # [B, L, H]
    }


@torch.inference_mode()
def measure_variant(
    model: nn.Module,
    pairs: PairSet,
    z_true: np.ndarray,
    batch_size: int,
    n_patch: int,
    screen: float = 0.0,
    kv: bool = False,
) -> VariantMeasures:
    """Every measure of one variant, batch by batch from activation caches of both members. Patching, on
    the first n_patch pairs: exact for the heads whose attribution-patching estimate of some target's mean
    |prediction change| reaches `screen` (0: every head), NaN for the others."""
    model.eval()
    hooked = HookedViT(model)
    device, prefix, n = device_of(model), model.num_prefix_tokens, len(pairs.images)
    parts: dict[str, list[np.ndarray]] = {}
    to_patch = []
    for start in tqdm(range(0, n, batch_size), desc=f"causal {pairs.variant}", unit="batch", leave=False):
        rows = slice(start, start + batch_size)
        xa, xb = (to_input(pairs.images[rows, k], device) for k in (0, 1))
        element = torch.from_numpy(pairs.element[rows]).to(device)
        y = torch.from_numpy(z_true[rows]).to(device)
        a, b = (run_with_cache(hooked, x, CACHED) for x in (xa, xb))
        sensitivity = head_norm_change(a, b, element, prefix)
        found = dict(zip(("sensitivity_element", "sensitivity_elsewhere", "typical_norm"), sensitivity))
        found["squared_error"] = ((a.output - y) ** 2).cpu().numpy()
        found["prediction_change"] = (b.output - a.output).cpu().numpy()
        found["squared_error_change"] = ((b.output - y) ** 2 - (a.output - y) ** 2).cpu().numpy()
        found |= route_measures(hooked, a, b)
        if pairs.moved:
            old, new = (torch.from_numpy(r[rows]).to(device) for r in (pairs.old, pairs.new))
            found["follow"] = follow_score(model, xa, xb, old, new)
        if start < n_patch:
            keep = slice(0, min(batch_size, n_patch - start))
            to_patch.append((a.rows(keep), b.rows(keep), y[keep]))
            found["patch_estimate"] = patch_estimates(model, *to_patch[-1][:2])
            if kv:
                found |= kv_both_ways(model, *to_patch[-1][:2])
                found |= baseline_measures(model, xa[keep], xb[keep], *to_patch[-1][:2])
        for key, value in found.items():
            parts.setdefault(key, []).append(value)
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    if to_patch:
        estimate = np.abs(joined["patch_estimate"]).mean((0, 3))  # [L, H, T]: the bars are per target
        patched = estimate.max(-1) >= screen  # [L, H]
        exact = [patch_both_ways(model, a, b, y, patched) for a, b, y in to_patch]
        joined["patch_prediction_change"], joined["patch_squared_error_change"] = (
            np.concatenate(x) for x in zip(*exact)
        )
    baselines = {k.removeprefix("baseline_"): joined.pop(k) for k in list(joined) if k.startswith("baseline_")}
    return VariantMeasures(**joined, baselines=baselines or None)
