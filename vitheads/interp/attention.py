"""Attention probabilities of every head, captured in one forward pass, as distributions over patches.

Views, each a distribution over the patches of one image ([B, L, H, P]), each renormalised over the
patches (the CLS key is dropped; it is one of 65 keys):
  received    attention each patch receives, averaged over all patch queries (the paper's code draws
              this); it reaches the output under every readout: every patch token is read by the flatten
              readout and feeds later layers under the others
  from_chirp  attention from the patch queries that hold the chirp (needs masks)
  cls         the CLS token's attention. With the flatten readout the CLS token is never read by the
              readout directly (forward_head drops it), so the last layer's CLS row cannot change the
              output; in earlier layers the CLS token is still read by the patch queries as a key and
              value, so its own attention reaches the output only through them.
`received` is the one definition of the received view: the attention stage scores it and the causal
stage's follow score reads it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.data.regions import region_indicators
from vitheads.interp.hooked import HookedViT
from vitheads.model.vit import device_of, to_input
from vitheads.outputs import StageError
from vitheads.records import AttentionCapture

ROW_SUM_TOLERANCE = 1e-4


def patterns(model: nn.Module, x: torch.Tensor, values: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """All heads' attention probabilities for a batch, one forward: [B, L, H, N, N].
    With `values`, also keep each layer's hook_v ([B, N, H, Dh]) there."""
    captured: dict[int, torch.Tensor] = {}
    layers = range(len(model.blocks))
    hooks = {f"blocks.{l}.attn.hook_pattern": (lambda a, l=l: captured.__setitem__(l, a)) for l in layers}
    if values is not None:
        hooks |= {f"blocks.{l}.attn.hook_v": (lambda v, l=l: values.__setitem__(l, v)) for l in layers}
    HookedViT(model).run(x, hooks)
    if len(captured) != len(model.blocks):
        raise RuntimeError(f"captured attention from {len(captured)} of {len(model.blocks)} blocks")
    stacked = torch.stack([captured[l] for l in layers], dim=1)
    worst = (stacked.sum(-1) - 1).abs().max().item()
    if worst > ROW_SUM_TOLERANCE:
        raise RuntimeError(f"captured attention rows sum to 1 +- {worst:.2g}: not softmax probabilities")
    return stacked


def normalised(d: torch.Tensor) -> torch.Tensor:
    return d / d.sum(-1, keepdim=True)


def received(a: torch.Tensor, prefix: int) -> torch.Tensor:
    """The received view: [..., N, N] probabilities -> [..., P] attention each patch receives, mean over
    patch queries, renormalised over the patches."""
    return normalised(a[..., prefix:, prefix:].mean(-2))


def views(a: torch.Tensor, prefix: int, chirp: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """[B, L, H, N, N] probabilities -> view -> [B, L, H, P]; chirp: [B, P] chirp-patch indicator."""
    out = {"received": received(a, prefix), "cls": normalised(a[..., 0, prefix:])}
    if chirp is not None:
        weights = chirp / chirp.sum(-1, keepdim=True).clamp_min(1)  # [B, P]: mean over chirp queries
        out["from_chirp"] = normalised(torch.einsum("bq,blhqk->blhk", weights, a[..., prefix:, prefix:]))
    return out


@torch.inference_mode()
def received_attention(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[B, L, H, P]: the received view of every head for a batch."""
    return received(patterns(model, x), model.num_prefix_tokens)


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


def value_output_norms(model: nn.Module, values: dict[int, torch.Tensor]) -> torch.Tensor:
    """||v_j W_O^h|| per layer, head and token (Kobayashi et al. 2020): [B, L, H, N]."""
    hooked = HookedViT(model)
    norms = [torch.einsum("bnhd,hde->bhne", values[l], hooked.w_o(l)).norm(dim=-1) for l in range(hooked.depth)]
    return torch.stack(norms, 1)  # values[l]: [B, N, H, Dh]


def valued_received(a: torch.Tensor, norms: torch.Tensor, prefix: int) -> torch.Tensor:
    """Received view with each key's attention scaled by its value-output norm: [B, L, H, P]."""
    weighted = normalised(a[..., prefix:, prefix:] * norms[..., None, prefix:])
    return normalised(weighted.mean(-2))


@torch.inference_mode()
def capture(model: nn.Module, images: np.ndarray, fractions: np.ndarray | None, batch_size: int) -> AttentionCapture:
    """Run the images once, in batches; keep every view per image and the pattern statistics."""
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
    return AttentionCapture(
        maps={v: np.concatenate(d) for v, d in per_image.items()},
        entropy={v: np.concatenate(e) for v, e in entropies.items()},
        distance=np.concatenate(distance),
        uniform_distance=float(distances.mean()),
        margin_valued=np.concatenate(margin_valued) if margin_valued else None,
    )


@torch.inference_mode()
def per_image_maps(model: nn.Module, images: np.ndarray, fractions: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every view of every head for a few images: view -> [n, L, H, G, G] (for figures)."""
    chirp = None if fractions is None else torch.from_numpy(region_indicators(fractions)[..., 0])
    per_view = views(patterns(model.eval(), to_input(images, device_of(model))).cpu(), model.num_prefix_tokens, chirp)
    return {v: d.reshape(*d.shape[:3], *model.patch_embed.grid_size).numpy() for v, d in per_view.items()}
