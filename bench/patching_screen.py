"""Attribution patching as a screen for exact head patching: does it miss a head that exact patching of
every head finds, on any response variant, and what does it save?

    python bench/patching_screen.py [RUN_DIR] [--pairs 50] [--fractions 0.1 0.25 0.5]

RUN_DIR holds a finished default run (models/, data/generated/, params.yaml; default: here). For every
response variant, the first --pairs test images are patched exactly for all 144 heads (both directions)
and the heads whose CI of some target's mean |prediction change| clears min_prediction_change are listed;
then, for each fraction f, the heads whose attribution-patching estimate for some target reaches
f x min_prediction_change are the screen's picks. Prints the misses per variant and fraction, and the time
of exact-all against screen-then-exact (ratios).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vitheads import params, threads
from vitheads.analysis.stats import bootstrap_weights, mean_ci
from vitheads.data.dataset import load_first
from vitheads.data.furniture import Distortions
from vitheads.data.pairs import PairRenderer, render_pairs
from vitheads.data.variants import available_variants, response_variants
from vitheads.interp.causal import measure_variant
from vitheads.model.vit import Scaling, load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument(
        "--bars",
        type=float,
        nargs="+",
        help="also count misses at these bars (z units; default: causal.min_prediction_change only), so that a "
        "model with no head passing the real bar still shows whether the screen keeps the heads that pass",
    )
    args = parser.parse_args()
    threads.limit_torch()
    p = params.load(args.run / "params.yaml")
    c, bar = p["causal"], p["causal"]["min_prediction_change"]
    bars = args.bars or [bar]
    model, config = load_trained(args.run / "models")
    test = load_first(args.run / "data/generated", "test", args.pairs)
    z_true = Scaling.from_config(config).z(test.targets())
    distortions = Distortions(**p["distortion"])
    variants = available_variants(distortions)
    patched = [
        v for v in variants if v in {r for k in ("text", "colorbar", "frame") for r in response_variants(k, variants)}
    ]
    renderer = PairRenderer(p["model"]["image_size"], distortions)
    weights = bootstrap_weights(args.pairs, c["bootstrap"], p["seed"])
    exact_seconds, screened_seconds = 0.0, dict.fromkeys(args.fractions, 0.0)
    misses = {(b, f): 0 for b in bars for f in args.fractions}
    for variant in patched:
        pairs = render_pairs(variant, p["seed"], p["model"]["patch_size"], args.pairs, renderer)
        started = time.perf_counter()
        full = measure_variant(model, pairs, z_true, args.pairs, args.pairs, screen=0.0)
        exact_seconds += time.perf_counter() - started
        per_target = full.patch_prediction_change.mean(-2)  # [n, L, H, T]: both directions
        low = mean_ci(per_target.reshape(args.pairs, -1), weights)[1].reshape(per_target.shape[1:])
        estimate = np.abs(full.patch_estimate).mean((0, 3)).max(-1).ravel()  # as measure_variant screens
        for f in args.fractions:
            started = time.perf_counter()
            measure_variant(model, pairs, z_true, args.pairs, args.pairs, screen=f * bar)
            screened_seconds[f] += time.perf_counter() - started
        for b in bars:
            passing = set(np.flatnonzero((low > b).any(-1).ravel()))  # the absolute bar on some target
            line = [f"{variant}, bar {b:g}: {len(passing)} heads pass exactly"]
            for f in args.fractions:
                picked = set(np.flatnonzero(estimate >= f * b))
                misses[b, f] += len(passing - picked)
                line.append(f"f={f:g}: {len(picked)} picked, {len(passing - picked)} missed")
            print("; ".join(line))
    for f in args.fractions:
        missed = ", ".join(f"{misses[b, f]} at bar {b:g}" for b in bars)
        print(
            f"patching, screen at {f:g} x the bar vs every head exactly: {exact_seconds / screened_seconds[f]:.2f}x "
            f"(passing heads missed over {len(patched)} variants: {missed})"
        )


if __name__ == "__main__":
    main()
