"""What the paired renders change (vitheads.data.pairs renders them): each variant's plot element, how it
changes, and the n pairs of one variant as arrays. Plain data, so that the interpretability engine can
read pairs without importing the renderer or matplotlib."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitheads.data.cues import CUE_KINDS, cue_classes
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
    "title_text": Variant("text", "content", ("title",), "title"),  # another image number of as many digits
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
    "frame_grey": Variant("frame", "content", ("frame",), "frame"),  # spines and ticks dark grey: no white gap
    "frame_blank": Variant("frame", "blank", ("frame",), "frame"),  # spines and tick marks
    "frame_moved": Variant("frame", "moved", ("frame",), "frame", ("frame_bottom_left", "frame_top_right")),
    # Controls. A line of the spine's length and ink where no element is (the top margin): do frame responders
    # respond to any line? A bright blob in the spectrogram away from the chirp: do chirp heads follow brightness?
    "margin_line": Variant("frame", "control", (), "frame"),
    "blob": Variant("chirp", "blob", (), ""),
}


# Planted cues (vitheads.data.cues): the cue's value moved, nothing else; only where the dataset has the cue.
CUE_VARIANTS = {f"{kind}_cue": Variant(kind, "cue", cue_classes(kind), kind) for kind in CUE_KINDS}


def variant_spec(name: str) -> Variant:
    return VARIANTS[name] if name in VARIANTS else CUE_VARIANTS[name]


CONTROL_ROLES = ("control", "blob")


def available_variants(distortions: Distortions, planted: tuple[str, ...] = (), controls: bool = True) -> list[str]:
    """The variants this plot allows: the element each changes is drawn (the controls only with `controls`);
    and the planted kinds' cues."""
    drawn = [
        name
        for name, v in VARIANTS.items()
        if (not v.needs or getattr(distortions, v.needs)) and (controls or v.role not in CONTROL_ROLES)
    ]
    return drawn + [f"{k}_cue" for k in planted]


def response_variants(kind: str, variants: list[str]) -> list[str]:
    """The variants that test whether a head responds to a kind: its content swaps (the frame's: its ink
    painted dark grey), or blanking where there are none."""
    mine = [v for v in variants if variant_spec(v).kind == kind]
    return [v for v in mine if variant_spec(v).role == "content"] or [
        v for v in mine if variant_spec(v).role == "blank"
    ]


def cue_variant(kind: str, variants: list[str]) -> str | None:
    return next((v for v in variants if variant_spec(v).kind == kind and variant_spec(v).role == "cue"), None)


def patched_variants(variants: list[str]) -> list[str]:
    """The variants whose pairs are patched: every kind's response variants and the planted cues'."""
    kinds = dict.fromkeys(variant_spec(v).kind for v in variants)
    tested = {v for kind in kinds for v in response_variants(kind, variants)}
    return [v for v in variants if v in tested or variant_spec(v).role == "cue"]


def moved_variant(kind: str, variants: list[str]) -> str | None:
    return next((v for v in variants if variant_spec(v).kind == kind and variant_spec(v).role == "moved"), None)


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
        """Whether attention can follow something from member A to member B: a moved element, or the blob."""
        return variant_spec(self.variant).role in ("moved", "blob")
