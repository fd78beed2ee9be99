"""Rendered images and their masks: each class covers the pixels it claims, and only those."""

from dataclasses import replace

import numpy as np
import pytest

from vitheads.data.chirps import (
    DURATION_S,
    MAX_FREQ_HZ,
    N_FREQ_BINS,
    N_TIME_BINS,
    bin_centres,
    sample_chirp,
    spectrogram,
)
from vitheads.data.furniture import Distortions
from vitheads.data.rendering import PlotRenderer, title_for
from vitheads.names import CLASS_ID

SIZE = 160


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114]) / 255


def render_many(renderer: PlotRenderer, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        chirp = sample_chirp(rng)
        image, mask = renderer.render(spectrogram(chirp, rng), chirp, title_for(i + 1, chirp))
        yield chirp, image, mask


@pytest.fixture(scope="module")
def full() -> PlotRenderer:
    return PlotRenderer(SIZE, Distortions())


def axes_rows_cols(mask):
    rows, cols = np.nonzero(np.isin(mask, [CLASS_ID["background"], CLASS_ID["chirp"]]))
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_image_is_rendered_at_model_size(full):
    _, image, mask = next(render_many(full, 1))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert mask.shape == (SIZE, SIZE)


def test_chirp_mask_lies_on_the_brightest_ridge(full):
    """The mask sits where the ridge is brightest: shifting it by a pixel or more makes it dimmer."""
    for chirp, image, mask in render_many(full, 20):
        light = luminance(image)
        chirp_px, background_px = mask == CLASS_ID["chirp"], mask == CLASS_ID["background"]
        assert chirp_px.sum() >= 4
        # viridis grows brighter with value: the ridge outshines nearly all of the noise
        assert light[chirp_px].mean() > np.quantile(light[background_px], 0.95)
        inside = chirp_px | background_px
        brightness = {}
        for dy in range(-6, 7):
            for dx in (-3, 0, 3) if dy == 0 else (0,):
                shifted = np.roll(chirp_px, (dy, dx), axis=(0, 1)) & inside
                if shifted.sum() >= 0.8 * chirp_px.sum():  # shifts off the spectrogram say nothing
                    brightness[(dy, dx)] = light[shifted].mean()
        best = max(brightness, key=brightness.get)
        assert abs(best[0]) <= 1 and best[1] == 0, (chirp, best)


def test_title_mask_covers_dark_text_above_the_axes_only(full):
    for _, image, mask in render_many(full, 5):
        title = mask == CLASS_ID["title"]
        top, _, left, right = axes_rows_cols(mask)
        assert np.nonzero(title)[0].max() < top, "title pixels inside or below the axes"
        dark = luminance(image) < 0.5
        assert dark[title].sum() >= 50, "title mask holds no text"
        # every dark pixel in the band above the axes (outside tick labels and frame) is title
        band = np.zeros_like(title)
        band[: top - 2, left:right] = True
        others = np.isin(mask, [CLASS_ID["tick_labels"], CLASS_ID["frame"]])
        assert not (dark & band & ~others & ~title).any()


def test_margin_holds_no_ink(full):
    """Every non-white pixel outside the spectrogram belongs to some furniture class."""
    for _, image, mask in render_many(full, 5):
        margin = mask == CLASS_ID["margin"]
        assert margin.sum() > 0.1 * mask.size
        assert luminance(image)[margin].min() > 0.75


def test_every_class_is_present_with_all_distortions(full):
    _, _, mask = next(render_many(full, 1))
    assert set(np.unique(mask)) == set(CLASS_ID.values())


def test_colorbar_mask_is_the_viridis_gradient(full):
    _, image, mask = next(render_many(full, 1))
    rows, cols = np.nonzero(mask == CLASS_ID["colorbar"])
    centre = int(np.median(cols))
    column = luminance(image)[rows.min() : rows.max() + 1, centre]
    assert column[0] > 0.7 and column[-1] < 0.25  # yellow at the top, dark purple at the bottom
    assert np.all(np.diff(column[2:-2]) <= 0.02)  # monotone from top to bottom


def test_switching_off_the_colorbar_removes_its_pixels_and_classes():
    renderer = PlotRenderer(SIZE, Distortions(colorbar=False))
    for _, image, mask in render_many(renderer, 5):
        assert not np.isin(mask, [CLASS_ID["colorbar"], CLASS_ID["colorbar_text"]]).any()
        _, _, _, right = axes_rows_cols(mask)
        strip = np.zeros_like(mask, dtype=bool)
        strip[:, right + 1 :] = True
        unlabelled = strip & (mask == CLASS_ID["margin"])
        assert unlabelled.sum() > 2 * SIZE and luminance(image)[unlabelled].min() > 0.75


def test_no_distortions_leaves_the_bare_spectrogram():
    renderer = PlotRenderer(SIZE, Distortions(False, False, False, False, False))
    for _, _, mask in render_many(renderer, 3):
        assert set(np.unique(mask)) == {CLASS_ID["background"], CLASS_ID["chirp"]}


def test_labels_match_the_rendered_chirp(full):
    """The chirp mask spans the labelled start time to end time, at the labelled frequencies."""
    to_data = full.ax.transData.inverted()
    time_px = full.ax.get_window_extent().width / DURATION_S
    for chirp, _, mask in render_many(full, 20):
        rows, cols = np.nonzero(mask == CLASS_ID["chirp"])
        points = to_data.transform(np.column_stack([cols + 0.5, SIZE - rows - 0.5]))
        tolerance = 2.5 / time_px  # the mask's half-width plus a pixel, in seconds
        assert abs(points[:, 0].min() - chirp.start_time) < tolerance
        assert abs(points[:, 0].max() - (chirp.start_time + chirp.duration)) < tolerance
        first = points[:, 0] < points[:, 0].min() + tolerance
        assert abs(np.median(points[first, 1]) - chirp.frequency_at(chirp.start_time)) < 3.0


def test_spectrogram_ridge_follows_the_labelled_frequency():
    rng = np.random.default_rng(1)
    times = bin_centres(N_TIME_BINS, DURATION_S)
    for _ in range(20):
        chirp = replace(sample_chirp(rng), noise_level=0.0)  # geometry only
        power = spectrogram(chirp, rng)
        inside = np.nonzero((times > chirp.start_time + 1) & (times < chirp.start_time + chirp.duration - 1))[0]
        for t in inside:
            peak_hz = bin_centres(N_FREQ_BINS, MAX_FREQ_HZ)[np.argmax(power[:, t])]
            assert abs(peak_hz - chirp.frequency_at(times[t])) <= MAX_FREQ_HZ / N_FREQ_BINS


def test_chirp_distributions_follow_the_paper():
    rng = np.random.default_rng(2)
    chirps = [sample_chirp(rng) for _ in range(2000)]
    start = np.array([c.start_time for c in chirps])
    duration = np.array([c.duration for c in chirps])
    band = np.array([c.end_freq - c.start_freq for c in chirps])
    assert start.min() >= 0 and start.max() <= 45 and duration.min() >= 1 and duration.max() <= 15
    assert np.abs(band).max() <= 30
    assert 0.4 < np.mean([c.kind == "linear" for c in chirps]) < 0.6


@pytest.mark.parametrize(
    "off",
    [
        {"colorbar": False},
        {"title": False, "axis_labels": False, "tick_labels": False},
        {"frame": False},
        {"title": False, "axis_labels": False, "tick_labels": False, "colorbar": False, "frame": False},
    ],
)
def test_a_kept_layout_hides_the_element_and_moves_nothing_else(off):
    """distortion.keep_layout: the spectrogram keeps the default's box (plus the 1 px a spine covered), the
    hidden elements leave no pixel and no mask class, and every pixel outside their default masks is as in
    the default render."""
    rng = np.random.default_rng(3)
    chirp = sample_chirp(rng)
    power = spectrogram(chirp, rng)
    full = PlotRenderer(128, Distortions())
    kept = PlotRenderer(128, Distortions(**off, keep_layout=True))
    (a, mask_a), (b, mask_b) = (r.render(power, chirp, title_for(1, chirp)) for r in (full, kept))
    box = lambda m: np.argwhere(np.isin(m, [CLASS_ID["background"], CLASS_ID["chirp"]]))
    grown = np.r_[box(mask_a).min(0) - box(mask_b).min(0), box(mask_b).max(0) - box(mask_a).max(0)]
    assert grown.min() >= 0 and grown.max() <= (0 if off.get("frame", True) else 1)  # a hidden spine bared 1 px
    hidden = {
        "title": ["title"],
        "axis_labels": ["axis_labels"],
        "tick_labels": ["tick_labels"],
        "colorbar": ["colorbar", "colorbar_text"],
        "frame": ["frame"],
    }
    classes = [CLASS_ID[c] for k in off for c in hidden[k]]
    if "colorbar" in off or ("axis_labels" in off and "tick_labels" in off):
        classes.append(CLASS_ID["colorbar_text"])
    assert not np.isin(mask_b, classes).any()
    changed = (a != b).any(-1)
    assert not (changed & ~np.isin(mask_a, classes + [CLASS_ID["frame"]] * ("colorbar" in off))).any()
    assert changed.any()
