"""The seed author's released ablation (PyPI `vision-mech-interp-attn-head` 0.1.8), emulated step
for step on our model, so that the replication table can show what the paper's percentages measure.

Per head, in sweep order (layer by layer, head by head), that code:
1. records the loss of the current model on the test images, then
2. zeroes row `head` of the query, key and value weight matrices (timm fuses them in one
   `attn.qkv` weight, [3D, D]: query rows 0..D-1, key rows D..2D-1, value rows 2D..3D-1), biases
   untouched, and
3. never restores them, so every later head's loss carries all earlier zeroings;
and its loss compares the model's z-scored predictions with the raw labels (seconds, Hz).
Row `head` is one output channel: inside head 0's slice for ViT-B (64 channels per head), inside
heads 0 and 1 for our 8-channel heads. Nothing here touches the caller's model.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.interp.cache import run_with_cache
from vitheads.interp.hooked import HookedViT
from vitheads.model.vit import EVAL_BATCH, device_of, to_input


def zeroed_rows(head: int, dim: int) -> list[int]:
    """Rows of the fused qkv weight the author's code zeroes for `head` (0-based)."""
    return [head, dim + head, 2 * dim + head]


@torch.no_grad()
def first_residual(model: nn.Module, images: np.ndarray) -> list[torch.Tensor]:
    """Per batch, the residual stream entering block 0 (the embedded patches)."""
    device = device_of(model)
    batches = range(0, len(images), EVAL_BATCH)
    return [run_with_cache(model, to_input(images[i : i + EVAL_BATCH], device)).resid_pre[0] for i in batches]


@torch.no_grad()
def raw_label_loss(model: nn.Module, layer: int, entering: list[torch.Tensor], y_raw: np.ndarray) -> float:
    """MSE of the z-scored predictions against raw labels, from the residual stream entering `layer`."""
    hooked = HookedViT(model)
    pred = torch.cat([hooked.run(resid=h, start_at_layer=layer) for h in entering]).cpu().numpy()
    return float(np.mean((pred - y_raw) ** 2))


@torch.no_grad()
def author_sweep(model: nn.Module, images: np.ndarray, y_raw: np.ndarray) -> list[tuple[int, int, float]]:
    """(layer, head, loss) per head in sweep order (1-based): the loss recorded before its rows are
    zeroed (vitheads.analysis.ablation.author_table turns it into increases). Zeroings in layer l leave
    blocks < l as they were, so the residual entering block l is computed once per layer, from the one
    entering block l - 1 once layer l - 1's zeroings are all made."""
    damaged = copy.deepcopy(model).eval()
    losses = []
    progress = tqdm(total=sum(b.attn.num_heads for b in damaged.blocks), desc="author protocol", unit="head")
    entering = first_residual(damaged, images)
    for layer, block in enumerate(damaged.blocks):
        dim = block.attn.qkv.in_features
        for head in range(block.attn.num_heads):
            losses.append((layer + 1, head + 1, raw_label_loss(damaged, layer, entering, y_raw)))
            block.attn.qkv.weight[zeroed_rows(head, dim)] = 0
            progress.update()
        entering = [HookedViT(damaged).block(layer, h, {}) for h in entering]
    progress.close()
    return losses
