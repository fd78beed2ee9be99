"""Direct attribution: the parts sum to the prediction, and a silent head contributes nothing."""

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from vitheads.data.regions import pixel_region_shares
from vitheads.interp.attribution import direct_attribution, heads_by_region
from vitheads.model.vit import to_input
from vitheads.names import CLASSES


def random_model(**overrides):
    model = make_tiny_model(readout_std=None, **overrides)
    with torch.no_grad():  # non-trivial readout, final norm and projection biases
        for p in (
            model.head.weight,
            model.head.bias,
            model.norm.weight,
            model.norm.bias,
            *(b.attn.proj.bias for b in model.blocks),
        ):
            p.normal_(std=0.3)
    return model


def images(n=4):
    return to_input(np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def test_contributions_sum_to_the_prediction():
    model, x = random_model(), images()
    parts = direct_attribution(model, x)
    assert parts.heads.shape == (3, 4, 16, 3, 3)  # layers, images, patch tokens, heads, targets
    with torch.inference_mode():
        prediction = model(x)
    torch.testing.assert_close(parts.total(), prediction, atol=1e-4, rtol=1e-4)
    assert parts.heads.abs().sum() > 0.01 * prediction.abs().sum()  # the heads carry real weight


def test_a_head_with_zero_output_contributes_nothing():
    model = random_model()
    dim, head_dim = model.embed_dim, model.embed_dim // 3
    with torch.no_grad():  # head 1 of layer 2: zero values, so zero output at every token
        model.blocks[2].attn.qkv.weight[2 * dim + head_dim : 2 * dim + 2 * head_dim] = 0
        model.blocks[2].attn.qkv.bias[2 * dim + head_dim : 2 * dim + 2 * head_dim] = 0
    parts = direct_attribution(model, images())
    assert parts.heads[2, :, :, 1].abs().max() == 0
    assert parts.heads[2, :, :, 0].abs().max() > 0


def test_other_readouts_are_refused():
    with pytest.raises(ValueError, match=r"model\.pooling: flatten"):
        direct_attribution(random_model(pooling="token"), images())


def test_regions_split_each_heads_contribution_exactly():
    model, x = random_model(), images(2)
    parts = direct_attribution(model, x)
    rng = np.random.default_rng(1)
    fractions = rng.dirichlet(np.ones(len(CLASSES)), size=(2, 4, 4)).astype(np.float32)  # [B, G, G, C]
    shares = pixel_region_shares(fractions)
    np.testing.assert_allclose(shares.sum(-1), 1, rtol=1e-5)
    by_region = heads_by_region(parts, shares)  # [B, L, H, T, R]
    np.testing.assert_allclose(by_region.sum(-1), parts.heads.sum(2).permute(1, 0, 2, 3).numpy(), atol=1e-5)
