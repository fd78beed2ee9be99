"""Activation patching: the identities that any correct patching must satisfy."""

import copy

import numpy as np
import pytest
import torch

from vitheads.interp.cache import ActivationCache, run_with_cache
from vitheads.interp.hooked import HookedViT
from vitheads.interp.patching import attribution_patching, kv_patched_layer, patched_layer, patched_output
from vitheads.model.vit import to_input


@pytest.fixture
def passes(tiny_model):
    model = tiny_model()
    with torch.inference_mode():
        return model, *(run_with_cache(model, x) for x in batches())


def batches() -> list[torch.Tensor]:
    """Two batches of 4 random images: the target's and the source's."""
    rng = np.random.default_rng(0)
    return [to_input(rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)) for _ in range(2)]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_from_the_same_images_changes_nothing(passes, layer):
    model, target, _ = passes
    for heads in ([0], [1, 2], [0, 1, 2]):
        torch.testing.assert_close(
            patched_output(model, target, target, layer, heads), target.output, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_block_is_its_input_plus_what_its_attention_and_mlp_write(tiny_model, layer):
    """The cache's parts add up: the stream after block l is the stream entering it plus the attention's
    write plus the MLP's write, and running from the block's cached input, or from its cached head outputs,
    gives the model's output."""
    model = tiny_model()
    hooked = HookedViT(model)
    points = ("hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
    with torch.inference_mode():
        cache = run_with_cache(model, batches()[0], points)
        resid, z = cache.resid_pre[layer], cache.z[layer]
        after = cache[f"blocks.{layer}.hook_resid_post"]
        attn_out, mlp_out = cache[f"blocks.{layer}.hook_attn_out"], cache[f"blocks.{layer}.hook_mlp_out"]
        torch.testing.assert_close(resid + attn_out + mlp_out, after, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hooked.attention_write(layer, z), attn_out, atol=0, rtol=0)
        writes = hooked.head_writes(layer, z).sum(2) + hooked.attention_bias(layer)  # [B, N, D]
        torch.testing.assert_close(writes, attn_out, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(hooked.run(resid=resid, start_at_layer=layer), cache.output, atol=1e-6, rtol=0)
        from_z = hooked.run(resid=resid, z=z, start_at_layer=layer)
        torch.testing.assert_close(from_z, cache.output, atol=1e-6, rtol=0)


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
    stacked = patched_layer(model, target, source, layer, max_rows=max_rows)
    assert stacked.shape == (3, 4, 3)
    for h in range(3):
        torch.testing.assert_close(stacked[h], patched_output(model, target, source, layer, [h]), atol=1e-5, rtol=1e-5)


def test_attribution_patching_is_the_first_order_term_of_exact_patching(passes):
    """For a source close to the target the linear estimate matches exact patching to first order; for
    the unrelated source images it still ranks the heads that move the output most."""
    model, target, source = passes
    model64 = copy.deepcopy(model).double()  # float64: the second-order term, not rounding, sets the gap
    with torch.inference_mode():
        t64, s64 = (run_with_cache(model64, x.double()) for x in batches())
    near_z = {f"blocks.{l}.attn.hook_z": t + 1e-4 * (s - t) for l, (t, s) in enumerate(zip(t64.z, s64.z))}
    near = ActivationCache(t64.store | near_z, t64.output)
    estimate = attribution_patching(model64, t64, near)  # [L, H, B, T]
    for layer in range(3):
        exact = patched_layer(model64, t64, near, layer) - t64.output  # [H, B, T]
        torch.testing.assert_close(estimate[layer], exact, rtol=1e-3, atol=1e-12)
    far = attribution_patching(model, target, source)
    exact_far = torch.stack([patched_layer(model, target, source, l) - target.output for l in range(3)])
    assert far.shape == exact_far.shape == (3, 3, 4, 3)
    top_exact = exact_far.abs().mean((2, 3)).flatten().argmax()
    assert far.abs().mean((2, 3)).flatten().topk(3).indices.tolist().count(top_exact.item()) == 1


def test_patching_a_subset_of_heads_matches_patching_all(passes):
    model, target, source = passes
    torch.testing.assert_close(
        patched_layer(model, target, source, 1, heads=[2, 0]),
        patched_layer(model, target, source, 1)[[2, 0]],
        atol=1e-6,
        rtol=1e-6,
    )


def qkv_swap_hook(layer_source_qkv: torch.Tensor, head: int, tokens: torch.Tensor, heads: int, dim: int):
    """A forward hook on blocks[l].attn.qkv that puts the source's keys and values of one head at `tokens`
    into its output, written directly on the fused [B, N, 3 * D] layout (query, key, value blocks of D)."""
    head_dim = dim // heads

    def hook(module, args, output):
        out = output.clone()
        for part in (1, 2):  # keys, values
            cols = slice(part * dim + head * head_dim, part * dim + (head + 1) * head_dim)
            out[:, :, cols] = torch.where(tokens[..., None], layer_source_qkv[:, :, cols], out[:, :, cols])
        return out

    return hook


@pytest.mark.parametrize("layer", [0, 2])
def test_key_value_patching_matches_a_forward_with_the_keys_and_values_swapped(passes, layer):
    """The direct computation: run the target images with one head's keys and values at the element's
    tokens overwritten, inside the model's own forward, by those of the source's pass."""
    model, target, source = passes
    x_target, x_source = batches()
    tokens = torch.zeros(4, 17, dtype=torch.bool)
    tokens[:, [1, 2, 5, 9]] = True  # four patch tokens, CLS (0) kept
    captured = {}
    handle = model.blocks[layer].attn.qkv.register_forward_hook(lambda m, a, out: captured.__setitem__("qkv", out))
    with torch.inference_mode():
        model(x_source)
    handle.remove()
    outputs, z_change = kv_patched_layer(model, target, source, layer, tokens)
    for head in range(3):
        hook = qkv_swap_hook(captured["qkv"], head, tokens, 3, 24)
        handle = model.blocks[layer].attn.qkv.register_forward_hook(hook)
        with torch.inference_mode():
            expected = model(x_target)
        handle.remove()
        torch.testing.assert_close(outputs[head], expected, atol=1e-5, rtol=1e-5)
    assert z_change.shape == (3, 4, 17, 8) and z_change.abs().max() > 0
    none = torch.zeros_like(tokens)
    same, unchanged = kv_patched_layer(model, target, source, layer, none)
    torch.testing.assert_close(same, target.output.expand(3, -1, -1), atol=1e-5, rtol=1e-5)
    assert unchanged.abs().max() < 1e-5
