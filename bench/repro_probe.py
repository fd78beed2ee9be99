"""Which CPU-library dispatch settings change the trained weights, and where the first difference arises.

    python bench/repro_probe.py [--steps 20]

For each setting (environment variables read by oneDNN, MKL and ATen when the process starts) a child
process builds the default model (params.yaml `model`, seed), renders 64 images, records every module's
forward output and every module's gradient of its output in one forward/backward pass, then trains
`--steps` steps of the finetune stage's loop and hashes the weights. The parent compares each setting
with the default: the first module (in execution order) whose forward output or output gradient
differs bit for bit, the final weights' hash, and the seconds per step (noisy: one short run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "default": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "all three at AVX2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "one thread": {"VITHEADS_THREADS": "1"},
}
N_IMAGES, BATCH = 64, 32


def child(out: Path, steps: int) -> None:
    import numpy as np
    import torch

    from vitheads import params, threads
    from vitheads.data.chirps import sample_chirp, spectrogram
    from vitheads.data.furniture import Distortions
    from vitheads.data.rendering import PlotRenderer, title_for
    from vitheads.model.training import train
    from vitheads.model.vit import build_model, to_input

    threads.limit_torch()
    p = params.load()
    renderer = PlotRenderer(p["model"]["image_size"], Distortions())
    images, targets = [], []
    for i in range(N_IMAGES):
        rng = np.random.default_rng([7, i])
        chirp = sample_chirp(rng)
        images.append(renderer.render(spectrogram(chirp, rng), chirp, title_for(i + 1, chirp))[0])
        targets.append([chirp.start_time / 45 - 0.5, chirp.start_freq / 100 - 0.5, chirp.end_freq / 100 - 0.5])
    images, z = np.stack(images), np.asarray(targets, np.float32)
    torch.manual_seed(p["seed"])
    model = build_model(p["model"], 3)
    torch.nn.init.normal_(model.head.weight, std=0.01)
    model = model.to(memory_format=torch.channels_last)

    records: dict[str, np.ndarray] = {}
    order: list[str] = []

    def keep(prefix):
        def hook(module, args, output):
            key = f"{prefix}{len(order):04d} {module.__class__.__name__} {names[module]}"
            order.append(key)
            records[key] = (output[0] if isinstance(output, tuple) else output).detach().float().numpy().copy()

        return hook

    names = {m: n or "model" for n, m in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children()) and not getattr(m, "inplace", False)]
    backward = keep("bwd ")

    def forward_and_grad(module, args, output):
        keep("fwd ")(module, args, output)
        if output.requires_grad:  # the gradient arriving at this output, recorded in backward's order
            output.register_hook(lambda grad: backward(module, None, grad))

    handles = [m.register_forward_hook(forward_and_grad) for m in leaves]
    x = to_input(images[:BATCH]).contiguous(memory_format=torch.channels_last)
    loss = torch.nn.functional.mse_loss(model(x), torch.from_numpy(z[:BATCH]))
    loss.backward()
    for h in handles:
        h.remove()
    model.zero_grad(set_to_none=True)

    f = {**p["finetune"], "batch_size": BATCH, "epochs": max(1, steps * BATCH // (N_IMAGES - 16)), "patience": 99}
    split = (np.arange(16, N_IMAGES), np.arange(16))
    started = time.perf_counter()
    train(model, images, z, split, f, p["seed"])
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(b"".join(v.contiguous().numpy().tobytes() for v in model.state_dict().values())).hexdigest()
    np.savez(out, **records)
    out.with_suffix(".json").write_text(
        json.dumps(
            {"order": order, "sha256": digest, "seconds": seconds, "steps": f["epochs"] * -(-(N_IMAGES - 16) // BATCH)}
        )
    )


def first_difference(a: dict, b: dict, order: list[str], kind: str) -> str:
    import numpy as np

    for key in (k for k in order if k.startswith(kind)):
        if not np.array_equal(a[key], b[key]):
            return f"{key.split(' ', 2)[2]} ({key.split(' ')[2]}), max |diff| {np.abs(a[key] - b[key]).max():.2e}"
    return "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    import numpy as np

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in SETTINGS.items():
            out = Path(tmp) / f"{len(results)}.npz"
            subprocess.run(
                [sys.executable, __file__, "--child", str(out), "--steps", str(args.steps)],
                check=True,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results[name] = (dict(np.load(out)), json.loads(out.with_suffix(".json").read_text()))
    base, meta = results["default"]
    print(
        f"{meta['steps']} training steps of {BATCH} images; default weights sha256 {meta['sha256'][:16]}, "
        f"{meta['seconds'] / meta['steps']:.3f} s/step"
    )
    for name, (rec, info) in results.items():
        if name == "default":
            continue
        same = "same weights" if info["sha256"] == meta["sha256"] else "OTHER weights"
        print(
            f"{name}: {same}; {info['seconds'] / meta['seconds']:.2f}x the default's time; "
            f"first forward difference: {first_difference(base, rec, meta['order'], 'fwd')}; "
            f"first gradient difference: {first_difference(base, rec, meta['order'], 'bwd')}"
        )


if __name__ == "__main__":
    main()
