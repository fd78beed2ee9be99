"""Paired renders: each pair differs inside its changed element only, and does differ there."""

import numpy as np
import pytest

from vitheads.data.chirps import sample_chirp, spectrogram
from vitheads.data.furniture import Distortions
from vitheads.data.generation import image_rng
from vitheads.data.pairs import PairRenderer, render_pairs, render_variants
from vitheads.data.variants import VARIANTS, available_variants
from vitheads.names import CLASS_ID


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
    assert (differ & pair.changed_region).sum() > renderer.base.size // 2  # the element really changed
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
        "frame_blank",
        "frame_moved",
    ]


def test_pooled_renders_equal_one_process_renders_in_order():
    variants, distortions = ["title_moved", "frame_blank", "colorbar_scale"], Distortions()
    pooled = list(render_variants(variants, 1, 64, 16, distortions, 3, workers=2))
    renderer = PairRenderer(64, distortions)
    assert [s.variant for s in pooled] == variants
    for got in pooled:
        want = render_pairs(got.variant, 1, 16, 3, renderer)
        for field in ("images", "element", "old", "new"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), (got.variant, field)
