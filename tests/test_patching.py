"""Activation patching: the identities that any correct patching must satisfy."""

import numpy as np
import pytest
import torch

from vitheads.ablation import clean_pass, finish_block, run_from
from vitheads.model import build_model, to_input
from vitheads.patching import patched_layer, patched_output

MODEL = {"image_size": 32, "patch_size": 8, "depth": 3, "num_heads": 3, "embed_dim": 24, "mlp_ratio": 2.0,
         "pooling": "flatten", "stem": "patch", "init": "scratch"}


@pytest.fixture
def passes():
    torch.manual_seed(0)
    model = build_model(MODEL, 3).eval()
    torch.nn.init.normal_(model.head.weight, std=0.05)
    rng = np.random.default_rng(0)
    target, source = (to_input(rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)) for _ in range(2))
    with torch.inference_mode():
        return model, clean_pass(model, target), clean_pass(model, source)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_from_the_same_images_changes_nothing(passes, layer):
    model, target, _ = passes
    for heads in ([0], [1, 2], [0, 1, 2]):
        torch.testing.assert_close(patched_output(model, target, target, layer, heads), target.output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(patched_output(model, target, target, layer, [0, 1, 2], mlp=True), target.output, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_all_heads_and_the_mlp_swaps_the_layers_write(passes, layer):
    """Every head and the MLP of layer l from the source: the residual stream after layer l is the
    target's input to it plus what layer l wrote on the source images."""
    model, target, source = passes
    with torch.inference_mode():
        source_after = source.inputs[layer + 1] if layer + 1 < len(model.blocks) else finish_block(model.blocks[-1], source.inputs[-1], source.z[-1])
        expected = run_from(model, layer + 1, target.inputs[layer] + source_after - source.inputs[layer])
    torch.testing.assert_close(patched_output(model, target, source, layer, [0, 1, 2], mlp=True), expected, atol=1e-5, rtol=1e-5)


def test_patching_from_other_images_moves_the_output(passes):
    model, target, source = passes
    moved = max((patched_output(model, target, source, l, [h]) - target.output).abs().max().item() for l in range(3) for h in range(3))
    assert moved > 1e-3


@pytest.mark.parametrize("layer", [0, 2])
@pytest.mark.parametrize("max_rows", [128, 8])  # all 3 heads in one stack; stacks of 2 heads then 1 (4 images)
def test_stacked_patching_matches_one_head_at_a_time(passes, layer, max_rows):
    model, target, source = passes
    stacked = patched_layer(model, target, source, layer, max_rows)
    assert stacked.shape == (3, 4, 3)
    for h in range(3):
        torch.testing.assert_close(stacked[h], patched_output(model, target, source, layer, [h]), atol=1e-5, rtol=1e-5)
