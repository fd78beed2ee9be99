"""The one hooked forward pass of the ViT, TransformerLens style: every analysis runs through it.

timm's VisionTransformer stays the model (its weights, its checkpoints); this module runs the same
computation step by step in eval mode, with a named hook point at every step:

    blocks.{l}.hook_resid_pre      the residual stream entering block l             [B, N, D]
    blocks.{l}.ln1.hook_normalized the attention's input (after norm1)              [B, N, D]
    blocks.{l}.attn.hook_q         each head's queries (after q_norm)               [B, N, H, Dh]
    blocks.{l}.attn.hook_k         each head's keys (after k_norm)                  [B, N, H, Dh]
    blocks.{l}.attn.hook_v         each head's values                               [B, N, H, Dh]
    blocks.{l}.attn.hook_pattern   attention probabilities (after softmax)          [B, H, N, N]
    blocks.{l}.attn.hook_z         each head's output (pattern x values)            [B, N, H, Dh]
    blocks.{l}.hook_attn_out       what the attention adds to the stream            [B, N, D]
    blocks.{l}.hook_resid_mid      the stream after the attention                   [B, N, D]
    blocks.{l}.mlp.hook_post       the MLP's hidden activation (after its GELU)     [B, N, D_mlp]
    blocks.{l}.hook_mlp_out        what the MLP adds to the stream                  [B, N, D]
    blocks.{l}.hook_resid_post     the stream leaving block l                       [B, N, D]
    hook_readout_in                the final norm's output, the readout's input     [B, N, D]

A hook function gets the tensor and returns a replacement of the same shape, or None to keep it.
N counts the CLS token first: the flatten readout never reads it directly (later layers still read it
as a key and value), so what is written there reaches the output only through later attention.

`run` can start at any block from a given residual stream, and at a block's hook_z from that block's
cached head outputs: then the block's attention is not recomputed (half a block's time on CPU), which
keeps head ablation and patching as fast as finishing the block by hand was. Attention uses torch's
fused kernel unless the pattern is hooked or `explicit_attention` is set (forward-mode differentiation
has no fused kernel). A planted model's key bias (vitheads.model.planted) is an attention mask per
layer, passed in here as timm's blocks take it in training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

HookFn = Callable[[torch.Tensor], torch.Tensor | None]
BLOCK_POINTS = (
    "hook_resid_pre",
    "ln1.hook_normalized",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
)  # in the order the pass reaches them
READOUT_POINT = "hook_readout_in"


def hook_names(depth: int) -> list[str]:
    """Every hook point of a depth-block model, in the order the pass reaches them."""
    return [f"blocks.{l}.{p}" for l in range(depth) for p in BLOCK_POINTS] + [READOUT_POINT]


def point_order(name: str) -> tuple[int, int]:
    """(layer, step) of a hook point: sorts the points as the pass reaches them."""
    if name == READOUT_POINT:
        return (10**9, 0)
    _, layer, point = name.split(".", 2)
    return int(layer), BLOCK_POINTS.index(point)


class HookedViT:
    """A timm VisionTransformer run step by step with named hook points (see the module doc)."""

    def __init__(self, model: nn.Module, explicit_attention: bool = False):
        for block in model.blocks:
            attn = block.attn
            if not isinstance(attn.norm, nn.Identity) or getattr(attn, "gate", None) is not None:
                raise ValueError("the hooked pass follows timm's plain Attention (no scale norm, no gate)")
        self.model = model
        self.blocks = model.blocks
        self.depth = len(model.blocks)
        self.num_heads = model.blocks[0].attn.num_heads
        self.prefix = model.num_prefix_tokens
        self.explicit_attention = explicit_attention
        self.key_bias = model.key_bias  # [L, H, 1, N] or None (vitheads.model.planted)
        self.names = set(hook_names(self.depth))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, S, S] -> the stream entering block 0 [B, N, D] (timm's forward_features steps)."""
        m = self.model
        return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))

    def run(
        self,
        x: torch.Tensor | None = None,
        hooks: Mapping[str, HookFn] | None = None,
        start_at_layer: int = 0,
        resid: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The output [B, T]: from images x, or from the stream `resid` entering block start_at_layer; with
        `z` ([B, N, H, Dh], that block's head outputs) the block starts at its hook_z."""
        hooks = hooks or {}
        unknown = set(hooks) - self.names
        if unknown:
            raise KeyError(f"no hook point {sorted(unknown)} in a {self.depth}-block ViT")
        if (x is None) == (resid is None):
            raise ValueError("run needs either images x or a residual stream resid")
        h = self.embed(x) if x is not None else resid
        for layer in range(start_at_layer, self.depth):
            h = self.block(layer, h, hooks, z if layer == start_at_layer else None)
        return self.readout(h, hooks)

    def block(self, l: int, h: torch.Tensor, hooks: Mapping[str, HookFn], z: torch.Tensor | None = None):
        """Block l on the stream h [B, N, D]; given z, from its hook_z on."""
        block, name = self.blocks[l], f"blocks.{l}."
        h = _hook(hooks, name + "hook_resid_pre", h)
        if z is None:
            z = self.attention(l, h, hooks)
        z = _hook(hooks, name + "attn.hook_z", z)
        attn_out = _hook(hooks, name + "hook_attn_out", self.attention_write(l, z))
        mid = _hook(hooks, name + "hook_resid_mid", h + attn_out)
        mlp_out = _hook(hooks, name + "hook_mlp_out", block.drop_path2(block.ls2(self.mlp(l, mid, hooks))))
        return _hook(hooks, name + "hook_resid_post", mid + mlp_out)

    def mlp(self, l: int, mid: torch.Tensor, hooks: Mapping[str, HookFn]) -> torch.Tensor:
        """Block l's MLP on the stream after its attention [B, N, D] (timm's Mlp steps), before its layer scale."""
        mlp = self.blocks[l].mlp
        hidden = mlp.act(mlp.fc1(self.blocks[l].norm2(mid)))  # [B, N, D_mlp]
        hidden = _hook(hooks, f"blocks.{l}.mlp.hook_post", hidden)
        return mlp.drop2(mlp.fc2(mlp.norm(mlp.drop1(hidden))))

    def attention(self, l: int, h: torch.Tensor, hooks: Mapping[str, HookFn]) -> torch.Tensor:
        """Head outputs z [B, N, H, Dh] of block l for the stream entering it h [B, N, D]."""
        name = f"blocks.{l}.attn."
        q, k, v = self.qkv(l, h, hooks)
        q, k, v = (_hook(hooks, name + f"hook_{t}", value) for t, value in zip("qkv", (q, k, v)))
        return self.attend(l, q, k, v, pattern_hook=hooks.get(name + "hook_pattern"))

    def qkv(
        self, l: int, h: torch.Tensor, hooks: Mapping[str, HookFn] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values [B, N, H, Dh] of block l for the stream entering it h [B, N, D]."""
        attn = self.blocks[l].attn
        b, n, _ = h.shape
        x = _hook(hooks or {}, f"blocks.{l}.ln1.hook_normalized", self.blocks[l].norm1(h))  # [B, N, D]
        q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).unbind(2)  # [B, N, H, Dh] each
        return attn.q_norm(q), attn.k_norm(k), v

    def attend(
        self,
        l: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        heads: list[int] | None = None,
        pattern_hook: HookFn | None = None,
    ) -> torch.Tensor:
        """z [B, N, H', Dh] from queries, keys and values [B, N, H', Dh] of block l's `heads` (None: all):
        softmax(q k^T scale + key bias) v."""
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H', N, Dh]
        mask = None if self.key_bias is None else self.key_bias[l : l + 1]  # [1, H, 1, N]
        if mask is not None and heads is not None:
            mask = mask[:, heads]
        if pattern_hook is None and not self.explicit_attention:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
        scores = (q * self.blocks[l].attn.scale) @ k.transpose(-2, -1)  # [B, H', N, N]
        pattern = (scores if mask is None else scores + mask).softmax(-1)
        if pattern_hook is not None:
            pattern = _replaced(pattern, pattern_hook(pattern))
        return (pattern @ v).transpose(1, 2)

    def attention_write(self, l: int, z: torch.Tensor) -> torch.Tensor:
        """What block l's attention adds to the stream [B, N, D] when its heads output z [B, N, H, Dh]."""
        block = self.blocks[l]
        attn = block.attn
        return block.drop_path1(block.ls1(attn.proj_drop(attn.proj(z.flatten(2)))))

    def head_writes(self, l: int, z: torch.Tensor) -> torch.Tensor:
        """What each head of block l adds alone: [B, N, H, D] from z [B, N, H, Dh], through its slice of the
        output projection (no bias); summed over heads plus attention_bias(l), attention_write."""
        return self.blocks[l].ls1(torch.einsum("bnhk,hkd->bnhd", z, self.w_o(l)))

    def w_o(self, l: int) -> torch.Tensor:
        """Block l's output projection per head, [H, Dh, D] (TransformerLens' W_O)."""
        weight = self.blocks[l].attn.proj.weight  # [D, H*Dh]
        return weight.view(weight.shape[0], self.blocks[l].attn.num_heads, -1).permute(1, 2, 0)

    def attention_bias(self, l: int) -> torch.Tensor:
        """What block l's output projection's bias adds at every token [D]."""
        return self.blocks[l].ls1(self.blocks[l].attn.proj.bias)

    def readout(self, h: torch.Tensor, hooks: Mapping[str, HookFn]) -> torch.Tensor:
        """The output [B, T] from the stream leaving the last block [B, N, D]."""
        return self.model.forward_head(_hook(hooks, READOUT_POINT, self.model.norm(h)))


def _hook(hooks: Mapping[str, HookFn], name: str, value: torch.Tensor) -> torch.Tensor:
    fn = hooks.get(name)
    return value if fn is None else _replaced(value, fn(value))


def _replaced(value: torch.Tensor, new: torch.Tensor | None) -> torch.Tensor:
    if new is None:
        return value
    if new.shape != value.shape:
        raise ValueError(f"a hook returned shape {tuple(new.shape)} for a point of shape {tuple(value.shape)}")
    return new
