"""Activation patching between the two images of a pair: one head's output (hook_z) from the source
image put into the target image's forward pass, the rest of the model recomputed.

Starts from the target's activation cache (vitheads.interp.cache): layer l's attention is not
recomputed, only the rest of block l and the blocks after it, as in the ablation sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vitheads.interp.cache import STACK_ROWS, ActivationCache, finish_block, run_from, stack_groups
from vitheads.model.hooks import hooked


@torch.inference_mode()
def patched_output(
    model: nn.Module, target: ActivationCache, source: ActivationCache, layer: int, heads: Sequence[int]
) -> torch.Tensor:
    """Model output [B, T] on the target images when heads `heads` of block `layer` (0-based) output
    what they output on the source images."""
    z = target.z[layer].clone()  # [B, N, H, Dh]
    z[:, :, list(heads)] = source.z[layer][:, :, list(heads)]
    return run_from(model, layer + 1, finish_block(model.blocks[layer], target.resid_pre[layer], z))


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
    its output on the source images: the patches stacked into batches of at most max_rows rows (whole copies)."""
    z = target.z[layer]  # [B, N, H, Dh]
    heads = list(range(z.shape[2])) if heads is None else list(heads)
    outputs = []
    for group in stack_groups(len(heads), z.shape[0], max_rows):
        stacked = z.repeat(len(group), 1, 1, 1)  # [K*B, N, H, Dh]
        per_copy = stacked.view(len(group), *z.shape)  # [K, B, N, H, Dh], a view of stacked
        for k, head in enumerate(heads[group.start : group.stop]):
            per_copy[k, :, :, head] = source.z[layer][:, :, head]
        h = finish_block(model.blocks[layer], target.resid_pre[layer].repeat(len(group), 1, 1), stacked)
        outputs.append(run_from(model, layer + 1, h).view(len(group), z.shape[0], -1))
    return torch.cat(outputs)


def attribution_patching(model: nn.Module, target: ActivationCache, source: ActivationCache) -> torch.Tensor:
    """[L, H, B, T]: the first-order estimate of patched_layer for every head at once (attribution patching):
    the gradient of each output in the target's pass with respect to the head's output (hook_z), through
    everything downstream, dotted with the source's minus the target's head output. One forward and T
    backward passes for all heads; a screen for the exact patching, never a substitute for it."""
    with torch.inference_mode(False), torch.enable_grad():  # the caches may be inference tensors: copies
        deltas = [torch.zeros(z.shape, dtype=z.dtype, requires_grad=True) for z in target.z]  # [B, N, H, Dh] per layer
        hooks = {f"blocks.{l}.attn.hook_z": (lambda z, l=l: z + deltas[l]) for l in range(len(deltas))}
        with hooked(model, hooks):
            output = run_from(model, 0, target.resid_pre[0].clone())  # [B, T]
            last = output.shape[1] - 1
            grads = [torch.autograd.grad(output[:, t].sum(), deltas, retain_graph=t < last) for t in range(last + 1)]
        change = [s.clone() - t.clone() for s, t in zip(source.z, target.z)]
        per_layer = [
            torch.stack([torch.einsum("bnhd,bnhd->hb", g[l], change[l]) for g in grads], -1) for l in range(len(deltas))
        ]
        return torch.stack(per_layer).detach()  # [L, H, B, T]


def head_keys_values(block: nn.Module, resid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of every head [B, H, N, Dh] for the stream entering `block` (timm's Attention steps)."""
    attn = block.attn
    b, n, _ = resid.shape
    qkv = attn.qkv(block.norm1(resid)).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    return attn.q_norm(q), attn.k_norm(k), v


def kv_patched_z(
    block: nn.Module, target_resid: torch.Tensor, source_resid: torch.Tensor, tokens: torch.Tensor, heads: list[int]
) -> torch.Tensor:
    """Head outputs [K, B, N, Dh] of `heads` in the target's pass when each takes its keys and values at
    `tokens` ([B, N] bool, CLS included) from the source's pass; queries and every other key and value
    stay the target's."""
    attn = block.attn
    if not isinstance(attn.norm, nn.Identity) or getattr(attn, "gate", None) is not None:
        raise ValueError("key/value patching follows timm's plain Attention (no head norm, no gate)")
    q, k, v = head_keys_values(block, target_resid)  # [B, H, N, Dh]
    _, k_source, v_source = head_keys_values(block, source_resid)
    swap = tokens[:, None, :, None]  # [B, 1, N, 1]
    bias = getattr(attn, "key_bias", None)  # planted models' masks (vitheads.model.planted)
    out = []
    for h in heads:
        keys = torch.where(swap[:, 0], k_source[:, h], k[:, h])  # [B, N, Dh]
        values = torch.where(swap[:, 0], v_source[:, h], v[:, h])
        scores = (q[:, h] * attn.scale) @ keys.transpose(-2, -1)  # [B, N, N]
        if bias is not None:
            scores = scores + bias[0, h]
        out.append(scores.softmax(-1) @ values)  # [B, N, Dh]
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
    block, z = model.blocks[layer], target.z[layer]  # [B, N, H, Dh]
    heads = list(range(z.shape[2])) if heads is None else list(heads)
    patched_z = kv_patched_z(block, target.resid_pre[layer], source.resid_pre[layer], tokens, heads)
    outputs = []
    for group in stack_groups(len(heads), z.shape[0], max_rows):
        stacked = z.repeat(len(group), 1, 1, 1)  # [K*B, N, H, Dh]
        per_copy = stacked.view(len(group), *z.shape)
        for k, (head, new) in enumerate(zip(heads[group.start : group.stop], patched_z[group.start : group.stop])):
            per_copy[k, :, :, head] = new
        h = finish_block(block, target.resid_pre[layer].repeat(len(group), 1, 1), stacked)
        outputs.append(run_from(model, layer + 1, h).view(len(group), z.shape[0], -1))
    return torch.cat(outputs), patched_z - z[:, :, heads].permute(2, 0, 1, 3)
