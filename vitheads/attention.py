"""Attention probabilities of every head, as distributions over patches, scored against the masks.

Views, each a distribution over the patches of one image ([B, L, H, P]):
  received    attention each patch receives, averaged over all patch queries (the paper's code
              draws this); it reaches the output under every readout, since every patch token
              is read by the flatten readout and feeds later layers under the others
  from_chirp  attention from the patch queries that hold the chirp (needs masks)
  cls         the CLS token's attention; it reaches the output only when the readout reads CLS
              (`model.pooling: token`); with flatten the CLS row of the last layer is never read
Each view is renormalised over patches (the CLS key is dropped).

Scoring, per image: pixel level (mass on a class = sum over patches of attention x the class's
share of the patch's pixels; the classes' masses sum to 1) and patch level (mass on the patches
that hold any pixel of a region). The labels use patch level: a token represents its whole
patch, and pixel weighting splits a head that watches the frame's patches among margin, tick
labels and a 1-pixel spine. The regions are the kinds of vitheads.names plus `margin`, the
patches that are almost all white and hold no pixel of any kind (sink candidates).

Controls: every patch-level mass is also scored against another image's masks (a seeded
derangement of the images), the shuffle null that separates following an element from
preferring where it usually is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vitheads.hooks import hooked
from vitheads.model import device_of, to_input
from vitheads.names import CLASS_ID, CLASSES, KINDS, view_reaches_output
from vitheads.outputs import StageError

ROW_SUM_TOLERANCE = 1e-4
REGIONS = (*KINDS, "margin")
MARGIN_PATCH = 0.95  # a patch this white, holding no pixel of any kind, is a margin patch: nothing to read


@dataclass
class AttentionScores:
    """Everything classify and figures need, per image; n images, L layers, H heads, R regions."""

    maps: dict[str, np.ndarray]  # view -> [L, H, G, G], mean over images
    pixel_mass: dict[str, np.ndarray] | None  # view -> [n, L, H, C]; None without masks
    mass: dict[str, np.ndarray] | None  # view -> [n, L, H, R] patch-level mass
    null_mass: dict[str, np.ndarray] | None  # view -> [n, L, H, R] the same maps on shuffled masks
    area: np.ndarray | None  # [n, R] share of patches holding each region
    null_area: np.ndarray | None  # [n, R] the same for the shuffled masks
    pixel_area: np.ndarray | None  # [n, C] each class's share of the pixels
    entropy: dict[str, np.ndarray]  # view -> [n, L, H] entropy / log(patches): 1 is uniform
    distance: np.ndarray  # [n, L, H] mean attention distance of patch queries, in patches
    uniform_distance: float  # the same for uniform attention over the patches
    margin_valued: np.ndarray | None  # [n, L, H] received mass on margin patches, value-norm weighted


def patterns(model: nn.Module, x: torch.Tensor, values: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """All heads' attention probabilities for a batch, one forward: [B, L, H, N, N].
    With `values`, also keep each layer's hook_v ([B, N, H, Dh]) there."""
    captured: dict[int, torch.Tensor] = {}
    hooks = {f"blocks.{l}.attn.hook_pattern": (lambda a, l=l: captured.__setitem__(l, a)) for l in range(len(model.blocks))}
    if values is not None:
        hooks |= {f"blocks.{l}.attn.hook_v": (lambda v, l=l: values.__setitem__(l, v)) for l in range(len(model.blocks))}
    with hooked(model, hooks):
        model(x)
    if len(captured) != len(model.blocks):
        raise RuntimeError(f"captured attention from {len(captured)} of {len(model.blocks)} blocks")
    stacked = torch.stack([captured[l] for l in range(len(model.blocks))], dim=1)
    worst = (stacked.sum(-1) - 1).abs().max().item()
    if worst > ROW_SUM_TOLERANCE:
        raise RuntimeError(f"captured attention rows sum to 1 +- {worst:.2g}: not softmax probabilities")
    return stacked


def normalised(d: torch.Tensor) -> torch.Tensor:
    return d / d.sum(-1, keepdim=True)


def views(a: torch.Tensor, prefix: int, chirp: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """[B, L, H, N, N] probabilities -> view -> [B, L, H, P]; chirp: [B, P] chirp-patch indicator."""
    patch_rows = a[..., prefix:, prefix:]  # [B, L, H, P(query), P(key)]
    out = {"received": normalised(patch_rows.mean(-2)), "cls": normalised(a[..., 0, prefix:])}
    if chirp is not None:
        weights = chirp / chirp.sum(-1, keepdim=True).clamp_min(1)  # [B, P]: mean over chirp queries
        out["from_chirp"] = normalised(torch.einsum("bq,blhqk->blhk", weights, patch_rows))
    return out


def entropy(d: torch.Tensor) -> np.ndarray:
    return (-(d * d.clamp_min(1e-12).log()).sum(-1) / np.log(d.shape[-1])).numpy()


def grid_distances(grid: tuple[int, int]) -> torch.Tensor:
    """[P, P] Euclidean distances between patch centres, in patches."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], -1).float()
    return torch.cdist(centres, centres)


def mean_distance(a: torch.Tensor, prefix: int, distances: torch.Tensor) -> np.ndarray:
    """Mean attention distance (Dosovitskiy et al. 2021, Fig. 7) over patch queries: [B, L, H]."""
    patch_rows = normalised(a[..., prefix:, prefix:])
    return (patch_rows * distances).sum(-1).mean(-1).numpy()


def region_indicators(fractions: np.ndarray) -> np.ndarray:
    """[B, G, G, C] pixel shares -> [B, P, R] 1 where a patch holds any pixel of a region."""
    f = np.asarray(fractions, np.float32).reshape(len(fractions), -1, len(CLASSES))
    kinds = np.stack([f[..., [CLASS_ID[c] for c in classes]].sum(-1) > 0 for classes in KINDS.values()], -1)
    margin = (f[..., CLASS_ID["margin"]] >= MARGIN_PATCH) & ~kinds.any(-1)  # white, and no pixel of any kind
    return np.concatenate([kinds, margin[..., None]], -1).astype(np.float32)


def value_output_norms(model: nn.Module, values: dict[int, torch.Tensor]) -> torch.Tensor:
    """||v_j W_O^h|| per layer, head and token (Kobayashi et al. 2020): [B, L, H, N]."""
    norms = []
    for l, block in enumerate(model.blocks):
        v = values[l]  # [B, N, H, Dh]
        w_o = block.attn.proj.weight.view(-1, v.shape[2], v.shape[3])  # [D, H, Dh]
        norms.append(torch.einsum("bnhd,ehd->bhne", v, w_o).norm(dim=-1))
    return torch.stack(norms, 1)


def valued_received(a: torch.Tensor, norms: torch.Tensor, prefix: int) -> torch.Tensor:
    """Received view with each key's attention scaled by its value-output norm: [B, L, H, P]."""
    weighted = normalised(a[..., prefix:, prefix:] * norms[..., None, prefix:])
    return normalised(weighted.mean(-2))


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point: image i is scored against image out[i]'s masks."""
    if n < 2:
        raise StageError("the shuffle null needs at least 2 test images (attention.max_images)")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, int)
    out[order] = np.roll(order, -1)
    return out


def region_scores(maps: dict[str, np.ndarray], fractions: np.ndarray, regions: np.ndarray, seed: int) -> dict[str, Any]:
    """Per-image scores of per-image maps (view -> [n, L, H, P]) against the masks (pixel shares
    [n, G, G, C] and region_indicators [n, P, R]), and against a derangement of them (the shuffle null)."""
    n = len(fractions)
    f = np.asarray(fractions, np.float32).reshape(n, -1, len(CLASSES))  # [n, P, C]
    shuffled = derangement(n, seed)
    return dict(
        pixel_mass={v: np.einsum("nlhp,npc->nlhc", d, f) for v, d in maps.items()},
        mass={v: np.einsum("nlhp,npr->nlhr", d, regions) for v, d in maps.items()},
        null_mass={v: np.einsum("nlhp,npr->nlhr", d, regions[shuffled]) for v, d in maps.items()},
        area=regions.mean(1), null_area=regions[shuffled].mean(1), pixel_area=f.mean(1),
    )


@torch.inference_mode()
def score(model: nn.Module, images: np.ndarray, fractions: np.ndarray | None, batch_size: int, seed: int) -> AttentionScores:
    """Run the test images once, in batches; keep every view per image, then score them."""
    model.eval()
    prefix, grid = model.num_prefix_tokens, tuple(model.patch_embed.grid_size)
    if fractions is not None and fractions.shape[1:3] != grid:
        raise StageError(f"patch fractions are on a {fractions.shape[1:3]} grid, the model's is {grid}")
    distances = grid_distances(grid)
    regions = None if fractions is None else region_indicators(fractions)  # [n, P, R]
    per_image, entropies, distance, margin_valued = {}, {}, [], []
    for start in tqdm(range(0, len(images), batch_size), desc="attention", unit="batch"):
        stop = min(start + batch_size, len(images))
        values: dict[int, torch.Tensor] = {}
        a = patterns(model, to_input(images[start:stop], device_of(model)), values).cpu()
        chirp = None if regions is None else torch.from_numpy(regions[start:stop, :, 0])
        for view, d in views(a, prefix, chirp).items():
            per_image.setdefault(view, []).append(d.numpy())
            entropies.setdefault(view, []).append(entropy(d))
        distance.append(mean_distance(a, prefix, distances))
        if regions is not None:
            norms = value_output_norms(model, {l: v.cpu() for l, v in values.items()})
            margin = torch.from_numpy(regions[start:stop, :, -1])
            margin_valued.append(torch.einsum("blhp,bp->blh", valued_received(a, norms, prefix), margin).numpy())
    maps = {v: np.concatenate(d) for v, d in per_image.items()}  # view -> [n, L, H, P]
    empty = dict.fromkeys(("pixel_mass", "mass", "null_mass", "area", "null_area", "pixel_area"))
    return AttentionScores(
        maps={v: d.mean(0).reshape(*d.shape[1:3], *grid) for v, d in maps.items()},
        entropy={v: np.concatenate(e) for v, e in entropies.items()},
        distance=np.concatenate(distance), uniform_distance=float(distances.mean()),
        margin_valued=np.concatenate(margin_valued) if margin_valued else None,
        **(empty if fractions is None else region_scores(maps, fractions, regions, seed)),
    )


def region_table(s: AttentionScores, pooling: str) -> pd.DataFrame:
    """One row per view, layer, head and mask class (1-based): pixel-level mass, area share and
    enrichment, mean over images, and whether the view reaches the output under `pooling`."""
    mean_area = s.pixel_area.mean(0)
    rows = []
    for view, mass in s.pixel_mass.items():
        mean_mass, sd_mass = mass.mean(0), mass.std(0)
        for (l, h, c), m in np.ndenumerate(mean_mass):
            rows.append({
                "view": view, "reaches_output": view_reaches_output(view, pooling), "layer": l + 1, "head": h + 1,
                "class": CLASSES[c], "mass": m, "area_share": mean_area[c],
                "enrichment": m / mean_area[c] if mean_area[c] > 0 else np.nan, "mass_sd": sd_mass[l, h, c],
            })
    return pd.DataFrame(rows)


def head_table(s: AttentionScores) -> pd.DataFrame:
    """One row per head: mean normalised entropy per view, mean attention distance (patches)."""
    layers, heads = s.distance.shape[1:]
    e = {v: x.mean(0) for v, x in s.entropy.items()}
    distance = s.distance.mean(0)
    return pd.DataFrame([
        {"layer": l + 1, "head": h + 1, **{f"entropy_{v}": e[v][l, h] for v in e},
         "distance": distance[l, h], "distance_ratio": distance[l, h] / s.uniform_distance}
        for l in range(layers) for h in range(heads)
    ])


def scores_arrays(s: AttentionScores) -> dict[str, np.ndarray]:
    """The per-image arrays classify reads, flat for np.savez (keys like mass_received)."""
    out = {"regions": np.array(REGIONS), "distance": s.distance, "uniform_distance": np.array(s.uniform_distance)}
    out |= {f"entropy_{v}": e for v, e in s.entropy.items()}
    if s.mass is not None:
        out |= {f"mass_{v}": m for v, m in s.mass.items()} | {f"null_mass_{v}": m for v, m in s.null_mass.items()}
        out |= {"area": s.area, "null_area": s.null_area, "margin_valued": s.margin_valued}
    return out


@torch.inference_mode()
def per_image_maps(model: nn.Module, images: np.ndarray, fractions: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every view of every head for a few images: view -> [n, L, H, G, G] (for figures)."""
    chirp = None if fractions is None else torch.from_numpy(region_indicators(fractions)[..., 0])
    per_view = views(patterns(model.eval(), to_input(images, device_of(model))).cpu(), model.num_prefix_tokens, chirp)
    return {v: d.reshape(*d.shape[:3], *model.patch_embed.grid_size).numpy() for v, d in per_view.items()}
