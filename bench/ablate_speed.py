"""The 144-head zero-ablation sweep: fast engine vs the naive correct loop, same model and images.

Usage: python bench/ablate_speed.py [n_images]   (after `dvc repro finetune`)
Target (issue 4): fast <= 0.6x the naive loop's time; prefix reuse alone bounds it near
(L + 1) / (2L) = 0.54x for 12 layers. Also prints the achieved FLOP rate of both against the
machine's measured matmul rate for the same FLOPs.
"""

import sys
import time

import numpy as np
import torch

from vitheads.data.dataset import load_split
from vitheads.interp.ablation import all_heads, sweep
from vitheads.model.vit import Scaling, load_trained, to_input
from vitheads.names import TARGETS

BATCH = 50


def block_flops(tokens: int, dim: int, mlp_ratio: float) -> float:
    """Multiply-adds x 2 of one transformer block on one image (qkv, scores, mix, proj, MLP)."""
    return 2 * (
        tokens * dim * 3 * dim + 2 * tokens * tokens * dim + tokens * dim * dim + 2 * tokens * dim * mlp_ratio * dim
    )


def naive(model, images: np.ndarray, z_true: np.ndarray, depth: int, heads: int) -> float:
    """One full forward over all images per head, with a hook zeroing that head's slice."""
    dh = model.embed_dim // heads
    y = torch.from_numpy(z_true)
    started = time.perf_counter()
    for layer in range(depth):
        for head in range(heads):

            def zero(module, args, head=head):
                z = args[0].clone()
                z[..., head * dh : (head + 1) * dh] = 0
                return (z,)

            handle = model.blocks[layer].attn.proj.register_forward_pre_hook(zero)
            with torch.inference_mode():
                sum(
                    float(((model(to_input(images[i : i + BATCH])) - y[i : i + BATCH]) ** 2).sum())
                    for i in range(0, len(images), BATCH)
                )
            handle.remove()
    return time.perf_counter() - started


def matmul_rate(rows: int, dim: int, hidden: int) -> float:
    """GFLOP/s of torch.mm on the MLP's shape: the best this machine does on these sizes."""
    a, b = torch.randn(rows, dim), torch.randn(dim, hidden)
    for _ in range(3):
        a @ b
    started, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    return 2 * rows * dim * hidden * reps / (time.perf_counter() - started) / 1e9


def main() -> None:
    torch.set_num_threads(torch.get_num_threads())
    model, config = load_trained("models")
    test = load_split("data/generated", "test")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else len(test.labels)
    images = np.asarray(test.images[:n])
    z_true = Scaling.from_config(config).z(test.labels[list(TARGETS)].to_numpy()[:n])
    depth, heads = len(model.blocks), model.blocks[0].attn.num_heads
    tokens, dim = model.patch_embed.num_patches + model.num_prefix_tokens, model.embed_dim
    per_block = block_flops(tokens, dim, config["model"]["mlp_ratio"])

    started = time.perf_counter()
    sweep(model, images, z_true, all_heads(depth, heads, ["zero"]), BATCH)
    fast = time.perf_counter() - started
    slow = naive(model, images, z_true, depth, heads)

    fast_blocks = n * (depth + heads * sum(depth - l for l in range(depth)))
    slow_blocks = n * depth * depth * heads
    rate = matmul_rate(BATCH * tokens, dim, int(config["model"]["mlp_ratio"] * dim))
    print(f"{depth * heads} heads, zero ablation, {n} images, {tokens} tokens, dim {dim}")
    print(f"naive loop:  {slow:7.1f} s  {slow_blocks * per_block / slow / 1e9:6.1f} GFLOP/s")
    print(f"fast engine: {fast:7.1f} s  {fast_blocks * per_block / fast / 1e9:6.1f} GFLOP/s")
    print(
        f"fast / naive time: {fast / slow:.3f}x  (target <= 0.6x; block-count bound {fast_blocks / slow_blocks:.3f}x)"
    )
    print(
        f"machine matmul rate at the MLP's shape: {rate:.1f} GFLOP/s; fast engine reaches "
        f"{fast_blocks * per_block / fast / 1e9 / rate:.0%} of it"
    )


if __name__ == "__main__":
    main()
