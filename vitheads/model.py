"""The regression ViT: timm's VisionTransformer, plus a position-aware 'flatten' readout.

With CLS or average pooling a randomly initialised ViT spreads the chirp's few patches over
all tokens, and on CPU budgets it never leaves the mean prediction (R^2 ~ 0). Reading the
three targets from the flattened patch tokens gives every patch a direct path to the loss.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

POOLINGS = ("flatten", "token", "avg")


class ChirpViT(VisionTransformer):
    """timm's VisionTransformer; `global_pool='flatten'` reads out all patch tokens at once."""

    def __init__(self, *, global_pool: str = "token", **kwargs):
        self.flatten_readout = global_pool == "flatten"
        super().__init__(global_pool="avg" if self.flatten_readout else global_pool, **kwargs)
        if self.flatten_readout:
            self.head = nn.Linear(self.patch_embed.num_patches * self.embed_dim, self.num_classes)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.flatten_readout:
            return super().forward_head(x, pre_logits)
        x = self.head_drop(self.fc_norm(x[:, self.num_prefix_tokens :]).flatten(1))
        return x if pre_logits else self.head(x)
