"""The hooked pass: the same computation as timm's model, every hook point reached with its declared shape,
and edits that do what they say (checked against timm's own modules and against each other)."""

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from vitheads.data.cues import designated_heads
from vitheads.interp.cache import run_with_cache
from vitheads.interp.edits import Edit, run_copies, run_with_edits
from vitheads.interp.hooked import HookedViT, hook_names
from vitheads.interp.patching import kv_patched_layer
from vitheads.model.planted import plant
from vitheads.model.vit import to_input

B, N, H, DH, D = 2, 17, 3, 8, 24
SHAPES = {
    "hook_resid_pre": (B, N, D),
    "ln1.hook_normalized": (B, N, D),
    "attn.hook_q": (B, N, H, DH),
    "attn.hook_k": (B, N, H, DH),
    "attn.hook_v": (B, N, H, DH),
    "attn.hook_pattern": (B, H, N, N),
    "attn.hook_z": (B, N, H, DH),
    "hook_attn_out": (B, N, D),
    "hook_resid_mid": (B, N, D),
    "mlp.hook_post": (B, N, 2 * D),
    "hook_mlp_out": (B, N, D),
    "hook_resid_post": (B, N, D),
}


def images(n=B, seed=0):
    return to_input(np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


@pytest.mark.parametrize("explicit", [False, True])
def test_the_pass_is_timms_forward(explicit):
    model = make_tiny_model()
    with torch.no_grad():
        torch.testing.assert_close(HookedViT(model, explicit).run(images()), model(images()), atol=1e-6, rtol=0)


def test_a_planted_model_runs_its_key_bias_in_training_and_in_the_pass():
    """timm's own blocks with the key bias as their attention mask (training) and the hooked pass agree, and
    a -inf key stays unread: that key's value changes nothing."""
    model = plant(make_tiny_model(depth=4), {"text": [14, 15]})
    model.eval()
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(HookedViT(model).run(x), model(x), atol=1e-6, rtol=0)
        blocked = model.key_bias[:, :, 0, 15] == float("-inf")  # [L, H]: heads that may not read token 14
        designated = [(l, h) for l, h in designated_heads(["text"])["text"] if h < 3]  # heads the tiny model has
        assert blocked.sum() == 4 * 3 - len(designated) and not any(blocked[l, h] for l, h in designated)
        patterns = {}
        hooks = {f"blocks.{l}.attn.hook_pattern": (lambda a, l=l: patterns.__setitem__(l, a)) for l in range(4)}
        HookedViT(model).run(x, hooks)
        for l in range(4):
            assert patterns[l][:, blocked[l], :, 15].abs().max() == 0


def test_every_hook_point_is_reached_once_with_its_declared_shape():
    model = make_tiny_model()
    seen = []
    record = lambda name: lambda t: seen.append((name, tuple(t.shape)))
    HookedViT(model).run(images(), {name: record(name) for name in hook_names(3)})
    assert [name for name, _ in seen] == hook_names(3)
    for name, shape in seen[:-1]:
        assert shape == SHAPES[name.split(".", 2)[2]], name
    assert seen[-1] == ("hook_readout_in", (B, N, D))


def test_a_bad_hook_is_refused_naming_it():
    hooked = HookedViT(make_tiny_model())
    with pytest.raises(KeyError, match=r"blocks\.7\.attn\.hook_z"):
        hooked.run(images(), {"blocks.7.attn.hook_z": lambda z: None})
    with pytest.raises(ValueError, match=r"shape \(2, 17, 24\)"):
        hooked.run(images(), {"blocks.0.hook_mlp_out": lambda t: t[:, :, :3]})
    with pytest.raises(ValueError, match=r"Edit\.op"):
        Edit("blocks.0.attn.hook_z", "scale", torch.ones(1))


def test_zeroing_a_head_equals_zeroing_its_slice_of_the_output_projection():
    """The reference edits timm's weights: head 1 of block 2 writes nothing when its columns of proj are 0."""
    model = make_tiny_model()
    x = images()
    with torch.no_grad():
        edited = run_with_edits(HookedViT(model), [Edit("blocks.2.attn.hook_z", "zero", heads=(1,))], x=x)
        model.blocks[2].attn.proj.weight[:, DH : 2 * DH] = 0
        torch.testing.assert_close(edited, model(x), atol=1e-6, rtol=0)


def test_edits_on_tokens_and_heads_reach_only_those():
    t = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).view(2, 4, 3, 2)  # [B, N, H, Dh]
    tokens = torch.tensor([[True, False, False, True], [False, True, False, False]])
    out = Edit("x", "add", torch.full((1,), 100.0), heads=(2,), tokens=tokens).apply(t)
    changed = out != t
    assert changed[..., 0].nonzero().tolist() == [[0, 0, 2], [0, 3, 2], [1, 1, 2]]
    assert torch.equal(out[changed], t[changed] + 100)


def test_key_value_patching_by_hooks_on_keys_and_values_equals_the_one_head_shortcut():
    """Two routes through the pass: edits of hook_k and hook_v (the whole layer recomputed) against
    kv_patched_layer, which computes only the patched head's attention."""
    model = plant(make_tiny_model(depth=4), {"text": [14, 15]})  # with a key bias, which the shortcut slices
    model.eval()
    hooked = HookedViT(model)
    tokens = torch.zeros(B, N, dtype=torch.bool)
    tokens[:, [2, 9, 15]] = True
    points = ("hook_resid_pre", "attn.hook_z", "attn.hook_k", "attn.hook_v")
    with torch.inference_mode():
        target, source = (run_with_cache(model, images(seed=s), points) for s in (0, 1))
        for layer in range(4):
            shortcut, _ = kv_patched_layer(model, target, source, layer, tokens)
            swap = lambda p, h, l=layer: Edit.patch(f"blocks.{l}.attn.hook_{p}", source, (h,), tokens)
            copies = [[swap("k", h), swap("v", h)] for h in range(H)]
            by_hooks = run_copies(hooked, target, layer, copies)
            torch.testing.assert_close(by_hooks, shortcut, atol=1e-6, rtol=0)


def test_the_route_split_adds_up_to_the_whole_change_and_its_parts_are_the_writes():
    """Forward and reverse patching each sum to B's output minus A's; the writes sum to the final stream; on
    tokens the element cannot reach (nothing changed there) the embedding's share is zero."""
    from vitheads.interp.decompose import POINTS, component_writes, route_changes

    model = make_tiny_model()
    hooked = HookedViT(model)
    xa = images(seed=0)
    xb = xa.clone()
    xb[:, :, :8, 8:16] = -xb[:, :, :8, 8:16]  # one patch (token 2) changed
    with torch.inference_mode():
        a, b = (run_with_cache(hooked, x, (*POINTS, "hook_resid_post")) for x in (xa, xb))
        torch.testing.assert_close(sum(component_writes(hooked, a)), a["blocks.2.hook_resid_post"], atol=1e-5, rtol=0)
        changed = (a.resid_pre[0] - b.resid_pre[0]).abs().amax(-1) > 0  # [B, N]
        assert changed[:, 1:].sum(1).tolist() == [1, 1] and changed[0, 2]
        routes = route_changes(hooked, a, b, changed)  # [B, 2, K, 2, T]
    assert routes.shape == (B, 2, 1 + 3 * (H + 1), 2, 3)
    whole = b.output - a.output
    for direction in (0, 1):
        torch.testing.assert_close(routes[:, direction].sum((1, 2)), whole, atol=1e-6, rtol=0)
    assert routes[:, :, 0, 1].abs().max() == 0  # the embedding changed only at the changed token
    assert routes[:, :, 1:, 1].abs().max() > 0  # attention moved some of it elsewhere


def test_on_a_linear_readout_each_route_is_the_readout_of_its_write_change():
    """The linear toy: without the final LayerNorm the readout is linear in the stream, so forward and reverse
    patching agree and each component's share is the readout weight times its write's change."""
    from vitheads.interp.decompose import POINTS, component_writes, route_changes

    model = make_tiny_model()
    model.norm = torch.nn.Identity()
    hooked = HookedViT(model)
    with torch.inference_mode():
        a, b = (run_with_cache(hooked, images(seed=s), POINTS) for s in (0, 1))
        changed = torch.ones(B, N, dtype=torch.bool)
        routes = route_changes(hooked, a, b, changed)[:, :, :, 0]  # [B, 2, K, T]: every token counted as changed
        weight = model.head.weight.view(3, N - 1, D)  # [T, P, D]
        direct = [
            torch.einsum("bpd,tpd->bt", (wb - wa)[:, 1:], weight)
            for wa, wb in zip(*(component_writes(hooked, c) for c in (a, b)))
        ]
    torch.testing.assert_close(routes[:, 0], torch.stack(direct, 1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(routes[:, 1], routes[:, 0], atol=1e-6, rtol=1e-5)


def test_frozen_attention_is_member_bs_pass_with_member_as_attention_writes():
    """The reference runs timm's blocks by hand: B's embedding, each block adding A's attention write and then
    its own MLP's."""
    from vitheads.interp.decompose import POINTS, frozen_attention_change

    model = make_tiny_model()
    hooked = HookedViT(model)
    with torch.inference_mode():
        a, b = (run_with_cache(hooked, images(seed=s), POINTS) for s in (0, 1))
        change = frozen_attention_change(hooked, a, b)
        h = b.resid_pre[0]
        for block, attn_out in zip(model.blocks, a.per_layer("hook_attn_out")):
            h = h + attn_out
            h = h + block.mlp(block.norm2(h))
        expected = model.forward_head(model.norm(h)) - a.output
    torch.testing.assert_close(change, expected, atol=1e-6, rtol=0)
