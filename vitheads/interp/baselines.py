"""The common baselines the planted controls score beside the causal measures (vitheads.interp.causal),
per pair and head, all from member A's pass or the pair's difference:
  rollout        attention rollout (Abnar and Zuidema 2020) through a head: the head's attention carried to
                 the readout's tokens by every later layer's mean attention (each with the residual's
                 identity half), as mass on the changed tokens
  direct         the change of the head's direct contribution to each target through the flatten readout
                 (vitheads.interp.attribution), member B minus member A
  linearised     gradient x input on the element's pixels: the head's output change to first order in the
                 input change (forward-mode differentiation of the pass along x_B - x_A)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.autograd import forward_ad

from vitheads.interp.attribution import attribution_of
from vitheads.interp.cache import ActivationCache, run_with_cache
from vitheads.interp.hooked import HookedViT


@torch.inference_mode()
def rollout_mass(a: torch.Tensor, tokens: torch.Tensor, prefix: int) -> np.ndarray:
    """[B, L, H]: each head's attention (a: vitheads.interp.attention.patterns, [B, L, H, N, N]), rolled out
    through the later layers to the patch tokens (which the flatten readout reads), as the share of mass on
    `tokens` ([B, N] bool)."""
    b, layers, _, n, _ = a.shape
    eye = torch.eye(n, device=a.device)
    later = eye.expand(b, n, n).clone()  # rollout of the layers after the current one, [B, N, N]
    out = torch.zeros(b, layers, a.shape[2], device=a.device)
    for layer in reversed(range(layers)):
        through = later[:, None, prefix:] @ a[:, layer]  # [B, H, P, N]: patch queries read through this head
        out[:, layer] = (through * tokens[:, None, None, :]).sum(-1).mean(-1)
        later = later @ (0.5 * a[:, layer].mean(1) + 0.5 * eye)
    return out.cpu().numpy()


@torch.inference_mode()
def direct_change(model: nn.Module, a: ActivationCache, b: ActivationCache) -> np.ndarray:
    """[B, L, H, T]: member B's minus member A's direct contribution of each head to each target."""
    heads_a, heads_b = attribution_of(model, a).heads, attribution_of(model, b).heads  # [L, B, P, H, T]
    return (heads_b - heads_a).sum(2).permute(1, 0, 2, 3).cpu().numpy()


def linearised_change(model: nn.Module, xa: torch.Tensor, xb: torch.Tensor) -> np.ndarray:
    """[B, L, H]: ||dz_h|| to first order along xb - xa, mean over patch tokens (forward-mode; explicit
    attention, as the fused kernel has no forward derivative)."""
    prefix = model.num_prefix_tokens
    with torch.inference_mode(False), torch.no_grad(), forward_ad.dual_level():
        dual = forward_ad.make_dual(xa.clone(), (xb - xa).clone())
        cache = run_with_cache(HookedViT(model, explicit_attention=True), dual)
        tangents = [forward_ad.unpack_dual(z).tangent for z in cache.z]  # [B, N, H, Dh] each
        return torch.stack([t[:, prefix:].norm(dim=-1).mean(1) for t in tangents], 1).cpu().numpy()
