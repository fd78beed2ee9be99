"""Head ablation: replace one head's output before the output projection, measure the damage.

Correct where the paper's code is not: the replacement happens inside the forward pass that
produces the loss, covers the head's whole slice of `blocks.{l}.attn.hook_z`, and is applied to
that activation, so weights are never modified.

Fast by design: per batch, one activation cache (vitheads.interp.cache). Each ablation is an edit of
layer l's hook_z (vitheads.interp.edits), run from the cached head outputs: only the rest of block l and
blocks l+1..L are recomputed, the ablations of one layer (heads x modes) stacked as copies of the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.interp.cache import run_with_cache
from vitheads.interp.edits import STACK_ROWS, Edit, run_copies
from vitheads.interp.hooked import HookedViT
from vitheads.model.vit import device_of, to_input
from vitheads.records import Ablation, SweepErrors
from vitheads.threads import release_freed_memory


@torch.inference_mode()
def mean_head_outputs(model: nn.Module, images: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Per layer, every head's output averaged over the images, per token position: [N, H, Dh]."""
    hooked = HookedViT(model)
    sums = [None] * hooked.depth

    def accumulate(layer):
        def hook(z):
            sums[layer] = z.sum(0) if sums[layer] is None else sums[layer] + z.sum(0)

        return hook

    hooks = {f"blocks.{l}.attn.hook_z": accumulate(l) for l in range(hooked.depth)}
    for start in range(0, len(images), batch_size):
        hooked.run(to_input(images[start : start + batch_size], device_of(model)), hooks)
    return [s / len(images) for s in sums]


def ablation_edit(a: Ablation, means: list[torch.Tensor]) -> Edit:
    """The edit of hook_z that ablates a's heads: zero, or each head's mean output per position."""
    hook = f"blocks.{a.layer}.attn.hook_z"
    if a.mode == "zero":
        return Edit(hook, "zero", heads=a.heads)
    return Edit(hook, "replace", means[a.layer], heads=a.heads)  # [N, H, Dh] broadcast over the batch


@torch.inference_mode()
def sweep(
    model: nn.Module,
    images: np.ndarray,
    z_true: np.ndarray,
    ablations: list[Ablation],
    batch_size: int,
    max_rows: int = STACK_ROWS,
) -> SweepErrors:
    """Squared errors of the clean model and of every ablation, per image and target."""
    model.eval()
    hooked = HookedViT(model)
    means = mean_head_outputs(model, images, batch_size) if any(a.mode == "mean" for a in ablations) else []
    by_layer = {l: [a for a in ablations if a.layer == l] for l in sorted({a.layer for a in ablations})}
    baseline, ablated = [], {a: [] for a in ablations}
    progress = tqdm(total=len(ablations) * len(images), desc="ablate", unit="img·head")
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size], device_of(model))
        y = torch.from_numpy(z_true[start : start + batch_size]).to(x.device)
        release_freed_memory()
        cache = run_with_cache(hooked, x)
        baseline.append(((cache.output - y) ** 2).cpu().numpy())
        for layer, todo in by_layer.items():
            out = run_copies(hooked, cache, layer, [[ablation_edit(a, means)] for a in todo], max_rows)  # [K, B, T]
            for a, o in zip(todo, out):
                ablated[a].append(((o - y) ** 2).cpu().numpy())
            progress.update(len(todo) * len(x))
    progress.close()
    return SweepErrors(np.concatenate(baseline), {a: np.concatenate(e) for a, e in ablated.items()})


def all_heads(depth: int, num_heads: int, modes: list[str]) -> list[Ablation]:
    return [Ablation(l, (h,), m) for m in modes for l in range(depth) for h in range(num_heads)]
