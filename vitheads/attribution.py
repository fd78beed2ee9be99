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

from vitheads.ablation import clean_pass, finish_block
from vitheads.names import CLASSES, KIND_OF


@dataclass
class Attribution:
    """Contributions to each target (z-scored) of one batch, per patch token (the CLS token is
    never read by the flatten readout, so nothing written there reaches the output directly)."""

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
        self.constant = torch.einsum("tpd,d->t", self.weight, norm.bias) + model.head.bias  # [T]

    def __call__(self, written: torch.Tensor) -> torch.Tensor:
        """Contribution [B, P, ..., T] of vectors [B, N, ..., D] written at every token (CLS dropped)."""
        v = written[:, self.prefix :]  # [B, P, ..., D]
        centred = v - v.mean(-1, keepdim=True)
        scale = self.inv_sigma.view(*self.inv_sigma.shape, *([1] * (v.dim() - 2)))  # [B, P, 1.., 1]
        return torch.einsum("bp...d,tpd->bp...t", centred * scale * self.gamma, self.weight)


def head_writes(block: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """What each head adds to the residual stream: [B, N, H, D] from hook_z [B, N, H, Dh]."""
    proj = block.attn.proj
    h, dh = z.shape[-2:]
    per_head = proj.weight.view(proj.weight.shape[0], h, dh)  # [D, H, Dh]
    return block.ls1(torch.einsum("bnhk,dhk->bnhd", z, per_head))


@torch.inference_mode()
def direct_attribution(model: nn.Module, x: torch.Tensor) -> Attribution:
    """Every component's exact contribution to each target for input batch x."""
    clean = clean_pass(model, x)
    streams = clean.inputs + [finish_block(model.blocks[-1], clean.inputs[-1], clean.z[-1])]  # L + 1 of [B, N, D]
    readout = FrozenReadout(model, streams[-1])
    heads, biases, mlps = [], [], []
    for layer, block in enumerate(model.blocks):
        writes = head_writes(block, clean.z[layer])  # [B, N, H, D]
        bias = block.ls1(block.attn.proj.bias).expand_as(writes[:, :, 0])  # [B, N, D]
        after_attn = streams[layer] + writes.sum(2) + bias
        heads.append(readout(writes))
        biases.append(readout(bias))
        mlps.append(readout(streams[layer + 1] - after_attn))
    return Attribution(readout(streams[0]), torch.stack(heads), torch.stack(biases), torch.stack(mlps), readout.constant, clean.output)


REGIONS = ("chirp", "text", "colorbar", "frame", "background", "margin")


def region_fractions(patch_fractions: np.ndarray) -> np.ndarray:
    """[B, G, G, C] class shares per patch (vitheads.generation) -> [B, P, R] shares per REGIONS."""
    groups = [[i for i, c in enumerate(CLASSES) if KIND_OF.get(c, c) == region] for region in REGIONS]
    flat = patch_fractions.reshape(len(patch_fractions), -1, patch_fractions.shape[-1])
    return np.stack([flat[..., g].sum(-1) for g in groups], -1)


def heads_by_region(parts: Attribution, fractions: np.ndarray) -> np.ndarray:
    """[B, L, H, T, R]: each head's contribution to each target from the patches of each region, a
    patch's contribution split by its pixel shares (so the regions sum to the head's total)."""
    shares = torch.as_tensor(fractions, dtype=parts.heads.dtype, device=parts.heads.device)  # [B, P, R]
    return torch.einsum("lbpht,bpr->blhtr", parts.heads, shares).cpu().numpy()
