"""Draw a spectrogram inside a real matplotlib figure, with a per-pixel ground-truth mask.

One `PlotRenderer` builds its figure once. Everything but the spectrogram and the title is
static, so it is drawn once and blitted back for every image; only the image and the title
are redrawn. Mask labels come from matplotlib's own geometry (artist window extents, and
`ax.transData` for the chirp curve), never from colours.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox, IdentityTransform

from vitheads.data.chirps import DURATION_S, MAX_FREQ_HZ, N_FREQ_BINS, Chirp
from vitheads.data.furniture import Distortions
from vitheads.names import CLASS_ID

DPI = 100
BASE_SIZE_PX = 160  # font sizes below are for this image size and scale with it
FONT_PT = 4.5
TICK_FONT_PT = 3.8
LINE_PT = 0.5
TICK_LENGTH_PT = 2.0
# Half-width of the chirp mask: the smoothed ridge is ~3 frequency bins at half maximum.
CHIRP_HALF_WIDTH_BINS = 1.5
BAND_PX = 2  # the frame cue's band (frame_cue 'band'): rows under the bottom spine
MIN_CHIRP_HALF_WIDTH_PX = 0.75
CURVE_POINTS = 33  # polyline vertices: the exponential sweep bends by well under a pixel between them
LAYOUT_TITLE = "Synthetic Spectrogram 99999 (exponential chirp)"


def title_for(index: int, chirp: Chirp) -> str:
    """The seed author's title: it names the image (1-based) and the chirp type."""
    return f"Synthetic Spectrogram {index} ({chirp.kind} chirp)"


def normalise(power: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]: the pixels matplotlib's autoscaling would give, with a static colorbar."""
    low, high = power.min(), power.max()
    return (power - low) / (high - low) if high > low else np.zeros_like(power)


def bbox_pixels(bbox: Bbox, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the pixels a display-space bbox touches (display y points up)."""
    c0, c1 = int(np.floor(bbox.x0)), int(np.ceil(bbox.x1))
    r0, r1 = height - int(np.ceil(bbox.y1)), height - int(np.floor(bbox.y0))
    return slice(max(r0, 0), max(min(r1, height), 0)), slice(max(c0, 0), max(min(c1, width), 0))


class PlotRenderer:
    """Renders spectrograms into one reused figure of exactly `size` x `size` pixels."""

    def __init__(self, size: int, distortions: Distortions, frame_cue: str = "tick"):
        self.size = size
        self.distortions = distortions
        scale = size / BASE_SIZE_PX
        self.font, self.tick_font = FONT_PT * scale, TICK_FONT_PT * scale
        self.line, self.tick_length = LINE_PT * scale, TICK_LENGTH_PT * scale
        self.figure = Figure(figsize=(size / DPI, size / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self.ax = self.figure.add_subplot()
        self.image = self.ax.imshow(
            np.zeros((N_FREQ_BINS, 2)),
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(0, DURATION_S, 0, MAX_FREQ_HZ),
            vmin=0.0,
            vmax=1.0,
        )
        built = distortions.laid_out
        self.colorbar = self._add_colorbar(built) if built.colorbar else None
        self._style_axes(self.ax, built)
        if built.axis_labels:
            self.ax.set_xlabel("Time (s)", fontsize=self.font, labelpad=1)
            self.ax.set_ylabel("Frequency (Hz)", fontsize=self.font, labelpad=1)
        self.title = self.ax.set_title(LAYOUT_TITLE if built.title else "", fontsize=self.font, pad=2 * scale)
        self._layout(built)
        if distortions.keep_layout:
            self._hide_switched_off()
        self.band = self._add_band() if frame_cue == "band" and distortions.frame else None
        self.image.set_animated(True)
        self.title.set_animated(True)
        self.redraw_static()

    def redraw_static(self) -> None:
        """Draw the static artists once (after a change to them; the layout stays) and keep their mask
        and the pixels blitted back for every image."""
        self.canvas.draw()
        self.static_mask = self._static_mask()
        self.cue_places = self._cue_places()
        self.canvas.draw()  # _static_mask and _cue_places drew artists one by one; restore the whole figure
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _add_colorbar(self, built: Distortions):
        colorbar = self.figure.colorbar(self.image, ax=self.ax, pad=0.03, fraction=0.08)
        colorbar.outline.set_linewidth(self.line)
        colorbar.outline.set_visible(built.frame)
        self._style_axes(colorbar.ax, built)
        if built.axis_labels:
            colorbar.set_label("Intensity", fontsize=self.font, labelpad=1)
        return colorbar

    def _hide_switched_off(self) -> None:
        """Hide the elements switched off, after the layout for all of them: the spectrogram keeps its place
        and size (distortion.keep_layout), and nothing of a hidden element is drawn."""
        d = self.distortions
        axes = [self.ax] if self.colorbar is None else [self.ax, self.colorbar.ax]
        if not d.axis_labels:
            for ax in axes:
                ax.xaxis.label.set_visible(False)
                ax.yaxis.label.set_visible(False)
        if not d.tick_labels:
            for ax in axes:
                ax.tick_params(labelbottom=False, labelleft=False, labelright=False)
        if not d.frame:
            for ax in axes:
                ax.tick_params(color=(0, 0, 0, 0))  # transparent marks of the same length: the labels stay put
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if self.colorbar is not None:
                self.colorbar.outline.set_visible(False)
        if not d.colorbar and self.colorbar is not None:
            self.colorbar.ax.set_visible(False)
            self.colorbar = None

    def _add_band(self) -> Rectangle:
        """The bottom spine drawn BAND_PX pixels thicker, below the plot only (the frame cue's second form,
        vitheads.data.cues): whole pixels under the spine's own row, across its width, so that the band
        reaches only the bottom row of tokens, which holds no spectrogram pixel."""
        self.canvas.draw()
        rows, cols = np.nonzero(self._ink(self.ax.spines["bottom"]))
        top = self.size - 1 - rows.max()  # display y (up from the bottom) of the spine's lowest pixel row
        band = Rectangle(
            (cols.min(), top - BAND_PX),
            cols.max() + 1 - cols.min(),
            BAND_PX,
            transform=IdentityTransform(),
            facecolor=self.ax.spines["bottom"].get_edgecolor(),
            linewidth=0,
            antialiased=False,
        )
        self.figure.add_artist(band)
        return band

    def _style_axes(self, ax, d: Distortions) -> None:
        ax.tick_params(labelsize=self.tick_font, length=self.tick_length if d.frame else 0, width=self.line, pad=1)
        if not d.tick_labels:
            ax.tick_params(labelbottom=False, labelleft=False, labelright=False)
        for spine in ax.spines.values():
            spine.set_linewidth(self.line)
            spine.set_visible(d.frame)

    def _layout(self, built: Distortions) -> None:
        """Fix the layout once, for the longest title, so every image shares it."""
        if built.any:
            self.figure.tight_layout(pad=0.2)
        else:
            self.ax.set_position((0, 0, 1, 1))
            self.ax.set_axis_off()

    def _visible_ticks(self, axis):
        low, high = sorted(axis.get_view_interval())
        return [t for t in axis.get_major_ticks() if low - 1e-9 <= t.get_loc() <= high + 1e-9]

    def _paint(self, mask: np.ndarray, bbox: Bbox, class_name: str) -> None:
        rows, cols = bbox_pixels(bbox, self.size, self.size)
        mask[rows, cols] = CLASS_ID[class_name]

    def _ink(self, artist) -> np.ndarray:
        """Pixels this artist alone inks: matplotlib's own rasterisation of its geometry.

        Thin lines are snapped to pixel centres by Agg, so their window extents miss or
        overshoot the drawn pixels; drawing the artist alone on a cleared canvas does not.
        """
        renderer = self.canvas.get_renderer()
        renderer.clear()
        artist.draw(renderer)
        return np.asarray(self.canvas.buffer_rgba())[..., 3] > 0

    def _static_mask(self) -> np.ndarray:
        """Label every pixel that is the same in all images, in drawing order (later wins)."""
        renderer = self.canvas.get_renderer()
        mask = np.zeros((self.size, self.size), np.uint8)
        self._paint(mask, self.ax.get_window_extent(renderer), "background")
        axes = [(self.ax, "tick_labels")]
        if self.colorbar is not None:
            self._paint(mask, self.colorbar.ax.get_window_extent(renderer), "colorbar")
            axes.append((self.colorbar.ax, "colorbar_text"))
        for ax, label_class in axes:
            for spine in ax.spines.values():
                if spine.get_visible():
                    mask[self._ink(spine)] = CLASS_ID["frame"]
            if ax is self.ax and self.band is not None:
                mask[self._ink(self.band)] = CLASS_ID["frame"]
            for axis in (ax.xaxis, ax.yaxis):
                for tick in self._visible_ticks(axis):
                    for line in (tick.tick1line, tick.tick2line):
                        if line.get_visible() and self.distortions.frame:
                            mask[self._ink(line)] = CLASS_ID["frame"]
                    for label in (tick.label1, tick.label2):
                        if label.get_visible() and label.get_text():
                            self._paint(mask, label.get_window_extent(renderer), label_class)
        for text, text_class in self._axis_label_artists():
            self._paint(mask, text.get_window_extent(renderer), text_class)
        return mask

    def _cue_places(self) -> dict[str, np.ndarray]:
        """The pixels each planted cue may shade (vitheads.data.cues), for the elements this plot has."""
        places = {}
        if self.distortions.axis_labels:
            places["text"] = self._ink(self.ax.xaxis.label)
        if self.colorbar is not None and self.distortions.tick_labels:
            labels = [t.label2 for t in self._visible_ticks(self.colorbar.ax.yaxis) if t.label2.get_visible()]
            if self.distortions.axis_labels:
                labels.append(self.colorbar.ax.yaxis.label)
            places["colorbar"] = np.any([self._ink(label) for label in labels], axis=0)
        if self.band is not None:
            places["frame"] = self._ink(self.band)
        elif self.distortions.frame:
            first = min(self._visible_ticks(self.ax.xaxis), key=lambda t: t.get_loc())
            places["frame"] = self._ink(first.tick1line) & ~self._ink(self.ax.spines["bottom"])
        return places

    def _axis_label_artists(self):
        if not self.distortions.axis_labels:
            return []
        labels = [(self.ax.xaxis.label, "axis_labels"), (self.ax.yaxis.label, "axis_labels")]
        if self.colorbar is not None:
            labels.append((self.colorbar.ax.yaxis.label, "colorbar_text"))
        return labels

    def chirp_pixels(self, chirp: Chirp) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of pixels whose centre lies within the ridge's half-width of the curve."""
        to_display = self.ax.transData
        ax_box = self.ax.get_window_extent()
        bin_px = ax_box.height / N_FREQ_BINS
        radius = max(CHIRP_HALF_WIDTH_BINS * bin_px, MIN_CHIRP_HALF_WIDTH_PX)
        t = np.linspace(chirp.start_time, chirp.start_time + chirp.duration, CURVE_POINTS)
        curve = to_display.transform(np.column_stack([t, chirp.frequency_at(t)]))
        c0, c1 = (int(np.floor(curve[:, 0].min() - radius)), int(np.ceil(curve[:, 0].max() + radius)))
        y0, y1 = (int(np.floor(curve[:, 1].min() - radius)), int(np.ceil(curve[:, 1].max() + radius)))
        cols = np.arange(max(c0, 0), min(c1 + 1, self.size))
        ys = np.arange(max(y0, 0), min(y1 + 1, self.size))
        px, py = np.meshgrid(cols + 0.5, ys + 0.5)
        near = _distance_to_polyline(np.column_stack([px.ravel(), py.ravel()]), curve) <= radius
        rows = self.size - 1 - py.ravel()[near].astype(int)
        return rows, px.ravel()[near].astype(int)

    def render(self, power: np.ndarray, chirp: Chirp, title: str) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 image [size, size, 3] and class mask [size, size] for one spectrogram."""
        self.canvas.restore_region(self.background)
        self.image.set_data(normalise(power))
        self.ax.draw_artist(self.image)
        mask = self.static_mask.copy()
        if self.distortions.title:
            self.title.set_text(title)
            self.ax.draw_artist(self.title)
            self._paint(mask, self.title.get_window_extent(self.canvas.get_renderer()), "title")
        rows, cols = self.chirp_pixels(chirp)
        on_background = mask[rows, cols] == CLASS_ID["background"]
        mask[rows[on_background], cols[on_background]] = CLASS_ID["chirp"]
        rgb = np.asarray(self.canvas.buffer_rgba())[..., :3].copy()
        return rgb, mask


def _distance_to_polyline(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Shortest distance from each point [P, 2] to the polyline through curve [M, 2]."""
    a, b = curve[:-1], curve[1:]
    ab = b - a
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    ap = points[:, None, :] - a[None, :, :]
    u = np.clip((ap * ab[None]).sum(axis=2) / length2[None], 0.0, 1.0)
    closest = a[None] + u[..., None] * ab[None]
    return np.sqrt(((points[:, None, :] - closest) ** 2).sum(axis=2)).min(axis=1)
