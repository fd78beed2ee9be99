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
from timm.models.vision_transformer import Attention
from torch import nn

from vitheads.data.cues import designated_heads

CUE_ATTENTION = 3.0  # e^3 = 20x a key's weight: 3 text tokens then hold about half a designated head's mass


class KeyMaskedAttention(Attention):
    """timm's Attention with a fixed per-head key bias [1, H, 1, N] (0, or -inf where a head may not look)."""

    key_bias: torch.Tensor

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        mask = self.key_bias if attn_mask is None else attn_mask + self.key_bias
        return super().forward(x, attn_mask=mask.to(x.dtype), is_causal=is_causal)


def plant(model: nn.Module, cue_tokens: dict[str, list[int]]) -> nn.Module:
    """Install the planted structure for cue_tokens (kind -> patch-token indices) in place."""
    prefix = model.num_prefix_tokens
    n = prefix + model.patch_embed.num_patches
    allowed = designated_heads(list(cue_tokens))
    for layer, block in enumerate(model.blocks):
        bias = torch.zeros(1, block.attn.num_heads, 1, n)  # [1, H, 1, N]: broadcast over batch and queries
        for kind, tokens in cue_tokens.items():
            keys = [prefix + t for t in tokens]
            for head in range(block.attn.num_heads):
                bias[0, head, 0, keys] = CUE_ATTENTION if (layer, head) in allowed[kind] else float("-inf")
        block.attn.__class__ = KeyMaskedAttention
        block.attn.register_buffer("key_bias", bias)
    keep = torch.ones(model.patch_embed.num_patches)
    keep[[t for tokens in cue_tokens.values() for t in tokens]] = 0
    model.register_buffer("readout_keep", keep)  # [P]: the flatten readout reads no cue token
    return model
