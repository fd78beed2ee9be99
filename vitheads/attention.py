"""Attention probabilities of every head, summarised per head and scored against the masks.

Two views per head, each a distribution over the patches of every image: `cls`, the CLS
token's attention (renormalised over patches), and `received`, the attention each patch
receives averaged over all patch queries. Each view is scored the same way: its mass on a
mask class is the sum over patches of attention x the class's share of the patch's pixels
(generate's patch_fractions), so masses over classes sum to 1 and compare with area shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vitheads.hooks import hooked
from vitheads.outputs import StageError
from vitheads.model import device_of, to_input
from vitheads.names import CLASSES

ROW_SUM_TOLERANCE = 1e-4


VIEWS = ("cls", "received")


@dataclass
class AttentionSummary:
    maps: dict[str, np.ndarray]  # view -> [L, H, G, G], mean over images
    mass: dict[str, np.ndarray] | None  # view -> [n, L, H, C] mass on each class (None: data without masks)
    area: np.ndarray | None  # [n, C] each class's share of the image's pixels
    entropy: dict[str, np.ndarray]  # view -> [n, L, H] entropy / log(patches): 1 is uniform


def patterns(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """All heads' attention probabilities for a batch, one forward: [B, L, H, N, N]."""
    captured: dict[int, torch.Tensor] = {}
    hooks = {f"blocks.{l}.attn.hook_pattern": (lambda a, l=l: captured.__setitem__(l, a)) for l in range(len(model.blocks))}
    with hooked(model, hooks):
        model(x)
    if len(captured) != len(model.blocks):
        raise RuntimeError(f"captured attention from {len(captured)} of {len(model.blocks)} blocks")
    stacked = torch.stack([captured[l] for l in range(len(model.blocks))], dim=1)
    worst = (stacked.sum(-1) - 1).abs().max().item()
    if worst > ROW_SUM_TOLERANCE:
        raise RuntimeError(f"captured attention rows sum to 1 +- {worst:.2g}: not softmax probabilities")
    return stacked


def views(a: torch.Tensor, prefix: int) -> dict[str, torch.Tensor]:
    """Both views of [B, L, H, N, N] probabilities as distributions over patches: [B, L, H, P]."""
    cls = a[..., 0, prefix:]
    received = a[..., prefix:, prefix:].mean(-2)
    return {"cls": cls / cls.sum(-1, keepdim=True), "received": received / received.sum(-1, keepdim=True)}


def entropy(d: torch.Tensor) -> np.ndarray:
    return (-(d * d.clamp_min(1e-12).log()).sum(-1) / np.log(d.shape[-1])).numpy()


@torch.inference_mode()
def summarise(model: nn.Module, images: np.ndarray, fractions: np.ndarray | None, batch_size: int) -> AttentionSummary:
    """Run the test images once, in batches, keeping per-head summaries (never all patterns).
    Without patch fractions (data without masks) there are no class masses."""
    model.eval()
    prefix, grid = model.num_prefix_tokens, model.patch_embed.grid_size
    if fractions is not None and fractions.shape[1:3] != tuple(grid):
        raise StageError(f"patch fractions are on a {fractions.shape[1:3]} grid, the model's is {tuple(grid)}")
    sums = {v: 0.0 for v in VIEWS}
    masses, entropies = {v: [] for v in VIEWS}, {v: [] for v in VIEWS}
    for start in tqdm(range(0, len(images), batch_size), desc="attention", unit="batch"):
        per_view = {v: d.cpu() for v, d in views(patterns(model, to_input(images[start : start + batch_size], device_of(model))), prefix).items()}
        if fractions is not None:
            f = torch.from_numpy(np.asarray(fractions[start : start + batch_size], np.float32)).flatten(1, 2)  # [B, P, C]
        for v, d in per_view.items():
            sums[v] = sums[v] + d.sum(0)
            entropies[v].append(entropy(d))
            if fractions is not None:
                masses[v].append(torch.einsum("blhp,bpc->blhc", d, f).numpy())
    n, shape = len(images), (len(model.blocks), model.blocks[0].attn.num_heads, *grid)
    return AttentionSummary(
        maps={v: (sums[v] / n).reshape(shape).numpy() for v in VIEWS},
        mass=None if fractions is None else {v: np.concatenate(m) for v, m in masses.items()},
        area=None if fractions is None else np.asarray(fractions, np.float64).mean(axis=(1, 2)),
        entropy={v: np.concatenate(e) for v, e in entropies.items()},
    )


def region_table(s: AttentionSummary) -> pd.DataFrame:
    """One row per view, layer, head and class: mass, area share, enrichment, spread over images (1-based)."""
    mean_area = s.area.mean(0)
    rows = []
    for view, mass in s.mass.items():
        mean_mass, sd_mass = mass.mean(0), mass.std(0)
        for (l, h, c), m in np.ndenumerate(mean_mass):
            rows.append({
                "view": view, "layer": l + 1, "head": h + 1, "class": CLASSES[c], "mass": m, "area_share": mean_area[c],
                "enrichment": m / mean_area[c] if mean_area[c] > 0 else np.nan, "mass_sd": sd_mass[l, h, c],
            })
    return pd.DataFrame(rows)


def head_table(s: AttentionSummary) -> pd.DataFrame:
    """One row per head: mean normalised entropy of each view (1 = uniform over patches)."""
    e = {v: x.mean(0) for v, x in s.entropy.items()}
    layers, heads = e["cls"].shape
    return pd.DataFrame(
        [{"layer": l + 1, "head": h + 1, **{f"entropy_{v}": e[v][l, h] for v in VIEWS}} for l in range(layers) for h in range(heads)]
    )


@torch.inference_mode()
def per_image_maps(model: nn.Module, images: np.ndarray, view: str) -> np.ndarray:
    """One view of every head for a few images: [n, L, H, G, G] (for overlays)."""
    d = views(patterns(model.eval(), to_input(images, device_of(model))), model.num_prefix_tokens)[view].cpu()
    return d.reshape(*d.shape[:3], *model.patch_embed.grid_size).numpy()
