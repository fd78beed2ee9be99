"""Where a paired render's whole change enters the output: an exact split by route.

The stream the flatten readout reads at each patch token is a sum of writes: the embedding, every head
(through its slice of the output projection), every attention's bias and every MLP (the hooked pass's
hook_resid_pre of block 0, attn.hook_z, hook_mlp_out). The readout is additive over tokens but not linear
in a token's stream (the final LayerNorm), so the split is made by patching: starting from member A's
final stream, each write is replaced by member B's, one component at a time (embedding, then per layer
its heads and its MLP), and the readout's change at each step is that component's share, per token. The
shares telescope: they add up to B's output minus A's exactly. The order matters only through the
LayerNorm; the reverse patching (B's stream, A's writes put back one by one) gives a second split, and the
half-difference of the two is the interaction the order leaves (reported, never dropped).

Tokens split in two: the changed tokens (those whose embedding differs between the members: all the stem
lets the element reach) and the others, which the change can reach only through attention. So:
  stay     the embedding's and the MLPs' writes at the changed tokens: the element read where it is
  attention at the changed tokens / moved to other tokens: each head's write there, per layer
  MLP on moved information: the MLPs' writes at the other tokens
The CLS token is never read by the readout: what is written there reaches the output only through later
heads, and is counted in their writes.

The frozen-attention change is a causal counterpart of `stay`: member B's pass with every attention
write at every token held at member A's (the change then flows only through each token's own stream and
MLPs). That state is off-distribution; it is reported signed, beside the split, not inside it.
"""

from __future__ import annotations

import torch

from vitheads.interp.cache import ActivationCache, run_with_cache
from vitheads.interp.edits import Edit, run_with_edits
from vitheads.interp.hooked import HookedViT

POINTS = ("hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_mlp_out")


def component_writes(hooked: HookedViT, cache: ActivationCache) -> list[torch.Tensor]:
    """The writes that sum to the final stream, each [B, N, D], in component order: the embedding, then
    per layer each head (its write alone) and the MLP; the attention biases, equal in every pass, are
    added to the embedding so that the sum is the stream."""
    bias = sum(hooked.attention_bias(l) for l in range(hooked.depth))  # [D]
    writes = [cache.resid_pre[0] + bias]
    for l, (z, mlp_out) in enumerate(zip(cache.z, cache.per_layer("hook_mlp_out"))):
        writes += list(hooked.head_writes(l, z).unbind(2))  # H writes [B, N, D]
        writes.append(mlp_out)
    return writes


def readout_per_token(hooked: HookedViT, h: torch.Tensor) -> torch.Tensor:
    """[B, P, T]: what each patch token's final stream h [B, N, D] contributes to each output (the head's
    bias left out: it is the same in every pass)."""
    model = hooked.model
    normed = model.fc_norm(model.norm(h)[:, hooked.prefix :])  # [B, P, D]
    if model.readout_keep is not None:  # a planted model's readout reads no cue token
        normed = normed * model.readout_keep[:, None]
    weight = model.head.weight.view(model.head.weight.shape[0], *normed.shape[1:])  # [T, P, D]
    return torch.einsum("bpd,tpd->bpt", normed, weight)


def telescope(hooked: HookedViT, start: list[torch.Tensor], end: list[torch.Tensor]) -> torch.Tensor:
    """[K, B, P, T]: each component's share when the writes go from `start` to `end` one at a time."""
    state = sum(start)
    before = readout_per_token(hooked, state)
    shares = []
    for s, e in zip(start, end):
        state = state + (e - s)
        after = readout_per_token(hooked, state)
        shares.append(after - before)
        before = after
    return torch.stack(shares)


@torch.inference_mode()
def route_changes(hooked: HookedViT, a: ActivationCache, b: ActivationCache, changed: torch.Tensor) -> torch.Tensor:
    """[B, 2, K, 2, T]: per pair, for the forward (A's stream, B's writes put in) and the reverse patching
    (sign turned, so both estimate B minus A), each component's share of the output change at the changed
    tokens and at the others (changed: [B, N] bool, CLS included); K = 1 + L * (H + 1)."""
    wa, wb = component_writes(hooked, a), component_writes(hooked, b)
    forward, reverse = telescope(hooked, wa, wb), -telescope(hooked, wb, wa)  # [K, B, P, T]
    at = changed[:, hooked.prefix :].to(forward.dtype)  # [B, P]
    split = lambda s: torch.stack([torch.einsum("kbpt,bp->bkt", s, w) for w in (at, 1 - at)], 2)  # [B, K, 2, T]
    return torch.stack([split(forward), split(reverse)], 1)


@torch.inference_mode()
def frozen_attention_change(hooked: HookedViT, a: ActivationCache, b: ActivationCache) -> torch.Tensor:
    """[B, T]: B's output minus A's when every attention write of B's pass is held at A's."""
    held = [Edit(f"blocks.{l}.hook_attn_out", "replace", w) for l, w in enumerate(a.per_layer("hook_attn_out"))]
    return run_with_edits(hooked, held, resid=b.resid_pre[0]) - a.output


@torch.inference_mode()
def resampled(hooked: HookedViT, a: ActivationCache, changed: torch.Tensor) -> ActivationCache:
    """A's pass with the changed tokens' embeddings taken from another image of the batch (image i from
    image i - 1): the element's tokens resampled, a second baseline beside the paired render. A batch of one
    image has no other: vitheads.interp.causal marks its resampled measures NaN."""
    embedding = a.resid_pre[0]  # [B, N, D]
    other = torch.where(changed[..., None], embedding.roll(1, 0), embedding)
    return run_with_cache(hooked, None, POINTS, resid=other)
