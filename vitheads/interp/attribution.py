"""Direct attribution for the flatten readout: what each head writes, at each token, into each target.

The residual stream at the end of the model is the sum of what every component wrote into it: the
embedding (patch + position), each head through its slice of the output projection, each
attention's projection bias, each MLP. With the final LayerNorm's scale frozen per image and token
(1/sigma from the clean pass), the flatten readout is linear in that stream, so each component's
contribution to each target is exact, and all of them plus the readout's constant (norm offset and
head bias) sum to the prediction (tests/test_attribution.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitheads.interp.cache import ActivationCache, run_with_cache
from vitheads.interp.hooked import HookedViT
from vitheads.model.vit import device_of, to_input


@dataclass
class Attribution:
    """Contributions to each target (z-scored) of one batch, per patch token (the CLS token is
    never read directly by the flatten readout: what is written there reaches the output only as a key and
    value that later layers read into the patch tokens, and so inside their contributions)."""

    embed: torch.Tensor  # [B, P, T] patch + position embedding
    heads: torch.Tensor  # [L, B, P, H, T] each head's output through its projection slice
    attn_bias: torch.Tensor  # [L, B, P, T] each output projection's bias
    mlp: torch.Tensor  # [L, B, P, T]
    constant: torch.Tensor  # [T] the final norm's offset through the readout, plus its bias
    prediction: torch.Tensor  # [B, T] the model's output in the same pass, for checking total()

    def total(self) -> torch.Tensor:
        """The prediction [B, T] rebuilt from the parts."""
        tokens = self.embed + self.heads.sum((0, 3)) + self.attn_bias.sum(0) + self.mlp.sum(0)  # [B, P, T]
        return tokens.sum(1) + self.constant


class FrozenReadout:
    """The flatten readout with the final norm's 1/sigma fixed per image and token: linear in what it reads."""

    def __init__(self, model: nn.Module, final_stream: torch.Tensor):
        if not getattr(model, "flatten_readout", False):
            raise ValueError("direct attribution needs model.pooling: flatten (the readout of every patch token)")
        norm, self.prefix = model.norm, model.num_prefix_tokens
        patches = final_stream[:, self.prefix :]  # [B, P, D]
        self.inv_sigma = torch.rsqrt(patches.var(-1, unbiased=False) + norm.eps)  # [B, P]
        self.gamma = norm.weight  # [D]
        d = final_stream.shape[-1]
        self.weight = model.head.weight.view(-1, patches.shape[1], d)  # [T, P, D]
        if model.readout_keep is not None:  # a planted model's readout reads no cue token
            self.weight = self.weight * model.readout_keep[None, :, None]
        self.constant = torch.einsum("tpd,d->t", self.weight, norm.bias) + model.head.bias  # [T]

    def __call__(self, written: torch.Tensor) -> torch.Tensor:
        """Contribution [B, P, ..., T] of vectors [B, N, ..., D] written at every token (CLS dropped)."""
        v = written[:, self.prefix :]  # [B, P, ..., D]
        centred = v - v.mean(-1, keepdim=True)
        scale = self.inv_sigma.view(*self.inv_sigma.shape, *([1] * (v.dim() - 2)))  # [B, P, 1.., 1]
        return torch.einsum("bp...d,tpd->bp...t", centred * scale * self.gamma, self.weight)


ATTRIBUTION_POINTS = ("hook_resid_pre", "attn.hook_z", "hook_mlp_out", "hook_resid_post")


@torch.inference_mode()
def direct_attribution(model: nn.Module, x: torch.Tensor) -> Attribution:
    """Every component's exact contribution to each target for input batch x."""
    return attribution_of(model, run_with_cache(model, x, ATTRIBUTION_POINTS))


@torch.inference_mode()
def attribution_of(model: nn.Module, cache: ActivationCache) -> Attribution:
    """direct_attribution from a batch's activation cache (with ATTRIBUTION_POINTS cached)."""
    hooked = HookedViT(model)
    readout = FrozenReadout(model, cache.per_layer("hook_resid_post")[-1])  # the stream leaving the last block
    heads, biases, mlps = [], [], []
    for layer, (z, mlp_out) in enumerate(zip(cache.z, cache.per_layer("hook_mlp_out"))):
        writes = hooked.head_writes(layer, z)  # [B, N, H, D]
        heads.append(readout(writes))
        biases.append(readout(hooked.attention_bias(layer).expand_as(writes[:, :, 0])))  # [B, N, D]
        mlps.append(readout(mlp_out))
    parts = heads, biases, mlps
    return Attribution(readout(cache.resid_pre[0]), *(torch.stack(p) for p in parts), readout.constant, cache.output)


def heads_by_region(parts: Attribution, shares: np.ndarray) -> np.ndarray:
    """[B, L, H, T, R]: each head's contribution to each target from the patches of each region, a
    patch's contribution split by its pixel shares [B, P, R] (vitheads.data.regions.pixel_region_shares),
    so that the regions sum to the head's total."""
    weights = torch.as_tensor(shares, dtype=parts.heads.dtype, device=parts.heads.device)  # [B, P, R]
    return torch.einsum("lbpht,bpr->blhtr", parts.heads, weights).cpu().numpy()


def attribution_by_region(
    model: nn.Module, images: np.ndarray, shares: np.ndarray, batch_size: int
) -> tuple[np.ndarray, float]:
    """Every head's direct contribution per target and region for all images, [n, L, H, T, R], and the
    largest gap between the parts' sum and the prediction (a check of the decomposition)."""
    per_image, gap = [], 0.0
    for start in range(0, len(images), batch_size):
        parts = direct_attribution(model, to_input(np.asarray(images[start : start + batch_size]), device_of(model)))
        gap = max(gap, float((parts.total() - parts.prediction).abs().max()))
        per_image.append(heads_by_region(parts, shares[start : start + batch_size]))
    return np.concatenate(per_image), gap
