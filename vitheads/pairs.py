"""Paired renders: a test image and a variant with the same spectrogram and layout that differs in
one plot element only (its text, its colours, blanked, or moved), each with its mask.

The renderer knows every element's geometry, so a pair isolates one distractor: a head whose output
changes between the two processes that element; one whose attention moves with it follows it.
`changed_region` is the union of the element's masks in both images; `outside_changes` counts the
pixels that differ anywhere else (0 for a valid pair; tests/test_pairs.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import matplotlib
import numpy as np

from vitheads.chirps import KINDS, Chirp
from vitheads.names import CLASS_ID
from vitheads.rendering import Distortions, PlotRenderer, bbox_pixels, title_for

BACKGROUND_RGB = 255  # the figure's face colour: white
OTHER_COLORMAP = "magma"
SHORT_TITLE = "Spectrogram {}"  # for the moved title
OUTLINE_PX = 2  # how far beyond an element's axes box its outline's antialiased pixels reach


@dataclass(frozen=True)
class Variant:
    """The element a variant changes (mask classes) and the distortion it needs."""

    classes: tuple[str, ...]
    needs: str


VARIANTS = {
    "title_text": Variant(("title",), "title"),  # other digits and chirp-type word
    "title_blank": Variant(("title",), "title"),
    "title_moved": Variant(("title",), "title"),  # a short title at the left, then at the right: the follow test
    "tick_labels_blank": Variant(("tick_labels",), "tick_labels"),
    "axis_labels_blank": Variant(("axis_labels",), "axis_labels"),
    "colorbar_colormap": Variant(("colorbar",), "colorbar"),  # the gradient in another colormap (and its outline's tint)
    "colorbar_blank": Variant(("colorbar", "colorbar_text"), "colorbar"),
    "frame_blank": Variant(("frame",), "frame"),  # spines and tick marks
}


@dataclass
class Pair:
    """Two renders of one test image: [0] as in the dataset, [1] the variant."""

    variant: str
    images: np.ndarray  # [2, S, S, 3] uint8
    masks: np.ndarray  # [2, S, S] class ids
    outline_zone: np.ndarray | None = None  # [S, S] bool: where the element's outline may be tinted

    @property
    def changed_region(self) -> np.ndarray:
        """Pixels of the changed element in either image [S, S] bool."""
        region = np.isin(self.masks, [CLASS_ID[c] for c in VARIANTS[self.variant].classes]).any(0)
        if self.outline_zone is not None:  # plus the frame pixels on and around the element's box
            region |= self.outline_zone & (self.masks == CLASS_ID["frame"]).any(0)
        return region

    def outside_changes(self) -> int:
        """Pixels that differ between the two images outside the changed element."""
        differ = (self.images[0] != self.images[1]).any(-1)
        return int((differ & ~self.changed_region).sum())


def available_variants(distortions: Distortions) -> list[str]:
    return [name for name, v in VARIANTS.items() if getattr(distortions, v.needs)]


def other_title(index: int, chirp: Chirp) -> str:
    """The same title template with other digits and the other chirp-type word."""
    other_kind = KINDS[(KINDS.index(chirp.kind) + 1) % len(KINDS)]
    return title_for(index + 50000, Chirp(chirp.start_time, chirp.duration, chirp.start_freq, chirp.end_freq, other_kind, chirp.noise_level))


def blanked(rgb: np.ndarray, mask: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The element painted over with the figure background; its pixels become margin in the mask."""
    region = np.isin(mask, [CLASS_ID[c] for c in classes])
    rgb, mask = rgb.copy(), mask.copy()
    rgb[region] = BACKGROUND_RGB
    mask[region] = CLASS_ID["margin"]
    return rgb, mask


class PairRenderer:
    """The dataset's renderer, plus one whose colorbar gradient uses another colormap (same layout)."""

    def __init__(self, size: int, distortions: Distortions):
        self.base = PlotRenderer(size, distortions)
        self.recoloured = PlotRenderer(size, distortions) if distortions.colorbar else None
        if self.recoloured is not None:
            self.recoloured.colorbar.solids.set_cmap(matplotlib.colormaps[OTHER_COLORMAP])
            self.recoloured.canvas.draw()
            self.recoloured.background = self.recoloured.canvas.copy_from_bbox(self.recoloured.figure.bbox)

    def colorbar_zone(self) -> np.ndarray:
        """Pixels of the colorbar's axes box, grown by OUTLINE_PX: where its outline is drawn."""
        size = self.base.size
        rows, cols = bbox_pixels(self.base.colorbar.ax.get_window_extent(), size, size)
        zone = np.zeros((size, size), bool)
        zone[max(rows.start - OUTLINE_PX, 0) : rows.stop + OUTLINE_PX, max(cols.start - OUTLINE_PX, 0) : cols.stop + OUTLINE_PX] = True
        return zone

    @contextlib.contextmanager
    def title_at(self, side: str):
        """The title aligned with the left or right edge of the axes instead of centred."""
        title = self.base.title
        x, align = title.get_position()[0], title.get_horizontalalignment()
        title.set_x(0.0 if side == "left" else 1.0)
        title.set_horizontalalignment(side)
        try:
            yield
        finally:
            title.set_x(x)
            title.set_horizontalalignment(align)

    def pair(self, variant: str, power: np.ndarray, chirp: Chirp, index: int) -> Pair:
        """Test image `index` (0-based) and its variant. For title_moved both members carry a short
        title (the full one spans the axes and has nowhere to move): at the left, then at the right."""
        title = title_for(index + 1, chirp)
        if variant == "title_moved":
            renders = []
            for side in ("left", "right"):
                with self.title_at(side):
                    renders.append(self.base.render(power, chirp, SHORT_TITLE.format(index + 1)))
            return Pair(variant, np.stack([r[0] for r in renders]), np.stack([r[1] for r in renders]))
        rgb, mask = self.base.render(power, chirp, title)
        if variant == "title_text":
            other = self.base.render(power, chirp, other_title(index, chirp))
        elif variant == "colorbar_colormap":
            other = self.recoloured.render(power, chirp, title)
            return Pair(variant, np.stack([rgb, other[0]]), np.stack([mask, other[1]]), self.colorbar_zone())
        else:
            other = blanked(rgb, mask, VARIANTS[variant].classes)
        return Pair(variant, np.stack([rgb, other[0]]), np.stack([mask, other[1]]))
