"""Activation patching between the two images of a pair: one head's output (hook_z) from the source
image put into the target image's forward pass, the rest of the model recomputed.

Starts from the target's cached clean pass (vitheads.ablation.clean_pass): layer l's attention is
not recomputed, only the rest of block l and the blocks after it, as in the ablation engine.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vitheads.ablation import STACK_ROWS, CleanPass, finish_block, run_from


def mlp_write(block: nn.Module, stream: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """What block's MLP adds to the residual stream [B, N, D] when the block's input is `stream`
    and its heads output z [B, N, H, Dh]."""
    after_attn = stream + block.ls1(block.attn.proj(z.flatten(2)))
    return block.ls2(block.mlp(block.norm2(after_attn)))


@torch.inference_mode()
def patched_output(
    model: nn.Module, target: CleanPass, source: CleanPass, layer: int, heads: Sequence[int], mlp: bool = False
) -> torch.Tensor:
    """Model output [B, T] on the target images when heads `heads` of block `layer` (0-based) output
    what they output on the source images (and, with mlp, the block's MLP writes what it wrote there)."""
    block, stream = model.blocks[layer], target.inputs[layer]
    z = target.z[layer].clone()  # [B, N, H, Dh]
    z[:, :, list(heads)] = source.z[layer][:, :, list(heads)]
    if mlp:
        out = stream + block.ls1(block.attn.proj(z.flatten(2))) + mlp_write(block, source.inputs[layer], source.z[layer])
    else:
        out = finish_block(block, stream, z)
    return run_from(model, layer + 1, out)


@torch.inference_mode()
def patched_layer(model: nn.Module, target: CleanPass, source: CleanPass, layer: int, max_rows: int = STACK_ROWS) -> torch.Tensor:
    """Outputs [H, B, T] on the target images with each head of `layer` in turn taking its output on
    the source images: the patches stacked into batches of at most max_rows rows (whole copies), as
    the ablation sweep stacks heads."""
    z = target.z[layer]  # [B, N, H, Dh]
    n_heads, per_group = z.shape[2], max(1, max_rows // z.shape[0])
    outputs = []
    for first in range(0, n_heads, per_group):
        heads = range(first, min(first + per_group, n_heads))
        stacked = z.repeat(len(heads), 1, 1, 1)  # [K*B, N, H, Dh]
        per_copy = stacked.view(len(heads), *z.shape)  # [K, B, N, H, Dh], a view of stacked
        for k, head in enumerate(heads):
            per_copy[k, :, :, head] = source.z[layer][:, :, head]
        h = finish_block(model.blocks[layer], target.inputs[layer].repeat(len(heads), 1, 1), stacked)
        outputs.append(run_from(model, layer + 1, h).view(len(heads), z.shape[0], -1))
    return torch.cat(outputs)
