"""Graded implants: weight surgery on a trained ChirpViT that adds a known route from a plot element to one
target, with a gain that sets its size (issue 38). Ground truth by construction, with nothing forced: no
attention mask, no key bias, no readout mask; every weight the spec does not name keeps its trained value.

An Implant names a site, the element's feature u (a unit direction of a normalised residual stream, from
vitheads.interp.implant.element_feature), the direction r the write takes (vitheads.model.implant.
readout_direction: what the flatten readout reads for the target), a centre c (the mean of the read quantity
on the original images, subtracted so that the implant does not shift every prediction) and a gain g.

  head       block l's head h reads the element through its values: a rank-1 addition to its value weights,
             W_V[h] += g a u^T, and its value bias b_V[h] -= g c a, so its values gain g (u . LN1(x_j) - c) a
             at every key j. The head writes that through its OWN trained output projection: a is the least-
             squares solution of a W_O[h] = r, scaled so that the write w = a W_O[h] has unit component along r
             (w is r projected onto the head's 8-dimensional output space, the most of r the head can write).
             Its attention is the trained model's: queries and keys are untouched. Why not an output-side edit:
             the head's OV circuit has rank Dh, so adding g u r^T to it cannot be done without taking rank from
             what it does now; editing W_O as well would write the value channel's trained content along r
             (cross terms). The value-side edit alone is exact: the head's extra output is
             g sum_j A_ij (u . LN1(x_j) - c) w, linear in g because A does not depend on the values.
  redundant  the same construction on two heads of one layer, each at gain g / 2 (each with its own a, so
             each write has unit component along r): the route split half/half.
  mlp        block l's MLP: the hidden unit that responds most to the element (vitheads.interp.implant.
             responsive_unit) keeps its fc1 row (it reads what training made it read); its fc2 column gains
             g r and fc2's bias loses g c r (c: the unit's mean activation), so the MLP adds
             g (GELU(unit) - c) r: exactly linear in g at the unit's output. Overwriting a unit's fc1 row to
             read u would remove the trained unit at gain 0 (the zero-gain control would not be the model),
             and a pair of added units (GELU(a) - GELU(-a) = a reads u linearly) widens fc2's sum, which is not
             bit-for-bit the trained model's at gain 0.
  direct     the readout: the flatten head's weights for the target at the element's tokens gain g u (u at the
             readout's input, the final norm's output) and its bias loses g c |tokens|, so the target gains
             g sum_{p in tokens} (u . n_p - c). Nothing before the readout changes.

Every edit is W + g * (fixed tensor), so gain 0 leaves every weight bit for bit (tests/test_implant.py) and
the implanted block's own write is exactly linear in g. The whole model's output change is linear in g only
to first order (later blocks and the final LayerNorm are not linear); vitheads.interp.implant.calibrate
finds the gain for a given whole-model effect by measuring it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

SITES = ("head", "redundant", "mlp", "direct")


@dataclass(frozen=True)
class Implant:
    """One implant. layer: 0-based block (direct: the model's depth, the readout). heads: one (head), two
    (redundant), none otherwise. target: output index. feature: u [D] (head, redundant, direct). write: r [D]
    (head, redundant, mlp). unit: the MLP's hidden unit (mlp). tokens: patch-token indices (direct). centre:
    the read quantity's mean on the original images. gain: g."""

    site: str
    layer: int
    target: int
    heads: tuple[int, ...] = ()
    feature: torch.Tensor | None = None
    write: torch.Tensor | None = None
    unit: int | None = None
    tokens: tuple[int, ...] = ()
    centre: float = 0.0
    gain: float = 0.0

    def with_gain(self, gain: float) -> Implant:
        return replace(self, gain=float(gain))

    def check(self, model: nn.Module) -> None:
        """Refuse a spec the model cannot take, naming the field."""
        depth, n_heads = len(model.blocks), model.blocks[0].attn.num_heads
        dim, targets = model.embed_dim, model.head.weight.shape[0]
        if self.site not in SITES:
            raise ValueError(f"Implant.site must be one of {SITES}, not '{self.site}'")
        if not math.isfinite(self.gain):
            raise ValueError(f"Implant.gain must be finite, not {self.gain}")
        if not math.isfinite(self.centre):
            raise ValueError(f"Implant.centre must be finite, not {self.centre}")
        if not 0 <= self.target < targets:
            raise ValueError(f"Implant.target {self.target} is not an output of a {targets}-output model")
        if self.site == "direct":
            if self.layer != depth:
                raise ValueError(f"Implant.layer of a direct implant is the readout, {depth}, not {self.layer}")
            if not getattr(model, "flatten_readout", False):
                raise ValueError("Implant.site 'direct' needs the flatten readout")
        elif not 0 <= self.layer < depth:
            raise ValueError(f"Implant.layer {self.layer} is not a block of a {depth}-block model (0-based)")
        wanted = {"head": 1, "redundant": 2}.get(self.site, 0)
        if len(self.heads) != wanted or len(set(self.heads)) != wanted:
            raise ValueError(
                f"Implant.heads of a {self.site} implant must be {wanted} distinct heads, not {self.heads}"
            )
        if any(not 0 <= h < n_heads for h in self.heads):
            raise ValueError(f"Implant.heads {self.heads} outside the {n_heads} heads of a layer")
        for name, needed in (("feature", self.site != "mlp"), ("write", self.site != "direct")):
            value = getattr(self, name)
            if needed and (value is None or tuple(value.shape) != (dim,) or not torch.isfinite(value).all()):
                shape = None if value is None else tuple(value.shape)
                raise ValueError(
                    f"Implant.{name} must be a finite [{dim}] vector for a {self.site} implant, not {shape}"
                )
        if self.site == "mlp":
            hidden = model.blocks[self.layer].mlp.fc1.out_features
            if self.unit is None or not 0 <= self.unit < hidden:
                raise ValueError(
                    f"Implant.unit must be one of the {hidden} hidden units of an mlp implant, not {self.unit}"
                )
        if self.site == "direct":
            patches = model.patch_embed.num_patches
            if not self.tokens or any(not 0 <= t < patches for t in self.tokens):
                raise ValueError(f"Implant.tokens must be patch tokens in [0, {patches}) for a direct implant")


def readout_direction(model: nn.Module, target: int) -> torch.Tensor:
    """r [D], unit norm: the flatten readout's weights for `target`, averaged over the patch tokens, times the
    final norm's scale and centred (the norm removes a write's mean over channels): the stream direction the
    readout reads for the target when it is written at every token."""
    patches = model.patch_embed.num_patches
    weight = model.head.weight[target].detach().view(patches, -1).mean(0)  # [D]
    r = weight * model.norm.weight.detach()
    r = r - r.mean()
    return r / r.norm()


def head_value_direction(model: nn.Module, layer: int, head: int, write: torch.Tensor) -> torch.Tensor:
    """a [Dh]: the value-channel combination whose write through the head's output projection is `write`
    projected onto the head's output space, scaled to unit component along the unit `write`."""
    attn = model.blocks[layer].attn
    w_o = attn.proj.weight.detach().view(-1, attn.num_heads, attn.head_dim)[:, head].T  # [Dh, D]: z @ w_o
    r = write / write.norm()
    a = torch.linalg.lstsq(w_o.T.double(), r.double()[:, None]).solution[:, 0]  # [Dh]
    along = float((a @ w_o.double()) @ r.double())  # = |P r|^2 of the head's output space
    if along <= 1e-12:
        raise ValueError(f"head {head} of block {layer} cannot write along the implant's direction")
    return (a / along).to(write.dtype)


@torch.no_grad()
def implant(model: nn.Module, spec: Implant) -> nn.Module:
    """A copy of the model with the implant's weights edited (module doc); the original is not touched."""
    spec.check(model)
    out = copy.deepcopy(model)
    g = spec.gain
    if spec.site in ("head", "redundant"):
        attn = out.blocks[spec.layer].attn
        dim, dh = out.embed_dim, attn.head_dim
        share = g / len(spec.heads)
        u = spec.feature.to(attn.qkv.weight)
        for h in spec.heads:
            a = head_value_direction(model, spec.layer, h, spec.write.to(attn.qkv.weight))
            rows = slice(2 * dim + h * dh, 2 * dim + (h + 1) * dh)  # head h's value rows of the fused qkv
            attn.qkv.weight[rows] += share * torch.outer(a, u)
            attn.qkv.bias[rows] -= share * spec.centre * a
    elif spec.site == "mlp":
        fc2 = out.blocks[spec.layer].mlp.fc2
        r = spec.write.to(fc2.weight) / spec.write.norm()
        fc2.weight[:, spec.unit] += g * r
        fc2.bias -= g * spec.centre * r
    else:
        head = out.head
        weight = head.weight.view(head.weight.shape[0], out.patch_embed.num_patches, -1)  # a view: [T, P, D]
        weight[spec.target, list(spec.tokens)] += g * spec.feature.to(head.weight)
        head.bias[spec.target] -= g * spec.centre * len(spec.tokens)
    return out
