"""From pixel masks to the model's tokens: what each image patch holds.

Two kinds of region, on purpose different:
  PATCH_REGIONS  the kinds of vitheads.names plus `margin`, as indicators per patch (a patch holds a
                 kind if it holds any pixel of it; they overlap: 2 in 3 text patches also hold frame
                 pixels), then `<kind>_only` for each distractor kind: its patches holding no pixel of
                 another distractor kind. Attention is scored on these: a token represents its whole patch.
  PIXEL_REGIONS  the kinds plus `background` and `margin`, as pixel shares per patch (they sum to 1).
                 Direct attribution splits a patch's contribution by these.
"""

from __future__ import annotations

import numpy as np

from vitheads.names import CLASS_ID, CLASSES, DISTRACTOR_KINDS, KIND_OF, KINDS

EXCLUSIVE_REGIONS = tuple(f"{k}_only" for k in DISTRACTOR_KINDS)
PATCH_REGIONS = (*KINDS, "margin", *EXCLUSIVE_REGIONS)
PIXEL_REGIONS = (*KINDS, "background", "margin")
MARGIN_PATCH = 0.95  # a patch this white, holding no pixel of any kind, is a margin patch: nothing to read


def patch_fractions(masks: np.ndarray, patch: int) -> np.ndarray:
    """Share of each class in every patch of the model's grid: [N, G, G, C]."""
    n, size, _ = masks.shape
    grid = size // patch
    patch_id = (np.arange(size) // patch)[:, None] * grid + (np.arange(size) // patch)[None, :]
    keys = (np.arange(n)[:, None, None] * grid * grid + patch_id[None]) * len(CLASSES) + masks
    counts = np.bincount(keys.ravel(), minlength=n * grid * grid * len(CLASSES))
    return (counts.reshape(n, grid, grid, len(CLASSES)) / patch**2).astype(np.float32)


def patch_any(region: np.ndarray, patch: int) -> np.ndarray:
    """[n, S, S] bool -> [n, P] bool: patches holding any pixel of the region (row-major, as tokens)."""
    n, size, _ = region.shape
    grid = size // patch
    return region.reshape(n, grid, patch, grid, patch).any((2, 4)).reshape(n, grid * grid)


def region_indicators(fractions: np.ndarray) -> np.ndarray:
    """[B, G, G, C] pixel shares -> [B, P, R] 1 where a patch holds any pixel of PATCH_REGIONS[r]."""
    f = np.asarray(fractions, np.float32).reshape(len(fractions), -1, len(CLASSES))
    kinds = np.stack([f[..., [CLASS_ID[c] for c in classes]].sum(-1) > 0 for classes in KINDS.values()], -1)
    margin = (f[..., CLASS_ID["margin"]] >= MARGIN_PATCH) & ~kinds.any(-1)  # white, and no pixel of any kind
    distractors = kinds[..., [list(KINDS).index(k) for k in DISTRACTOR_KINDS]]  # [B, P, D]
    alone = distractors & (distractors.sum(-1, keepdims=True) == 1)
    return np.concatenate([kinds, margin[..., None], alone], -1).astype(np.float32)


def pixel_region_shares(fractions: np.ndarray) -> np.ndarray:
    """[B, G, G, C] class shares per patch -> [B, P, R] shares per PIXEL_REGIONS (summing to 1)."""
    groups = [[i for i, c in enumerate(CLASSES) if KIND_OF.get(c, c) == region] for region in PIXEL_REGIONS]
    flat = fractions.reshape(len(fractions), -1, fractions.shape[-1])
    return np.stack([flat[..., g].sum(-1) for g in groups], -1)


def receptive_tokens(pixels: np.ndarray, patch: int, stem: str) -> np.ndarray:
    """[P] bool: the tokens whose embedding can change when `pixels` ([S, S] bool) change. The patch stem
    sees its own patch; the conv stem (vitheads.model.vit.ConvStemEmbed: log2(patch) 3x3 stride-2 convs,
    padding 1, then a 1x1 conv) sees 2 x patch - 1 pixels, reaching patch - 1 pixels up and left."""
    if stem == "patch":
        return patch_any(pixels[None], patch)[0]
    seen = pixels
    for _ in range(int(np.log2(patch))):  # each conv: output j sees inputs 2j-1, 2j, 2j+1
        padded = np.pad(seen, ((1, 1), (1, 1)))
        rows = padded[:-2:2] | padded[1:-1:2] | padded[2::2]
        seen = rows[:, :-2:2] | rows[:, 1:-1:2] | rows[:, 2::2]
    return seen.ravel()
