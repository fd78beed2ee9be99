"""Activation patching between the two images of a pair, as edits of the hooked pass
(vitheads.interp.edits): one head's output (hook_z) from the source image put into the target image's
pass, or one head's keys and values at some tokens; the rest of the model recomputed from the target's
activation cache (layer l's attention is not recomputed for a head-output patch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vitheads.interp.cache import ActivationCache
from vitheads.interp.edits import STACK_ROWS, Edit, run_copies, run_with_edits
from vitheads.interp.hooked import HookedViT


def head_patch(layer: int, heads: Sequence[int], source: ActivationCache) -> Edit:
    """The edit putting `heads` of block `layer` at their output on the source images."""
    return Edit.patch(f"blocks.{layer}.attn.hook_z", source, heads)


@torch.inference_mode()
def patched_output(
    model: nn.Module, target: ActivationCache, source: ActivationCache, layer: int, heads: Sequence[int]
) -> torch.Tensor:
    """Model output [B, T] on the target images when heads `heads` of block `layer` (0-based) output
    what they output on the source images."""
    return run_copies(HookedViT(model), target, layer, [[head_patch(layer, heads, source)]])[0]


@torch.inference_mode()
def patched_layer(
    model: nn.Module,
    target: ActivationCache,
    source: ActivationCache,
    layer: int,
    heads: Sequence[int] | None = None,
    max_rows: int = STACK_ROWS,
) -> torch.Tensor:
    """Outputs [K, B, T] on the target images with each of `heads` (all of the layer's: None) in turn taking
    its output on the source images."""
    heads = range(target.z[layer].shape[2]) if heads is None else heads
    return run_copies(HookedViT(model), target, layer, [[head_patch(layer, [h], source)] for h in heads], max_rows)


def attribution_patching(model: nn.Module, target: ActivationCache, source: ActivationCache) -> torch.Tensor:
    """[L, H, B, T]: the first-order estimate of patched_layer for every head at once (attribution patching):
    the gradient of each output in the target's pass with respect to the head's output (hook_z), through
    everything downstream, dotted with the source's minus the target's head output. One forward and T
    backward passes for all heads; a screen for the exact patching, never a substitute for it."""
    with torch.inference_mode(False), torch.enable_grad():  # the caches may be inference tensors: copies
        deltas = [torch.zeros(z.shape, dtype=z.dtype, requires_grad=True) for z in target.z]  # [B, N, H, Dh] per layer
        edits = [Edit(f"blocks.{l}.attn.hook_z", "add", d) for l, d in enumerate(deltas)]
        output = run_with_edits(HookedViT(model), edits, resid=target.resid_pre[0].clone())  # [B, T]
        last = output.shape[1] - 1
        grads = [torch.autograd.grad(output[:, t].sum(), deltas, retain_graph=t < last) for t in range(last + 1)]
        change = [s.clone() - t.clone() for s, t in zip(source.z, target.z)]
        per_layer = [
            torch.stack([torch.einsum("bnhd,bnhd->hb", g[l], change[l]) for g in grads], -1) for l in range(len(deltas))
        ]
        return torch.stack(per_layer).detach()  # [L, H, B, T]


def kv_patched_z(
    hooked: HookedViT, layer: int, target_resid: torch.Tensor, source_resid: torch.Tensor, tokens: torch.Tensor, heads
) -> torch.Tensor:
    """Head outputs [K, B, N, Dh] of `heads` in the target's pass when each takes its keys and values at
    `tokens` ([B, N] bool, CLS included) from the source's pass; queries and every other key and value
    stay the target's. Only the patched heads' attention is computed."""
    q, k, v = hooked.qkv(layer, target_resid)  # [B, N, H, Dh]
    _, k_source, v_source = hooked.qkv(layer, source_resid)
    swap = tokens[:, :, None, None]  # [B, N, 1, 1]
    out = []
    for h in heads:
        one = slice(h, h + 1)
        keys = torch.where(swap, k_source[:, :, one], k[:, :, one])  # [B, N, 1, Dh]
        values = torch.where(swap, v_source[:, :, one], v[:, :, one])
        out.append(hooked.attend(layer, q[:, :, one], keys, values, heads=[h])[:, :, 0])  # [B, N, Dh]
    return torch.stack(out)


@torch.inference_mode()
def kv_patched_layer(
    model: nn.Module,
    target: ActivationCache,
    source: ActivationCache,
    layer: int,
    tokens: torch.Tensor,
    heads: Sequence[int] | None = None,
    max_rows: int = STACK_ROWS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key/value patching at the element's tokens, one head at a time: the model outputs [K, B, T] on the
    target images when head k of `layer` reads its keys and values at `tokens` ([B, N] bool) from the source
    images, and that head's own output change [K, B, N, Dh] (what it read)."""
    z = target.z[layer]  # [B, N, H, Dh]
    heads = list(range(z.shape[2])) if heads is None else list(heads)
    exact = HookedViT(model, explicit_attention=True)  # one head's softmax, as the key/value read was defined
    patched_z = kv_patched_z(exact, layer, target.resid_pre[layer], source.resid_pre[layer], tokens, heads)
    hook = f"blocks.{layer}.attn.hook_z"
    copies = [[Edit(hook, "replace", new[:, :, None], heads=(h,))] for h, new in zip(heads, patched_z)]
    outputs = run_copies(HookedViT(model), target, layer, copies, max_rows)
    return outputs, patched_z - z[:, :, heads].permute(2, 0, 1, 3)
