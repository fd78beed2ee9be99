"""What the paired renders change (vitheads.data.pairs renders them): each variant's plot element, how it
changes, and the n pairs of one variant as arrays. Plain data, so that the interpretability engine can
read pairs without importing the renderer or matplotlib."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitheads.data.furniture import Distortions


@dataclass(frozen=True)
class Variant:
    """What a variant changes: the distractor kind, how (content: other text or colours; blank:
    painted over; moved: the follow test), the element's mask classes, the distortion it needs, and
    the renderers of its two members (vitheads.data.pairs.RESTYLES; "base" is the dataset's)."""

    kind: str
    role: str
    classes: tuple[str, ...]
    needs: str
    members: tuple[str, str] = ("base", "base")


VARIANTS = {
    "title_text": Variant("text", "content", ("title",), "title"),  # other digits and chirp-type word
    "tick_labels_text": Variant("text", "content", ("tick_labels",), "tick_labels", ("base", "renumbered")),
    "title_blank": Variant("text", "blank", ("title",), "title"),
    "tick_labels_blank": Variant("text", "blank", ("tick_labels",), "tick_labels"),
    "axis_labels_blank": Variant("text", "blank", ("axis_labels",), "axis_labels"),
    "title_moved": Variant("text", "moved", ("title",), "title", ("title_left", "title_right")),  # a short title
    "colorbar_colormap": Variant("colorbar", "content", ("colorbar",), "colorbar", ("base", "recoloured")),
    "colorbar_scale": Variant("colorbar", "content", ("colorbar_text",), "colorbar", ("base", "percent_colorbar")),
    "colorbar_blank": Variant("colorbar", "blank", ("colorbar", "colorbar_text"), "colorbar"),
    "colorbar_moved": Variant(
        "colorbar", "moved", ("colorbar", "colorbar_text"), "colorbar", ("colorbar_top", "colorbar_bottom")
    ),
    "frame_blank": Variant("frame", "blank", ("frame",), "frame"),  # spines and tick marks
    "frame_moved": Variant("frame", "moved", ("frame",), "frame", ("frame_bottom_left", "frame_top_right")),
}


def available_variants(distortions: Distortions) -> list[str]:
    return [name for name, v in VARIANTS.items() if getattr(distortions, v.needs)]


def response_variants(kind: str, variants: list[str]) -> list[str]:
    """The variants that test whether a head responds to a kind: its content swaps, or blanking where
    it has none (the frame's only content is its ink)."""
    mine = [v for v in variants if VARIANTS[v].kind == kind]
    return [v for v in mine if VARIANTS[v].role == "content"] or [v for v in mine if VARIANTS[v].role == "blank"]


def moved_variant(kind: str, variants: list[str]) -> str | None:
    return next((v for v in variants if VARIANTS[v].kind == kind and VARIANTS[v].role == "moved"), None)


@dataclass
class PairSet:
    """n pairs of one variant: images [n, 2, S, S, 3]; patch-level regions [n, P] bool: the changed
    element's patches, and (moved elements) the patches it left and those it reached."""

    variant: str
    images: np.ndarray
    element: np.ndarray
    old: np.ndarray
    new: np.ndarray
    outside_changes: int  # the most pixels any pair changes outside its element (0: valid pairs)

    @property
    def moved(self) -> bool:
        return VARIANTS[self.variant].role == "moved"
