"""Named hook points on timm's VisionTransformer, TransformerLens style, that never touch weights.

    blocks.{l}.hook_resid_pre      block l's input, the residual stream     [B, N, D]
    blocks.{l}.attn.hook_v         each head's values (observe only)       [B, N, H, Dh]
    blocks.{l}.attn.hook_z         each head's output (attention x values)
                                   as it enters the output projection      [B, N, H, Dh]
    blocks.{l}.attn.hook_pattern   attention probabilities (after softmax)  [B, H, N, N]

Shapes follow TransformerLens (`hook_z` is [batch, pos, head_index, d_head]), so code written
for one reads the other. A hook function gets the tensor and returns a replacement (same
shape) or None. `hooked` registers them for the duration of a `with` block and always removes
them; for hook_pattern it switches timm's fused attention off (fused attention never
materialises the probabilities, and a hook would silently see nothing) and restores the flag.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import torch
from torch import nn

HookFn = Callable[[torch.Tensor], torch.Tensor | None]
_NAME = re.compile(r"blocks\.(\d+)\.(hook_resid_pre|attn\.hook_v|attn\.hook_z|attn\.hook_pattern)$")


def _z_hook(fn: HookFn, num_heads: int):
    """Adapt fn on [B, N, H, Dh] to proj's input [B, N, H*Dh] (timm concatenates the heads)."""

    def pre_hook(module, args):
        z = args[0]
        out = fn(z.view(*z.shape[:-1], num_heads, z.shape[-1] // num_heads))  # [B, N, H, Dh]
        return None if out is None else (out.reshape(z.shape),)

    return pre_hook


def _v_hook(fn: HookFn, num_heads: int):
    """Show fn the values [B, N, H, Dh]; what it returns is ignored (values cannot be replaced here)."""

    def hook(module, args, qkv):
        fn(qkv.chunk(3, -1)[2].unflatten(-1, (num_heads, -1)))

    return hook


def _register(model: nn.Module, name: str, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
    match = _NAME.match(name)
    if not match or int(match[1]) >= len(model.blocks):
        raise KeyError(f"no hook point '{name}' in a {len(model.blocks)}-block ViT")
    block = model.blocks[int(match[1])]
    if match[2] == "hook_resid_pre":
        return block.register_forward_pre_hook(
            lambda module, args: None if (out := fn(args[0])) is None else (out, *args[1:])
        )
    if match[2] == "attn.hook_v":  # timm's qkv output is [B, N, 3 * H * Dh], values last
        return block.attn.qkv.register_forward_hook(_v_hook(fn, block.attn.num_heads))
    if match[2] == "attn.hook_z":
        return block.attn.proj.register_forward_pre_hook(_z_hook(fn, block.attn.num_heads))
    return block.attn.attn_drop.register_forward_hook(lambda module, args, output: fn(output))


@contextlib.contextmanager
def hooked(model: nn.Module, hooks: dict[str, HookFn]) -> Iterator[nn.Module]:
    """Run `model` with the named hooks attached; they and the fused-attention flags are restored."""
    fused = [block.attn.fused_attn for block in model.blocks]
    handles = []
    try:
        for name, fn in hooks.items():
            if name.endswith("hook_pattern"):
                model.blocks[int(name.split(".")[1])].attn.fused_attn = False
            handles.append(_register(model, name, fn))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for block, flag in zip(model.blocks, fused):
            block.attn.fused_attn = flag
