"""Activation patching: the identities that any correct patching must satisfy."""

import numpy as np
import pytest
import torch

from vitheads.interp.cache import attention_write, finish_block, mlp_write, run_from, run_with_cache
from vitheads.interp.patching import patched_layer, patched_output
from vitheads.model.vit import to_input


@pytest.fixture
def passes(tiny_model):
    model = tiny_model()
    rng = np.random.default_rng(0)
    target, source = (to_input(rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)) for _ in range(2))
    with torch.inference_mode():
        return model, run_with_cache(model, target), run_with_cache(model, source)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_from_the_same_images_changes_nothing(passes, layer):
    model, target, _ = passes
    for heads in ([0], [1, 2], [0, 1, 2]):
        torch.testing.assert_close(
            patched_output(model, target, target, layer, heads), target.output, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_block_is_its_input_plus_what_its_attention_and_mlp_write(passes, layer):
    """The cache's parts add up: the stream after block l is the stream entering it plus the attention's
    write plus the MLP's write, and finishing the block from its cached head outputs gives the same."""
    model, target, _ = passes
    block, resid, z = model.blocks[layer], target.resid_pre[layer], target.z[layer]
    with torch.inference_mode():
        after = target.resid_pre[layer + 1] if layer + 1 < len(model.blocks) else block(resid)
        parts = resid + attention_write(block, z)
        torch.testing.assert_close(parts + mlp_write(block, parts), after, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(finish_block(block, resid, z), after, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(run_from(model, layer, resid), target.output, atol=1e-5, rtol=1e-5)


def test_patching_from_other_images_moves_the_output(passes):
    model, target, source = passes
    moved = max(
        (patched_output(model, target, source, l, [h]) - target.output).abs().max().item()
        for l in range(3)
        for h in range(3)
    )
    assert moved > 1e-3


@pytest.mark.parametrize("layer", [0, 2])
@pytest.mark.parametrize("max_rows", [128, 8])  # all 3 heads in one stack; stacks of 2 heads then 1 (4 images)
def test_stacked_patching_matches_one_head_at_a_time(passes, layer, max_rows):
    model, target, source = passes
    stacked = patched_layer(model, target, source, layer, max_rows)
    assert stacked.shape == (3, 4, 3)
    for h in range(3):
        torch.testing.assert_close(stacked[h], patched_output(model, target, source, layer, [h]), atol=1e-5, rtol=1e-5)
