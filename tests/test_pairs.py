"""Paired renders: each pair differs inside its changed element only, and does differ there."""

from dataclasses import replace

import numpy as np
import pytest

from vitheads.data.chirps import sample_chirp, spectrogram
from vitheads.data.cues import CueContext, CuePlan, cue_classes, cue_values, shown_index
from vitheads.data.furniture import Distortions
from vitheads.data.generation import RenderSpec, cue_meta, image_rng
from vitheads.data.pairs import PairRenderer, other_title, render_pairs, render_variants
from vitheads.data.regions import patch_any, receptive_tokens
from vitheads.data.rendering import PlotRenderer
from vitheads.data.variants import VARIANTS, available_variants
from vitheads.names import CLASS_ID
from vitheads.outputs import StageError


@pytest.fixture(scope="module", params=[64, 96, 128])
def renderer(request):
    return PairRenderer(request.param, Distortions())


@pytest.mark.parametrize("index", [0, 7])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pairs_differ_only_inside_the_changed_element(renderer, variant, index):
    rng = image_rng(1, "test", index)
    chirp = sample_chirp(rng)
    pair = renderer.pair(variant, spectrogram(chirp, rng), chirp, index)
    differ = (pair.images[0] != pair.images[1]).any(-1)
    assert pair.outside_changes() == 0
    least = 5 if variant in ("title_text", "blob") else renderer.base.size // 2  # a digit, a spot, or an element
    assert (differ & pair.changed_region).sum() > least  # the element really changed
    assert (pair.masks[0] == CLASS_ID["chirp"]).sum() == (pair.masks[1] == CLASS_ID["chirp"]).sum() > 0


def pair_of(variant, size=128, index=3):
    rng = image_rng(1, "test", index)
    chirp = sample_chirp(rng)
    return PairRenderer(size, Distortions()).pair(variant, spectrogram(chirp, rng), chirp, index)


def test_a_moved_title_moves_its_mask():
    cols = [np.nonzero(m == CLASS_ID["title"])[1] for m in pair_of("title_moved").masks]
    assert cols[0].max() < cols[1].min()  # left, then right: no column in common


def test_a_moved_colorbar_moves_its_mask_down_at_the_same_width():
    masks = pair_of("colorbar_moved").masks
    rows, cols = zip(*(np.nonzero(m == CLASS_ID["colorbar"]) for m in masks))
    assert rows[0].max() <= rows[1].min()  # top half, then bottom half (they may share the middle row)
    assert (cols[0].min(), cols[0].max()) == (cols[1].min(), cols[1].max())
    full = PairRenderer(128, Distortions()).base.static_mask == CLASS_ID["colorbar"]
    assert abs(len(rows[0]) - full.sum() / 2) < 0.1 * full.sum()


def test_a_moved_frame_leaves_the_sides_it_had():
    frame = [m == CLASS_ID["frame"] for m in pair_of("frame_moved").masks]
    rows, cols = np.nonzero(PairRenderer(128, Distortions()).base.static_mask == CLASS_ID["background"])
    inner_rows, inner_cols = slice(rows.min() + 3, rows.max() - 2), slice(cols.min() + 3, cols.max() - 2)
    left, top = (inner_rows, slice(cols.min() - 1, cols.min() + 2)), (slice(rows.min() - 1, rows.min() + 2), inner_cols)
    assert frame[0][left].any(1).all() and not frame[1][left].any()  # the left spine only in the first member
    assert frame[1][top].any(0).all() and not frame[0][top].any()  # the top spine only in the second


def test_renumbered_tick_labels_change_their_own_pixels_only():
    pair = pair_of("tick_labels_text")
    differ = (pair.images[0] != pair.images[1]).any(-1)
    labels = (pair.masks == CLASS_ID["tick_labels"]).any(0)
    assert differ[labels].sum() > 50 and (pair.masks[0] == pair.masks[1])[~labels].all()  # the axis labels stay


def test_variants_follow_the_distortions():
    assert available_variants(Distortions(title=False, colorbar=False)) == [
        "tick_labels_text",
        "tick_labels_blank",
        "axis_labels_blank",
        "frame_grey",
        "frame_blank",
        "frame_moved",
        "margin_line",
        "blob",
    ]
    assert "blob" not in available_variants(Distortions(), controls=False)


def test_pooled_renders_equal_one_process_renders_in_order():
    variants, distortions = ["title_moved", "frame_blank", "colorbar_scale"], Distortions()
    pooled = list(render_variants(variants, 1, 64, 16, distortions, 3, workers=2))
    renderer = PairRenderer(64, distortions)
    assert [s.variant for s in pooled] == variants
    for got in pooled:
        want = render_pairs(got.variant, 1, 16, 3, renderer)
        for field in ("images", "element", "old", "new"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), (got.variant, field)


def test_the_title_swap_keeps_the_title_length_so_its_box_and_the_layout_stay():
    pair = pair_of("title_text", index=8)  # "... 9 (...)" -> "... 8 (...)": image numbers of one digit
    assert (pair.masks[0] == pair.masks[1]).all()
    assert other_title(8, sample_chirp(image_rng(1, "test", 8))).startswith("Synthetic Spectrogram 8 ")
    assert other_title(98, sample_chirp(image_rng(1, "test", 98))).startswith("Synthetic Spectrogram 98 ")  # 99 -> 98


@pytest.mark.parametrize(
    "kind, plan",
    [
        ("text", CuePlan(("text", "colorbar", "frame"))),
        ("colorbar", CuePlan(("text", "colorbar", "frame"))),
        ("frame", CuePlan(("text", "colorbar", "frame"))),
        ("frame", CuePlan(("frame",), frame_cue="band")),
    ],
)
def test_a_planted_cue_changes_only_pixels_inside_its_elements_mask(kind, plan):
    """Two cue values, everything else equal: the renders differ only inside the union of both renders' masks
    of the cue's element (the premise of the planted controls), and they do differ."""
    renderer = PairRenderer(128, Distortions(), CueContext(plan, 1, 20))
    rng = image_rng(1, "test", 4)
    chirp = sample_chirp(rng)
    pair = renderer.pair(f"{kind}_cue", spectrogram(chirp, rng), chirp, 4)
    differ = (pair.images[0] != pair.images[1]).any(-1)
    inside = np.isin(pair.masks, [CLASS_ID[c] for c in cue_classes(kind)]).any(0)
    assert differ.sum() >= 2 and not (differ & ~inside).any()
    assert pair.outside_changes() == 0


def test_the_frame_cues_band_lies_under_the_spine_and_reaches_only_tokens_without_spectrogram_pixels():
    """The second frame cue form: 2 rows under the bottom spine across its width (about 160 px against the
    tick's 2), reaching through the conv stem only bottom-row tokens, none of which holds a spectrogram pixel;
    the first form's pixels are part of it, and the text cue shares its tokens (so it is planted alone)."""
    band = PlotRenderer(128, Distortions(), frame_cue="band")
    tick = PlotRenderer(128, Distortions())
    pixels = band.cue_places["frame"]
    rows = np.nonzero(pixels)[0]
    spine_rows, spine_cols = np.nonzero(band._ink(band.ax.spines["bottom"]))
    assert set(rows) == {spine_rows.max() + 1, spine_rows.max() + 2} and pixels.sum() == 2 * len(set(spine_cols))
    assert (tick.cue_places["frame"] <= pixels).all() and 140 <= pixels.sum() <= 200
    tokens = np.flatnonzero(receptive_tokens(pixels, 16, "conv"))
    spectrogram_tokens = np.flatnonzero(patch_any((band.static_mask == CLASS_ID["background"])[None], 16)[0])
    assert set(tokens) <= set(range(56, 64)) and not set(tokens) & set(spectrogram_tokens)
    changed = band.static_mask != tick.static_mask
    assert (band.static_mask[changed] == CLASS_ID["frame"]).all()  # the band adds frame pixels, nothing else
    spec = RenderSpec(1, 128, 16, Distortions(), CuePlan(("text", "frame"), frame_cue="band"))
    with pytest.raises(StageError, match=r"the text and frame cues reach the same tokens \[59, 60, 61\]"):
        cue_meta(spec, "conv")
    planted = cue_meta(replace(spec, cues=CuePlan(("text", "colorbar", "frame"))), "conv")  # the planted study's
    assert planted["tokens"]["text"] == [59, 60, 61] and planted["tokens"]["frame"] == [57, 58]
    assert set(planted["tokens"]["colorbar"]) <= {7, 15, 23, 31, 39, 47, 55, 63}  # the right-hand column
    alone = cue_meta(replace(spec, cues=CuePlan(("frame",), frame_cue="band")), "conv")
    assert alone["tokens"]["frame"] == list(tokens) and alone["frame_cue"] == "band"


def test_cue_values_are_own_in_the_planted_arm_and_another_images_in_the_control():
    planted, control = CuePlan(("text", "frame")), CuePlan(("text", "frame"), control=True)
    own = [cue_values(1, 1, i, planted.kinds) for i in range(30)]
    assert all(shown_index(planted, 1, 1, 30, i) == i for i in range(30))
    shown = [shown_index(control, 1, 1, 30, i) for i in range(30)]
    assert sorted(shown) == list(range(30)) and all(s != i for i, s in enumerate(shown))  # a derangement
    values = np.array(own)
    assert values.shape == (30, 2) and values.min() >= 0 and values.max() <= 1
    assert abs(np.corrcoef(values[:, 0], values[shown, 0])[0, 1]) < 0.5  # shown values say little about targets
