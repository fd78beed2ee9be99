"""Typed results that cross from the interp layer (torch) to the analysis layer (numpy only): arrays and
plain values, one name per quantity, the same in code, result columns and docs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
class AttentionCapture:
    """Every view of every head per image, and the pattern statistics that need the full N x N rows."""

    maps: dict[str, np.ndarray]  # view -> [n, L, H, P]
    entropy: dict[str, np.ndarray]  # view -> [n, L, H] entropy / log(patches): 1 is uniform
    distance: np.ndarray  # [n, L, H] mean attention distance of patch queries, in patches
    uniform_distance: float  # the same for uniform attention over the patches
    margin_valued: np.ndarray | None  # [n, L, H] received mass on margin patches, value-norm weighted


@dataclass
class VariantMeasures:
    """Per image (and layer, head) measures of one variant (vitheads.interp.causal)."""

    sensitivity_element: np.ndarray  # [n, L, H] mean ||dz|| at the element's patch tokens
    sensitivity_elsewhere: np.ndarray  # [n, L, H] the same at the other patch tokens
    typical_norm: np.ndarray  # [n, L, H] mean ||z|| over member A's patch tokens
    squared_error: np.ndarray  # [n, T] member A's
    prediction_change: np.ndarray  # [n, T] member B minus member A (z units)
    squared_error_change: np.ndarray  # [n, T]
    follow: np.ndarray | None = None  # [n, L, H] in multiples of uniform attention (moved elements only)
    patch_prediction_change: np.ndarray | None = None  # [n_patch, L, H, 2, T] |change|, per names.PATCH_DIRECTIONS
    patch_squared_error_change: np.ndarray | None = None  # [n_patch, L, H, 2, T]
    patch_estimate: np.ndarray | None = None  # [n_patch, L, H, 2, T] attribution patching's signed estimate, every head
    kv_prediction_change: np.ndarray | None = None  # [n_patch, L, H, 2, T] |change|, keys/values patched
    kv_read: np.ndarray | None = None  # [n_patch, L, H, 2] ||dz_h|| at the element's token queries
    kv_broadcast: np.ndarray | None = None  # [n_patch, L, H, 2] ||dz_h|| at the other patch queries
    baselines: dict[str, np.ndarray] | None = None  # vitheads.interp.baselines, on the patched pairs
    route_changes: np.ndarray | None = None  # [n, 2, K, 2, T] vitheads.interp.decompose: direction, component, tokens
    frozen_attention_change: np.ndarray | None = None  # [n, T] member B with member A's attention writes, minus A
    resampled_change: np.ndarray | None = None  # [n, T] the element's tokens from another image, minus A
    resampled_route_changes: np.ndarray | None = None  # [n, 2, K, 2, T] the same split for the resampled tokens
