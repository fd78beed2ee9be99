"""The seed author's ablation protocol, emulated: checked against a direct, step-by-step rewrite."""

import copy

import numpy as np
import torch
from conftest import TINY_MODEL, make_tiny_model

from vitheads.analysis.ablation import author_comparison, author_table
from vitheads.interp.author_protocol import author_sweep
from vitheads.model.vit import predict


def tiny_setup():
    model = make_tiny_model(depth=6)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y_raw = rng.uniform(0, 100, (12, 3))  # seconds and Hz, never z-scored: as the author's loss compares them
    return model, images, y_raw


def direct_sweep(model, images, y_raw):
    """The author's loop as written: record the loss, then zero row `head` of W_q, W_k, W_v, never restore."""
    damaged, losses = copy.deepcopy(model), []
    for block in damaged.blocks:
        q, k, v = block.attn.qkv.weight.chunk(3)  # views into the fused weight
        for head in range(block.attn.num_heads):
            losses.append(float(np.mean((predict(damaged, images) - y_raw) ** 2)))
            with torch.no_grad():
                for matrix in (q, k, v):
                    matrix[head] = 0
    return damaged, losses


def test_emulation_matches_the_direct_rewrite_and_leaves_the_model_alone():
    model, images, y_raw = tiny_setup()
    before = copy.deepcopy(model.state_dict())
    table = author_table(author_sweep(model, images, y_raw))
    damaged, losses = direct_sweep(model, images, y_raw)
    np.testing.assert_allclose(table["loss"], losses, rtol=1e-5)
    assert np.isclose(table["loss"].iloc[0], np.mean((predict(model, images) - y_raw) ** 2), rtol=1e-6)
    assert table["increase_pct"].iloc[0] == 0, "the first head's loss is the baseline"
    assert list(table[["layer", "head"]].iloc[4]) == [2, 2]
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"

    d, heads = TINY_MODEL["embed_dim"], TINY_MODEL["num_heads"]
    for l, block in enumerate(damaged.blocks):
        weight, original = block.attn.qkv.weight, before[f"blocks.{l}.attn.qkv.weight"]
        zeroed = [r for start in (0, d, 2 * d) for r in range(start, start + heads)]
        kept = [r for r in range(3 * d) if r not in zeroed]
        assert (weight[zeroed] == 0).all() and torch.equal(weight[kept], original[kept])
        assert torch.equal(block.attn.qkv.bias, before[f"blocks.{l}.attn.qkv.bias"]), "biases untouched"


def test_comparison_reads_layers_1_3_and_6():
    model, images, y_raw = tiny_setup()
    table = author_table(author_sweep(model, images, y_raw))
    result = author_comparison(table)
    early = table[table["layer"] <= 3]["increase_pct"]
    assert result["early_layers_1_3_mean_pct"] == round(float(early.mean()), 5)
    assert result["last_head_increase_pct"] == round(float(table["increase_pct"].iloc[-1]), 5)
    assert author_comparison(table[table["layer"] <= 4]) == {}, "no layer 6, no comparison"
