"""Attention maps scored against the masks (the maps come from vitheads.interp.attention).

Per image: pixel level (mass on a class = sum over patches of attention x the class's share of the
patch's pixels; the classes' masses sum to 1) and patch level (mass on the patches that hold any pixel
of a region, vitheads.data.regions.PATCH_REGIONS). The labels use patch level: a token represents its
whole patch, and pixel weighting splits a head that watches the frame's patches among margin, tick
labels and a 1-pixel spine.

Control: every patch-level mass is also scored against another image's masks (a seeded derangement
of the images), the shuffle null that separates following an element from preferring where it usually is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from vitheads.data.regions import PATCH_REGIONS
from vitheads.names import CLASSES, view_reaches_output
from vitheads.outputs import StageError


@dataclass
class RegionScores:
    """Per-image scores of per-image maps against the masks; n images, L layers, H heads, R regions."""

    pixel_mass: dict[str, np.ndarray]  # view -> [n, L, H, C]
    mass: dict[str, np.ndarray]  # view -> [n, L, H, R] patch-level mass
    null_mass: dict[str, np.ndarray]  # view -> [n, L, H, R] the same maps on shuffled masks
    area: np.ndarray  # [n, R] share of patches holding each region
    null_area: np.ndarray  # [n, R] the same for the shuffled masks
    pixel_area: np.ndarray  # [n, C] each class's share of the pixels
    auroc: dict[str, np.ndarray]  # view -> [n, L, H, R] ceiling-free: AUROC of the map against each region


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point: image i is scored against image out[i]'s masks."""
    if n < 2:
        raise StageError("the shuffle null needs at least 2 test images (attention.max_images)")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, int)
    out[order] = np.roll(order, -1)
    return out


def region_scores(maps: dict[str, np.ndarray], fractions: np.ndarray, regions: np.ndarray, seed: int) -> RegionScores:
    """Per-image scores of per-image maps (view -> [n, L, H, P]) against the masks (pixel shares
    [n, G, G, C] and region indicators [n, P, R]), and against a derangement of them (the shuffle null)."""
    n = len(fractions)
    f = np.asarray(fractions, np.float32).reshape(n, -1, len(CLASSES))  # [n, P, C]
    shuffled = derangement(n, seed)
    return RegionScores(
        pixel_mass={v: np.einsum("nlhp,npc->nlhc", d, f) for v, d in maps.items()},
        mass={v: np.einsum("nlhp,npr->nlhr", d, regions) for v, d in maps.items()},
        null_mass={v: np.einsum("nlhp,npr->nlhr", d, regions[shuffled]) for v, d in maps.items()},
        area=regions.mean(1),
        null_area=regions[shuffled].mean(1),
        pixel_area=f.mean(1),
        auroc={v: np.stack([auroc(d, regions[..., r]) for r in range(regions.shape[-1])], -1) for v, d in maps.items()},
    )


def mean_maps(maps: dict[str, np.ndarray], grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """view -> [L, H, G, G]: each view's map averaged over the images."""
    return {v: d.mean(0).reshape(*d.shape[1:3], *grid) for v, d in maps.items()}


def region_table(s: RegionScores, pooling: str) -> pd.DataFrame:
    """One row per view, layer, head and mask class (1-based): pixel-level mass, area share and
    enrichment, mean over images, and whether the view reaches the output under `pooling`."""
    mean_area = s.pixel_area.mean(0)
    rows = []
    for view, mass in s.pixel_mass.items():
        mean_mass, sd_mass = mass.mean(0), mass.std(0)
        for (l, h, c), m in np.ndenumerate(mean_mass):
            rows.append(
                {
                    "view": view,
                    "reaches_output": view_reaches_output(view, pooling),
                    "layer": l + 1,
                    "head": h + 1,
                    "class": CLASSES[c],
                    "mass": m,
                    "area_share": mean_area[c],
                    "enrichment": m / mean_area[c] if mean_area[c] > 0 else np.nan,
                    "mass_sd": sd_mass[l, h, c],
                }
            )
    return pd.DataFrame(rows)


def head_table(entropy: dict[str, np.ndarray], distance: np.ndarray, uniform_distance: float) -> pd.DataFrame:
    """One row per head: mean normalised entropy per view, mean attention distance (patches)."""
    layers, heads = distance.shape[1:]
    e = {v: x.mean(0) for v, x in entropy.items()}
    mean_distance = distance.mean(0)
    return pd.DataFrame(
        [
            {
                "layer": l + 1,
                "head": h + 1,
                **{f"entropy_{v}": e[v][l, h] for v in e},
                "distance": mean_distance[l, h],
                "distance_ratio": mean_distance[l, h] / uniform_distance,
            }
            for l in range(layers)
            for h in range(heads)
        ]
    )


def scores_arrays(
    entropy: dict[str, np.ndarray],
    distance: np.ndarray,
    uniform_distance: float,
    s: RegionScores | None,
    margin_valued: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The per-image arrays classify reads, flat for np.savez (keys like mass_received)."""
    out = {"regions": np.array(PATCH_REGIONS), "distance": distance, "uniform_distance": np.array(uniform_distance)}
    out |= {f"entropy_{v}": e for v, e in entropy.items()}
    if s is not None:
        out |= {f"mass_{v}": m for v, m in s.mass.items()} | {f"null_mass_{v}": m for v, m in s.null_mass.items()}
        out |= {f"auroc_{v}": a for v, a in s.auroc.items()}
        out |= {"area": s.area, "null_area": s.null_area, "margin_valued": margin_valued}
    return out


def auroc(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Ceiling-free attention score: per image, the probability that a patch of the region gets more attention
    than a patch outside it (0.5: no preference, 1: every region patch above every other), for scores
    [n, ..., P] against the region mask [n, P]; NaN where an image has no patch in or out of the region. Unlike
    enrichment (mass / area, at most 1 / area), it reaches 1 for a region of any size."""
    mask = np.asarray(mask, bool)
    ranks = stats.rankdata(scores, axis=-1)  # 1 = least attention; ties share their mean rank
    shape = (len(mask),) + (1,) * (scores.ndim - 2) + (mask.shape[-1],)
    inside = mask.reshape(shape)
    n1 = mask.sum(-1).reshape(shape[:-1]).astype(float)
    n0 = mask.shape[-1] - n1
    rank_sum = (ranks * inside).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


def excess_share(mass: np.ndarray, area: np.ndarray) -> np.ndarray:
    """(mass - area) / (1 - area): 0 for uniform attention, 1 for all of it on the region, whatever the
    region's share of the patches. area is [n] (broadcast over mass [n, ...]) or [n, R] (over mass [n, ..., R])."""
    area = np.asarray(area, float)
    middle = (1,) * (mass.ndim - area.ndim)
    area = area.reshape((len(area), *middle)) if area.ndim == 1 else area.reshape((len(area), *middle, area.shape[-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area < 1, (mass - area) / (1 - area), np.nan)
