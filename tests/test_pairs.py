"""Paired renders: each pair differs inside its changed element only, and does differ there."""

import numpy as np
import pytest

from vitheads.chirps import sample_chirp, spectrogram
from vitheads.generation import image_rng
from vitheads.names import CLASS_ID
from vitheads.pairs import VARIANTS, PairRenderer, available_variants
from vitheads.rendering import Distortions


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


def test_a_moved_title_moves_its_mask():
    renderer = PairRenderer(128, Distortions())
    rng = image_rng(1, "test", 3)
    chirp = sample_chirp(rng)
    pair = renderer.pair("title_moved", spectrogram(chirp, rng), chirp, 3)
    cols = [np.nonzero(m == CLASS_ID["title"])[1] for m in pair.masks]
    assert cols[0].max() < cols[1].min()  # left, then right: no column in common


def test_variants_follow_the_distortions():
    assert available_variants(Distortions(title=False, colorbar=False)) == ["tick_labels_blank", "axis_labels_blank", "frame_blank"]
