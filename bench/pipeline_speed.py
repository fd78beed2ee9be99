"""The default pipeline's old path (commit 49529b1) against the new one, same model and data, one run.

Usage: python bench/pipeline_speed.py [--images 50] [--repeats 3] [--pairs 0]   (after `dvc repro generate`;
uses the trained model in models/ when there is one, else a randomly initialised one: speed does
not depend on the weights)

Prints one `<what>: <ratio>x` line per speed-up (old time / new time, or old count / new count):
- training steps per second: AdamW's loop kernel and contiguous images (old) against
  `finetune.fused_optimizer` and `finetune.channels_last` (new), the same batches, interleaved;
- images to target accuracy: training images seen until the validation MSE is within 0.01 (z-scored;
  about 0.01 of R^2) of the old recipe's best, from the two recipes' recorded validation curves
  (49529b1's plots/finetune/history.csv, read from git, and this checkout's);
- ablation sweep, images x heads per second: each ablation re-running its whole layer under a
  hook_z hook (old) against starting from the layer's cached clean head outputs (new);
- author protocol: test images it runs on (it did not exist at 49529b1; the default emulated all);
- patching (the causal stage; it did not exist at 49529b1, so old means its first version): every
  head of every layer patched into 50 pairs, one stack of all heads per layer (old) against stacks of
  at most 128 rows, as the ablation sweep stacks (new);
- causal pair renders per second: one process (old) against a pool of one process per thread (new).
"""

import argparse
import io
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vitheads import params, threads
from vitheads.data.dataset import load_split
from vitheads.data.furniture import Distortions
from vitheads.data.pairs import PairRenderer, render_pairs, render_variants
from vitheads.data.variants import available_variants
from vitheads.interp.ablation import Ablation, replace_heads
from vitheads.interp.cache import STACK_ROWS, finish_block, run_from, run_with_cache
from vitheads.interp.patching import patched_layer
from vitheads.model.hooks import hooked
from vitheads.model.training import split_indices, train
from vitheads.model.vit import Scaling, build_model, load_trained, to_input
from vitheads.names import TARGETS

OLD = "49529b1"
TOLERANCE = 0.01
OLD_STEP = {"fused_optimizer": False, "channels_last": False}


def ratio(what: str, old: float, new: float) -> None:
    print(f"{what}: {old / new:.2f}x", flush=True)


def training_seconds(p: dict, images: np.ndarray, z: np.ndarray, step: dict, steps: int) -> float:
    """Seconds for `steps` optimizer steps of the default model from its seeded init."""
    f = {**p["finetune"], **step, "epochs": 1, "patience": 1}
    torch.manual_seed(p["seed"])
    model = build_model(p["model"], z.shape[1])
    rows = np.arange(steps * f["batch_size"]), np.arange(steps * f["batch_size"], steps * f["batch_size"] + 8)
    started = time.perf_counter()
    train(model, images, z, rows, f, p["seed"])
    return time.perf_counter() - started


def images_to_target(history: pd.DataFrame, per_epoch: int, target: float) -> int | None:
    reached = history.index[history["val_loss"] <= target]
    return None if reached.empty else int(history.loc[reached[0], "epoch"]) * per_epoch


def train_rows(p: dict) -> int:
    """Training images per epoch (the train split less the validation rows)."""
    return len(split_indices(p["generate"]["n_train"], p["finetune"]["val_fraction"], p["seed"])[0])


def recipe_ratio(p: dict) -> None:
    read = lambda path: (
        subprocess.run(["git", "show", f"{OLD}:{path}"], capture_output=True, text=True, check=True).stdout
    )
    old_history, new_history = (
        pd.read_csv(io.StringIO(read("plots/finetune/history.csv"))),
        pd.read_csv("plots/finetune/history.csv"),
    )
    target = old_history["val_loss"].min() + TOLERANCE
    old = images_to_target(old_history, train_rows(params.read_yaml(read("params.yaml"))), target)
    new = images_to_target(new_history, train_rows(p), target)
    if new is None:
        print(f"images to target accuracy (val MSE <= {target:.4f}): not reached by the new recipe")
    else:
        ratio(f"images to target accuracy (val MSE <= {target:.4f}; {old} vs {new} images)", old, new)


def timed_sweep(model, x: torch.Tensor, means: list, old: bool) -> tuple[float, torch.Tensor]:
    """Seconds for every single-head ablation of every layer, in stacks of two as the sweep does,
    and the outputs [ablations, B, T]."""
    heads, outputs = model.blocks[0].attn.num_heads, []
    started = time.perf_counter()
    with torch.inference_mode():
        clean = run_with_cache(model, x)
        for layer in range(len(model.blocks)):
            todo = [Ablation(layer, (h,), m) for m in ("zero", "mean") for h in range(heads)]
            for g in range(0, len(todo), 2):
                chunks = todo[g : g + 2]
                stacked = clean.resid_pre[layer].repeat(len(chunks), 1, 1)
                if old:
                    with hooked(
                        model, {f"blocks.{layer}.attn.hook_z": lambda z, chunks=chunks: replace_heads(z, chunks, means)}
                    ):
                        out = run_from(model, layer, stacked)
                else:
                    z = replace_heads(clean.z[layer].repeat(len(chunks), 1, 1, 1), chunks, means)
                    out = run_from(model, layer + 1, finish_block(model.blocks[layer], stacked, z))
                outputs += list(out.view(len(chunks), len(x), -1))
    return time.perf_counter() - started, torch.stack(outputs)


def increase_gap(old: torch.Tensor, new: torch.Tensor, clean: torch.Tensor, y: torch.Tensor) -> str:
    """How far the new path's per-ablation MSE increases (%) are from the old path's."""
    base = ((clean - y) ** 2).mean()
    increase = lambda out: (((out - y) ** 2).mean((1, 2)) - base) / base * 100
    a, b = increase(old), increase(new)
    relative = ((a - b).abs() / a.abs())[a.abs() > 0.1].max()
    gap = (a - b).abs().max()
    return f"largest gap {gap:.2e} percentage points; largest relative gap where |increase| > 0.1%: {relative:.2e}"


def timed_patching(model, target, source, max_rows: int) -> tuple[float, torch.Tensor]:
    """Seconds to patch every head of every layer from source into target, and the outputs [L, H, B, T]."""
    started = time.perf_counter()
    outputs = torch.stack([patched_layer(model, target, source, layer, max_rows) for layer in range(len(model.blocks))])
    return time.perf_counter() - started, outputs


def patching_ratio(model, x: torch.Tensor, repeats: int) -> None:
    """Old (all heads in one stack) against new (STACK_ROWS rows), interleaved; target and source are
    two halves of the images, as a pair's members."""
    half = len(x) // 2
    with torch.inference_mode():
        target, source = run_with_cache(model, x[:half]), run_with_cache(model, x[half : 2 * half])
    stacks = {"old": model.blocks[0].attn.num_heads * half, "new": STACK_ROWS}
    times, outputs = {"old": [], "new": []}, {}
    for _ in range(repeats):
        for path, rows in stacks.items():
            seconds, outputs[path] = timed_patching(model, target, source, rows)
            times[path].append(seconds)
    ratio(
        f"patching images x heads per second ({half} pairs)",
        statistics.median(times["old"]),
        statistics.median(times["new"]),
    )
    print(
        "  same patches, new stacks vs old: largest |difference| "
        f"{(outputs['old'] - outputs['new']).abs().max():.2e} (z units)"
    )


def render_ratio(p: dict, n: int) -> None:
    """Seconds to render n pairs of every variant, one process against the pool (its start included)."""
    size, patch, distortions = p["model"]["image_size"], p["model"]["patch_size"], Distortions(**p["distortion"])
    variants = available_variants(distortions)
    started = time.perf_counter()
    renderer = PairRenderer(size, distortions)
    one = [render_pairs(v, p["seed"], patch, n, renderer) for v in variants]
    old = time.perf_counter() - started
    started = time.perf_counter()
    pooled = list(render_variants(variants, p["seed"], size, patch, distortions, n, threads.budget()))
    new = time.perf_counter() - started
    same = all(np.array_equal(a.images, b.images) for a, b in zip(one, pooled))
    ratio(f"causal pair renders per second ({len(variants)} variants x {n} pairs; identical: {same})", old, new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="images per ablation batch (the sweep's batch size)")
    parser.add_argument("--steps", type=int, default=8, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pairs", type=int, default=0, help="pairs per variant for the render timing (0: causal.images)"
    )
    args = parser.parse_args()
    p = params.load()
    threads.limit_torch()
    data = load_split("data/generated", "train")
    z = np.random.default_rng(0).standard_normal((len(data.labels), 3)).astype(np.float32)  # speed only

    times = {"old": [], "new": []}
    for _ in range(args.repeats):
        times["old"].append(training_seconds(p, data.images, z, OLD_STEP, args.steps))
        times["new"].append(training_seconds(p, data.images, z, {}, args.steps))
    ratio("training steps per second", statistics.median(times["old"]), statistics.median(times["new"]))
    recipe_ratio(p)

    trained = Path("models/model.safetensors").is_file()
    model, config = load_trained("models") if trained else (build_model(p["model"], 3).eval(), None)
    test = load_split("data/generated", "test")
    x = to_input(test.images[: args.images])
    with torch.inference_mode():
        clean = run_with_cache(model, x)
    means = [z.mean(0) for z in clean.z]  # [N, H, Dh] per layer
    times, outputs = {"old": [], "new": []}, {}
    for _ in range(args.repeats):
        for path in times:
            seconds, outputs[path] = timed_sweep(model, x, means, old=path == "old")
            times[path].append(seconds)
    ratio("ablation sweep images x heads per second", statistics.median(times["old"]), statistics.median(times["new"]))
    if trained:
        y = torch.from_numpy(Scaling.from_config(config).z(test.labels[list(TARGETS)].to_numpy()[: args.images]))
        print("  same ablations, new path vs old:", increase_gap(outputs["old"], outputs["new"], clean.output, y))
    a = p["ablate"]
    ratio(
        "author protocol images (one cumulative pass: time scales with them)",
        p["generate"]["n_test"],
        a["author_images"] or p["generate"]["n_test"],
    )
    patching_ratio(model, to_input(test.images[: 2 * args.images]), args.repeats)
    render_ratio(p, args.pairs or p["causal"]["images"])


if __name__ == "__main__":
    main()
