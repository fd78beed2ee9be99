"""Planted cues (the positive and negative controls): a quantity carried only by the pixels of one plot
element, so that a model trained to regress it must read that element.

Each kind's cue is a shade: the element's dark ink is lightened towards white by the cue value v in
[0, 1] (v = 0 keeps the plot's own rendering, v = 1 lightens by SHADE_RANGE), in the pixels of the
element's mask only:
  text      the x-axis label "Time (s)"
  colorbar  the colorbar's tick labels and its label "Intensity"
  frame     the tick mark at t = 0 below the spine (2 pixels at 128 px; frame_cue 'tick'), or a band of
            BAND_PX rows drawn under the bottom spine across the plot's width (frame_cue 'band': about 160
            pixels, reaching the bottom row of tokens, which the text cue shares: plant it alone)
The places are chosen so that, through the conv stem's receptive field (31 px, reaching 15 px up and
left of each token's patch), each cue reaches a few tokens that hold no spectrogram pixel of their own.

Values: one uniform draw per image and kind from a stream of its own (the chirp's draws are untouched).
A planted run adds them as targets (CUE_TARGETS); the control arm renders each image with another
image's cue values (a seeded derangement within the split), so the pixels carry nothing about the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitheads.names import CLASS_ID, CUE_TARGETS, DISTRACTOR_KINDS

CUE_KINDS = DISTRACTOR_KINDS
CUE_STREAM = 1  # the cue draws' own generator: [seed, split, index, CUE_STREAM]
SHADE_RANGE = 0.8  # v = 1 takes black ink to 80% of the way to white
# The heads a planted model reads each cue through (vitheads.model.planted): (layer, heads), 0-based, chosen
# before any planted model was trained: two heads per kind in layers 2-4, where the paper places its
# distractor detectors.
DESIGNATED = {"text": (1, (1, 6)), "colorbar": (2, (3, 9)), "frame": (3, (0, 8))}


def designated_heads(kinds) -> dict[str, list[tuple[int, int]]]:
    """kind -> [(layer, head)] (0-based) of the planted kinds."""
    return {k: [(DESIGNATED[k][0], h) for h in DESIGNATED[k][1]] for k in kinds}


@dataclass(frozen=True)
class CuePlan:
    """Which kinds carry a cue (params.yaml `plant.cues`), and whether they are shuffled (`plant.control`)."""

    kinds: tuple[str, ...] = ()
    control: bool = False
    frame_cue: str = "tick"  # the frame cue's form: 'tick' or 'band' (vitheads.data.rendering.PlotRenderer)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(CUE_TARGETS[k] for k in self.kinds)


def cue_values(seed: int, split_index: int, index: int, kinds: tuple[str, ...]) -> np.ndarray:
    """[K] the cue values of one image (the targets), one per planted kind, uniform on [0, 1]."""
    rng = np.random.default_rng([seed, split_index, index, CUE_STREAM])
    return rng.uniform(0.0, 1.0, len(DISTRACTOR_KINDS))[[DISTRACTOR_KINDS.index(k) for k in kinds]]


def shown_index(plan: CuePlan, seed: int, split_index: int, n: int, index: int) -> int:
    """Whose cue values image `index` shows: its own, or in the control arm another image's of its split."""
    if not plan.control:
        return index
    order = np.random.default_rng([seed, split_index, n, CUE_STREAM]).permutation(n)
    position = int(np.flatnonzero(order == index)[0])
    return int(order[(position + 1) % n])  # a derangement: a cycle through the permutation


TEST_SPLIT = 1  # vitheads.data.dataset.SPLITS.index("test")


@dataclass(frozen=True)
class CueContext:
    """The cues of the test split as the dataset rendered them, for paired renders."""

    plan: CuePlan
    seed: int
    n: int  # the test split's size: the control arm's derangement runs within it

    def shown(self, index: int) -> np.ndarray:
        """[K] the values test image `index` shows (its own, or in the control arm another image's)."""
        return cue_values(
            self.seed, TEST_SPLIT, shown_index(self.plan, self.seed, TEST_SPLIT, self.n, index), self.plan.kinds
        )

    def swapped(self, index: int, kind: str) -> np.ndarray:
        """The shown values with `kind`'s moved by half the range ((v + 0.5) mod 1): as far as it can be, and
        still a value the training data holds."""
        values = self.shown(index).copy()
        values[self.plan.kinds.index(kind)] = (values[self.plan.kinds.index(kind)] + 0.5) % 1.0
        return values


def shade(rgb: np.ndarray, pixels: np.ndarray, value: float) -> np.ndarray:
    """The image with `pixels` ([S, S] bool) lightened towards white by value x SHADE_RANGE."""
    out = rgb.astype(np.float32)
    out[pixels] = 255 - (255 - out[pixels]) * (1 - SHADE_RANGE * value)
    return np.rint(out).astype(np.uint8)


def apply_cues(
    rgb: np.ndarray, places: dict[str, np.ndarray], kinds: tuple[str, ...], values: np.ndarray
) -> np.ndarray:
    """Every planted kind's cue drawn into one rendered image (places: kind -> [S, S] bool pixels)."""
    for kind, value in zip(kinds, values):
        rgb = shade(rgb, places[kind], float(value))
    return rgb


def cue_classes(kind: str) -> tuple[str, ...]:
    """The mask classes a kind's cue pixels belong to."""
    return {"text": ("axis_labels",), "colorbar": ("colorbar_text",), "frame": ("frame",)}[kind]


def check_places(places: dict[str, np.ndarray], static_mask: np.ndarray) -> None:
    """Every cue pixel lies inside its element's mask (the controls' premise)."""
    for kind, pixels in places.items():
        inside = np.isin(static_mask[pixels], [CLASS_ID[c] for c in cue_classes(kind)])
        if not inside.all():
            raise ValueError(f"the {kind} cue reaches {int((~inside).sum())} pixels outside its element's mask")
