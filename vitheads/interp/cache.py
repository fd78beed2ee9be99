"""The activation cache every analysis starts from: one clean pass of the hooked ViT per batch
(vitheads.interp.hooked), keeping the hook points asked for (by default each block's input and head
outputs, from which an edit of a layer's heads restarts without recomputing that layer's attention)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from vitheads.interp.hooked import HookedViT, HookFn

DEFAULT_POINTS = ("hook_resid_pre", "attn.hook_z")


@dataclass
class ActivationCache:
    """Activations of one pass by hook name (TransformerLens names and shapes), and the output [B, T]."""

    store: dict[str, torch.Tensor]
    output: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.store:
            raise KeyError(f"'{name}' was not cached (cached: {len(self.store)} points; pass it in `points`)")
        return self.store[name]

    def per_layer(self, point: str) -> list[torch.Tensor]:
        """One point's activation in every block, in order."""
        depth = sum(name.endswith("." + point) for name in self.store)
        return [self[f"blocks.{l}.{point}"] for l in range(depth)]

    @property
    def resid_pre(self) -> list[torch.Tensor]:  # per block [B, N, D]
        return self.per_layer("hook_resid_pre")

    @property
    def z(self) -> list[torch.Tensor]:  # per block [B, N, H, Dh]
        return self.per_layer("attn.hook_z")

    def rows(self, keep: slice) -> ActivationCache:
        """The cache of some images of the batch."""
        return ActivationCache({k: v[keep] for k, v in self.store.items()}, self.output[keep])


def run_with_cache(
    model_or_pass,
    x: torch.Tensor | None,
    points: Sequence[str] = DEFAULT_POINTS,
    readout: bool = False,
    hooks: Mapping[str, HookFn] | None = None,
    resid: torch.Tensor | None = None,
    names: Sequence[str] = (),
) -> ActivationCache:
    """The pass on images x (or from the embedded stream `resid`), keeping `points` (names within a block)
    in every block, the readout's input if asked, and any hook points named in full; with `hooks`, the pass
    they change, each point kept as they leave it."""
    hooked = model_or_pass if isinstance(model_or_pass, HookedViT) else HookedViT(model_or_pass)
    store: dict[str, torch.Tensor] = {}
    names = (
        [f"blocks.{l}.{p}" for l in range(hooked.depth) for p in points] + (["hook_readout_in"] * readout) + list(names)
    )
    hooks = hooks or {}

    def keep(name: str) -> HookFn:
        change = hooks.get(name, lambda value: None)

        def fn(value):
            new = change(value)
            store[name] = value if new is None else new
            return new

        return fn

    output = hooked.run(x, hooks={**hooks, **{name: keep(name) for name in names}}, resid=resid)
    return ActivationCache(store, output)
