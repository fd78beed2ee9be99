"""Paired renders (what each variant changes: vitheads.data.variants): a test image and a variant with
the same spectrogram and layout that differs in one plot element only (its text, its colours, blanked,
or moved), each with its mask. A variant's restyled renderer changes its artists after the layout is
fixed, so nothing else moves.

The renderer knows every element's geometry, so a pair isolates one distractor: a head whose output
changes between the two processes that element; one whose attention moves with it follows it.
`changed_region` is the union of the element's masks in both images (also under the title's box, and
for the colorbar the frame ink around it); `outside_changes` counts the pixels that differ anywhere
else (0 for a valid pair; tests/test_pairs.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.ticker import FuncFormatter

from vitheads import threads
from vitheads.data.chirps import DURATION_S, MAX_FREQ_HZ, Chirp, sample_chirp, spectrogram
from vitheads.data.cues import CueContext, apply_cues
from vitheads.data.furniture import Distortions
from vitheads.data.generation import image_rng
from vitheads.data.regions import patch_any
from vitheads.data.rendering import PlotRenderer, bbox_pixels, title_for
from vitheads.data.variants import PairSet, variant_spec
from vitheads.names import CLASS_ID
from vitheads.outputs import StageError

BACKGROUND_RGB = 255  # the figure's face colour: white
GREY_RGB = 96  # frame_grey: black ink lifted to this grey
OTHER_COLORMAP = "magma"
SHORT_TITLE = "Spectrogram {}"  # for the moved title
OUTLINE_PX = 2  # how far beyond an element's axes box its outline's antialiased pixels reach


def renumber_ticks(r: PlotRenderer) -> None:
    """The spectrogram's tick labels say other numbers at the same ticks: time /2, frequency x2."""
    r.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 2:g}"))
    r.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{2 * v:g}"))  # widest label still 3 digits


def title_side(r: PlotRenderer, side: str) -> None:
    """The title aligned with the left or right edge of the axes instead of centred."""
    r.title.set_x(0.0 if side == "left" else 1.0)
    r.title.set_horizontalalignment(side)


def colorbar_half(r: PlotRenderer, half: str) -> None:
    """The colorbar at half its height (its width kept), in the top or bottom half of its place."""
    box = r.colorbar.ax.get_position()
    r.colorbar.ax.set_box_aspect(None)
    r.colorbar.ax.set_position((box.x0, box.y0 + (box.height / 2 if half == "top" else 0), box.width, box.height / 2))


def frame_sides(r: PlotRenderer, sides: tuple[str, str]) -> None:
    """The spectrogram's frame (spines and tick marks) on two sides only; the tick labels stay."""
    for side, spine in r.ax.spines.items():
        spine.set_visible(side in sides)
    r.ax.tick_params(**{side: side in sides for side in ("left", "right", "top", "bottom")})


def pin_axis_labels(r: PlotRenderer) -> None:
    """Keep the spectrogram's axis labels where the layout put them: matplotlib re-places them beside
    the tick labels at every draw, so other tick-label text would move them."""
    for axis in (r.ax.xaxis, r.ax.yaxis):
        axis.set_label_coords(*axis.label.get_position(), transform=axis.label.get_transform())


RESTYLES = {  # changes to a renderer's artists after its layout is fixed, so the layout stays
    "recoloured": lambda r: r.colorbar.solids.set_cmap(matplotlib.colormaps[OTHER_COLORMAP]),
    "renumbered": renumber_ticks,
    "percent_colorbar": lambda r: r.colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}")),
    "title_left": lambda r: title_side(r, "left"),
    "title_right": lambda r: title_side(r, "right"),
    "colorbar_top": lambda r: colorbar_half(r, "top"),
    "colorbar_bottom": lambda r: colorbar_half(r, "bottom"),
    "frame_bottom_left": lambda r: frame_sides(r, ("left", "bottom")),
    "frame_top_right": lambda r: frame_sides(r, ("top", "right")),
}


@dataclass
class Pair:
    """Two renders of one test image: [0] the first member (the dataset's image unless the element
    moves), [1] the variant."""

    variant: str
    images: np.ndarray  # [2, S, S, 3] uint8
    masks: np.ndarray  # [2, S, S] class ids
    static_masks: np.ndarray  # [2, S, S] class ids before the title's box is painted over them
    outline_zone: np.ndarray | None = None  # [S, S] bool: where the element's outline may be drawn
    added: np.ndarray | None = None  # [S, S] bool: what a control adds outside every element (blob, margin line)

    @property
    def changed_region(self) -> np.ndarray:
        """Pixels of the changed element in either image [S, S] bool (also where the title's box covers it)."""
        masks = np.concatenate([self.masks, self.static_masks])
        region = np.isin(masks, [CLASS_ID[c] for c in variant_spec(self.variant).classes]).any(0)
        if self.outline_zone is not None:  # plus the frame pixels on and around the element's box
            region |= self.outline_zone & (masks == CLASS_ID["frame"]).any(0)
        if self.added is not None:
            region |= self.added
        return region

    def outside_changes(self) -> int:
        """Pixels that differ between the two images outside the changed element."""
        differ = (self.images[0] != self.images[1]).any(-1)
        return int((differ & ~self.changed_region).sum())


def other_title(index: int, chirp: Chirp) -> str:
    """Another test image's title of the same length: the next image number with as many digits (the chirp
    type kept), so the swap stays inside what training showed and moves no other pixel."""
    number = index + 2 if len(str(index + 2)) == len(str(index + 1)) else index
    return title_for(number, chirp)


def titles(name: str, index: int, chirp: Chirp) -> tuple[str, str]:
    """The two members' titles: the dataset's, another of the same length for title_text, a short one for
    title_moved (the full title spans the axes and has nowhere to move)."""
    if name == "title_moved":
        return (SHORT_TITLE.format(index + 1),) * 2
    title = title_for(index + 1, chirp)
    return title, other_title(index, chirp) if name == "title_text" else title


BLOB_HEIGHT, BLOB_SIGMA_BINS = 1.0, 3.0  # the chirp ridge's peak, and a round spot about 7 bins across


def blob(power: np.ndarray, chirp: Chirp, index: int) -> np.ndarray:
    """A bright gaussian spot [F, T] for the blob control, as bright as the chirp's ridge, where the spectrogram
    is farthest from the chirp on a coarse grid (seeded by the image, so the pair is repeatable)."""
    freqs, times = np.arange(power.shape[0])[:, None], np.arange(power.shape[1])[None, :]
    t_chirp = np.linspace(chirp.start_time, chirp.start_time + chirp.duration, 32) * power.shape[1] / DURATION_S
    f_chirp = chirp.frequency_at(t_chirp * DURATION_S / power.shape[1]) * power.shape[0] / MAX_FREQ_HZ
    grid = [(f, t) for f in range(16, power.shape[0] - 16, 8) for t in range(16, power.shape[1] - 16, 8)]
    far = [min(np.hypot(f - f_chirp, t - t_chirp)) for f, t in grid]
    options = [g for g, d in zip(grid, far) if d >= np.percentile(far, 75)]
    f0, t0 = options[index % len(options)]
    return BLOB_HEIGHT * np.exp(-((freqs - f0) ** 2 + (times - t0) ** 2) / (2 * BLOB_SIGMA_BINS**2))


def margin_line(r: PlotRenderer, rgb: np.ndarray, mask: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The image with a line of the top spine's length and ink drawn in the empty top margin (row 0), and the
    pixels it takes: a line where no element is."""
    spine = r.static_mask == CLASS_ID["frame"]
    cols = np.flatnonzero(spine[spine.any(1).argmax()])  # the top spine's columns
    line = np.zeros_like(spine)
    line[0, cols.min() : cols.max() + 1] = True
    out = rgb.copy()
    out[line] = 0
    return (out, mask), line


def blanked(rgb: np.ndarray, mask: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The element painted over with the figure background; its pixels become margin in the mask."""
    region = np.isin(mask, [CLASS_ID[c] for c in classes])
    rgb, mask = rgb.copy(), mask.copy()
    rgb[region] = BACKGROUND_RGB
    mask[region] = CLASS_ID["margin"]
    return rgb, mask


def greyed(rgb: np.ndarray, mask: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The element's ink in dark grey instead of black: its pixels keep their class and no white gap
    opens where it was (frame_grey, the in-distribution counterpart of frame_blank)."""
    region = np.isin(mask, [CLASS_ID[c] for c in classes])
    rgb = rgb.copy()
    rgb[region] = np.maximum(rgb[region], GREY_RGB)
    return rgb, mask


def colorbar_zone(r: PlotRenderer) -> np.ndarray:
    """Pixels of the colorbar with its ticks and text, grown by OUTLINE_PX: where its outline and tick
    marks are drawn."""
    rows, cols = bbox_pixels(r.colorbar.ax.get_tightbbox(r.canvas.get_renderer()), r.size, r.size)
    zone = np.zeros((r.size, r.size), bool)
    zone[
        max(rows.start - OUTLINE_PX, 0) : rows.stop + OUTLINE_PX,
        max(cols.start - OUTLINE_PX, 0) : cols.stop + OUTLINE_PX,
    ] = True
    return zone


class PairRenderer:
    """The dataset's renderer and, built when first needed, the restyled ones (same layout); with `cues`,
    every member shows the planted cues as the dataset drew them (vitheads.data.cues)."""

    def __init__(self, size: int, distortions: Distortions, cues: CueContext | None = None):
        self.size, self.distortions, self.cues = size, distortions, cues
        self.frame_cue = cues.plan.frame_cue if cues is not None else "tick"
        self.renderers = {"base": PlotRenderer(size, distortions, self.frame_cue)}

    @property
    def base(self) -> PlotRenderer:
        return self.renderers["base"]

    def renderer(self, name: str) -> PlotRenderer:
        if name not in self.renderers:
            r = PlotRenderer(self.size, self.distortions, self.frame_cue)
            pin_axis_labels(r)
            RESTYLES[name](r)
            r.redraw_static()
            self.renderers[name] = r
        return self.renderers[name]

    def render(self, renderer: PlotRenderer, power, chirp: Chirp, title: str, cues: np.ndarray | None = None):
        """One member: the renderer's image with the dataset's cues (or the given cue values) drawn in."""
        rgb, mask = renderer.render(power, chirp, title)
        if self.cues is not None and self.cues.plan.kinds:
            rgb = apply_cues(rgb, renderer.cue_places, self.cues.plan.kinds, cues)
        return rgb, mask

    def pair(self, name: str, power: np.ndarray, chirp: Chirp, index: int) -> Pair:
        """Test image `index` (0-based) and its variant."""
        v = variant_spec(name)
        first, second = (self.renderer(member) for member in v.members)
        title_a, title_b = titles(name, index, chirp)
        shown = self.cues.shown(index) if self.cues is not None else None
        a = self.render(first, power, chirp, title_a, shown)
        added = None
        if v.role == "blank":
            b = blanked(*a, v.classes)
        elif name == "frame_grey":
            b = greyed(*a, v.classes)
        elif v.role == "cue":
            b = self.render(first, power, chirp, title_a, self.cues.swapped(index, v.kind))
        elif name == "blob":
            # capped at the image's maximum, so that the min-max scaling and every other pixel stay as they were
            b = self.render(first, np.minimum(power + blob(power, chirp, index), power.max()), chirp, title_a, shown)
            added = (a[0] != b[0]).any(-1)
        elif name == "margin_line":
            b, added = margin_line(first, *a)
        else:
            b = self.render(second, power, chirp, title_b, shown)
        zone = colorbar_zone(first) | colorbar_zone(second) if "colorbar" in v.classes else None
        return Pair(
            name,
            np.stack([a[0], b[0]]),
            np.stack([a[1], b[1]]),
            np.stack([first.static_mask, second.static_mask]),
            zone,
            added,
        )


def render_pairs(name: str, seed: int, patch: int, n: int, renderer: PairRenderer) -> PairSet:
    """The first n test images of the generated dataset (same seed: same spectrograms) and their variants."""
    pairs: list[Pair] = []
    for index in range(n):
        rng = image_rng(seed, "test", index)
        chirp = sample_chirp(rng)
        pairs.append(renderer.pair(name, spectrogram(chirp, rng), chirp, index))
    changed = np.stack([p.changed_region for p in pairs])
    masks = np.stack([p.masks for p in pairs])  # [n, 2, S, S]
    ids = [CLASS_ID[c] for c in variant_spec(name).classes]
    in_a, in_b = (np.isin(masks[:, k], ids) for k in (0, 1))  # [n, S, S]: pixel level, so ink the element
    if pairs[0].added is not None:  # a control: what it adds appears in member B
        in_b = in_b | np.stack([p.added for p in pairs])
    left, reached = (
        patch_any(in_a & ~in_b, patch),
        patch_any(in_b & ~in_a, patch),
    )  # keeps in both members (the colorbar's
    # outline is frame too) does not hide a patch it moved into; a patch it both left and reached counts for neither
    return PairSet(
        name,
        np.stack([p.images for p in pairs]),
        patch_any(changed, patch),
        left & ~reached,
        reached & ~left,
        max(p.outside_changes() for p in pairs),
    )


def _init_worker(size: int, distortions: Distortions, cues: CueContext | None) -> None:
    global _renderer
    _renderer = PairRenderer(size, distortions, cues)


def _render_variant(job: tuple[str, int, int, int]) -> PairSet:
    return render_pairs(*job, _renderer)


def render_variants(
    variants: list[str],
    seed: int,
    size: int,
    patch: int,
    distortions: Distortions,
    n: int,
    workers: int,
    cues: CueContext | None = None,
) -> Iterator[PairSet]:
    """render_pairs of every variant, in order, from a pool of processes (one renderer each) that
    renders the next variants while the caller measures the first."""
    with threads.lean_pool(workers, _init_worker, (size, distortions, cues)) as pool:
        yield from pool.imap(_render_variant, [(v, seed, patch, n) for v in variants])


def check_reproduces(pairs: PairSet, dataset_images: np.ndarray, dataset: str) -> None:
    """Member A of every pair but the moved elements is the dataset's own test image, byte for byte."""
    n = len(pairs.images)
    if variant_spec(pairs.variant).members[0] == "base" and not np.array_equal(pairs.images[:, 0], dataset_images[:n]):
        raise StageError(
            f"paired renders of '{pairs.variant}' do not reproduce {dataset}'s test images: "
            "was the dataset rendered by another version of vitheads/data/rendering.py?"
        )
