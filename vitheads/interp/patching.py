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
    model: nn.Module, target: ActivationCache, source: ActivationCache, layer: int, max_rows: int = STACK_ROWS
) -> torch.Tensor:
    """Outputs [H, B, T] on the target images with each head of `layer` in turn taking its output on
    the source images: the patches stacked into batches of at most max_rows rows (whole copies)."""
    z = target.z[layer]  # [B, N, H, Dh]
    outputs = []
    for heads in stack_groups(z.shape[2], z.shape[0], max_rows):
        stacked = z.repeat(len(heads), 1, 1, 1)  # [K*B, N, H, Dh]
        per_copy = stacked.view(len(heads), *z.shape)  # [K, B, N, H, Dh], a view of stacked
        for k, head in enumerate(heads):
            per_copy[k, :, :, head] = source.z[layer][:, :, head]
        h = finish_block(model.blocks[layer], target.resid_pre[layer].repeat(len(heads), 1, 1), stacked)
        outputs.append(run_from(model, layer + 1, h).view(len(heads), z.shape[0], -1))
    return torch.cat(outputs)
