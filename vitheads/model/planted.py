"""Planted mechanisms with ground truth by construction (the positive controls).

A planted model reads each planted cue (vitheads.data.cues) through its designated heads only: from the
first training step every other head's attention to the cue's tokens is masked out (a -inf key bias), the
designated heads of one kind cannot see another kind's cue tokens, and the flatten readout's weights at
all cue tokens are zero. So the cue can reach the output only through its designated heads: they are the
truth every measure is scored against. The designated heads also get a fixed +CUE_ATTENTION key bias on
their cue's tokens: without it a planted model (seed 20250324, 4 epochs) left every cue unread (cue R^2
-0.02, 0.00, 0.00; output change under a full cue swap below 0.0005 sd), the cue's few tokens carrying too
little of a uniform head's mass for training to pick up. The bias holds in the control arm too, so there the
designated heads attend to cue tokens that carry nothing: attention without use, which a measure of reading
must not flag. The cue tokens are those the cue's pixels reach through the stem
(vitheads.data.regions.receptive_tokens), recorded by the generate stage in the dataset's meta.json.
"""

from __future__ import annotations

import torch
from torch import nn

from vitheads.data.cues import designated_heads

CUE_ATTENTION = 3.0  # e^3 = 20x a key's weight: 3 text tokens then hold about half a designated head's mass


def key_bias(model: nn.Module, cue_tokens: dict[str, list[int]]) -> torch.Tensor:
    """[L, H, 1, N]: per layer the key bias of every head, +CUE_ATTENTION on its own cue's tokens for a
    designated head, -inf on every cue token for the others, 0 elsewhere (broadcast over batch and queries)."""
    prefix = model.num_prefix_tokens
    n, heads = prefix + model.patch_embed.num_patches, model.blocks[0].attn.num_heads
    allowed = designated_heads(list(cue_tokens))
    bias = torch.zeros(len(model.blocks), heads, 1, n)  # rank 4: channels-last training converts buffers
    for layer in range(len(model.blocks)):
        for kind, tokens in cue_tokens.items():
            keys = [prefix + t for t in tokens]
            for head in range(heads):
                bias[layer, head, 0, keys] = CUE_ATTENTION if (layer, head) in allowed[kind] else float("-inf")
    return bias


def plant(model: nn.Module, cue_tokens: dict[str, list[int]]) -> nn.Module:
    """Install the planted structure for cue_tokens (kind -> patch-token indices) in place: the model's key
    bias (an attention mask per layer, which its blocks take in training and the hooked pass in analysis) and
    its readout's mask. Both are rebuilt from cue_tokens (kept in the model's config), not saved as weights."""
    keep = torch.ones(model.patch_embed.num_patches)
    keep[[t for tokens in cue_tokens.values() for t in tokens]] = 0
    model.register_buffer("key_bias", key_bias(model, cue_tokens), persistent=False)
    model.register_buffer("readout_keep", keep, persistent=False)  # [P]: the flatten readout reads no cue token
    return model
