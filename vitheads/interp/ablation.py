"""Head ablation: replace one head's output before the output projection, measure the damage.

Correct where the paper's code is not: the replacement happens inside the forward pass that
produces the loss, covers the head's whole slice of `blocks.{l}.attn.hook_z`, and is applied to
that activation, so weights are never modified.

Fast by design: per batch, one activation cache (vitheads.interp.cache). Ablating a head in layer l
starts from layer l's cached head outputs and re-runs only the rest of block l and blocks l+1..L; the
ablations of one layer (heads x modes) are stacked into batches of at most STACK_ROWS rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.interp.cache import STACK_ROWS, finish_block, run_from, run_with_cache, stack_groups
from vitheads.model.hooks import hooked
from vitheads.model.vit import device_of, to_input
from vitheads.threads import release_freed_memory


@dataclass(frozen=True)
class Ablation:
    """Heads of one layer (0-based) replaced together: one head in a sweep, all for a layer."""

    layer: int
    heads: tuple[int, ...]
    mode: str


@dataclass
class SweepErrors:
    """Squared errors per image and target (z-scored): clean, and under each ablation."""

    baseline: np.ndarray  # [n_images, n_targets]
    ablated: dict[Ablation, np.ndarray]


@torch.inference_mode()
def mean_head_outputs(model: nn.Module, images: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Per layer, every head's output averaged over the images, per token position: [N, H, Dh]."""
    sums = [None] * len(model.blocks)

    def accumulate(layer):
        def hook(z):
            sums[layer] = z.sum(0) if sums[layer] is None else sums[layer] + z.sum(0)

        return hook

    with hooked(model, {f"blocks.{l}.attn.hook_z": accumulate(l) for l in range(len(model.blocks))}):
        for start in range(0, len(images), batch_size):
            model(to_input(images[start : start + batch_size], device_of(model)))
    return [s / len(images) for s in sums]


def replace_heads(z: torch.Tensor, chunks: list[Ablation], means: list[torch.Tensor]) -> torch.Tensor:
    """Head outputs of stacked copies [K*B, N, H, Dh] with copy k's heads replaced per chunks[k]."""
    z = z.clone()
    per_copy = z.view(len(chunks), -1, *z.shape[1:])  # [K, B, N, H, Dh], a view of z
    for k, a in enumerate(chunks):
        heads = list(a.heads)
        per_copy[k, :, :, heads] = 0 if a.mode == "zero" else means[a.layer][:, heads]
    return z


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
    means = mean_head_outputs(model, images, batch_size) if any(a.mode == "mean" for a in ablations) else []
    by_layer = {l: [a for a in ablations if a.layer == l] for l in sorted({a.layer for a in ablations})}
    baseline, ablated = [], {a: [] for a in ablations}
    progress = tqdm(total=len(ablations) * len(images), desc="ablate", unit="img·head")
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size], device_of(model))
        y = torch.from_numpy(z_true[start : start + batch_size]).to(x.device)
        release_freed_memory()
        cache = run_with_cache(model, x)
        baseline.append(((cache.output - y) ** 2).cpu().numpy())
        for layer, todo in by_layer.items():
            for group in stack_groups(len(todo), len(x), max_rows):
                chunks = todo[group.start : group.stop]
                z = replace_heads(cache.z[layer].repeat(len(chunks), 1, 1, 1), chunks, means)  # [K*B, N, H, Dh]
                h = finish_block(model.blocks[layer], cache.resid_pre[layer].repeat(len(chunks), 1, 1), z)
                out = run_from(model, layer + 1, h).view(len(chunks), len(x), -1)
                for k, a in enumerate(chunks):
                    ablated[a].append(((out[k] - y) ** 2).cpu().numpy())
                progress.update(len(chunks) * len(x))
    progress.close()
    return SweepErrors(np.concatenate(baseline), {a: np.concatenate(e) for a, e in ablated.items()})


def all_heads(depth: int, num_heads: int, modes: list[str]) -> list[Ablation]:
    return [Ablation(l, (h,), m) for m in modes for l in range(depth) for h in range(num_heads)]
