"""The activation cache every analysis starts from, and what each part of a block writes into the stream.

One clean forward pass per batch keeps, per block, the residual stream entering it (`hook_resid_pre`)
and its heads' outputs (`hook_z`). An intervention on block l's heads then starts from that cache: it
finishes block l from the changed head outputs and runs blocks l+1.. on, never recomputing block l's
attention (half of a block's time on CPU). Interventions on many copies are stacked into batches of at
most STACK_ROWS rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitheads.model.hooks import hooked

STACK_ROWS = (
    128  # rows per stacked batch of changed copies; measured: small stacks stay in cache, 1024 rows ran 1.45x slower
)


@dataclass
class ActivationCache:
    """One clean forward pass of a batch, kept per block (TransformerLens names and shapes)."""

    resid_pre: list[torch.Tensor]  # per block, the residual stream entering it [B, N, D]
    z: list[torch.Tensor]  # per block, hook_z [B, N, H, Dh]
    output: torch.Tensor  # the model's output [B, T]

    def rows(self, keep: slice) -> ActivationCache:
        """The cache of some images of the batch."""
        return ActivationCache([t[keep] for t in self.resid_pre], [t[keep] for t in self.z], self.output[keep])


def run_with_cache(model: nn.Module, x: torch.Tensor) -> ActivationCache:
    """The clean forward pass, timm's forward_features steps, with every block's input and hook_z kept."""
    z = [None] * len(model.blocks)

    def keep(layer):
        def hook(value):
            z[layer] = value

        return hook

    h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    resid_pre = []
    with hooked(model, {f"blocks.{l}.attn.hook_z": keep(l) for l in range(len(model.blocks))}):
        for block in model.blocks:
            resid_pre.append(h)
            h = block(h)
    return ActivationCache(resid_pre, z, model.forward_head(model.norm(h)))


def attention_write(block: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """What block's attention adds to the stream [B, N, D] when its heads output z [B, N, H, Dh]: the
    output projection of the concatenated heads, its bias included (timm's Attention and Block steps)."""
    attn = block.attn
    return block.drop_path1(block.ls1(attn.proj_drop(attn.proj(z.flatten(2)))))


def head_writes(block: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """What each head alone adds to the stream: [B, N, H, D] from hook_z [B, N, H, Dh], through its slice
    of the output projection (no bias); summed over heads plus the bias, attention_write."""
    proj = block.attn.proj
    h, dh = z.shape[-2:]
    per_head = proj.weight.view(proj.weight.shape[0], h, dh)  # [D, H, Dh]
    return block.ls1(torch.einsum("bnhk,dhk->bnhd", z, per_head))


def mlp_write(block: nn.Module, after_attention: torch.Tensor) -> torch.Tensor:
    """What block's MLP adds to the stream [B, N, D], given the stream after its attention."""
    return block.drop_path2(block.ls2(block.mlp(block.norm2(after_attention))))


def finish_block(block: nn.Module, resid_pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Block output for input resid_pre when its heads output z [B, N, H, Dh]."""
    x = resid_pre + attention_write(block, z)
    return x + mlp_write(block, x)


def run_from(model: nn.Module, layer: int, h: torch.Tensor) -> torch.Tensor:
    """Model output [B, T] when the residual stream entering block `layer` is h."""
    for block in model.blocks[layer:]:
        h = block(h)
    return model.forward_head(model.norm(h))


def stack_groups(n_items: int, batch: int, max_rows: int = STACK_ROWS) -> list[range]:
    """Consecutive groups of items whose copies of a batch fill at most max_rows rows (at least one each)."""
    per_group = max(1, max_rows // batch)
    return [range(first, min(first + per_group, n_items)) for first in range(0, n_items, per_group)]
