"""What one graded-benchmark evaluation costs on the tests' tiny model (vitheads.study.graded): one calibration
evaluation (implant, then the pairs' change from the implanted block on), one measure of every method on an
implanted model (measure_variant with key/value patching and the route split), and one implant's whole
calibration to the study's levels. Tiny model only: the default model's cost is an extrapolation
(docs/graded.md).

    python bench/graded_cost.py [--pairs 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tests.conftest import make_tiny_model
from vitheads import params
from vitheads.analysis.stats import bootstrap_weights
from vitheads.data.furniture import Distortions
from vitheads.data.pairs import PairRenderer, render_pairs
from vitheads.interp.causal import measure_variant
from vitheads.interp.implant import PairChanges, calibrate, design, implant_effect
from vitheads.study.graded import LEVELS_Z


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    p = params.load()
    c = p["causal"]
    model = make_tiny_model(image_size=96, patch_size=16)
    started = time.perf_counter()
    pairs = render_pairs("tick_labels_text", 7, 16, args.pairs, PairRenderer(96, Distortions(**p["distortion"])))
    render = time.perf_counter() - started
    spec = design(model, "head", 1, 0, pairs, (1,))
    changes = PairChanges(model, pairs, spec.layer)
    base = changes.changes(model)
    evaluation = timed(lambda: implant_effect(model, spec.with_gain(1.0), changes, base), args.repeats)
    z = np.zeros((args.pairs, 3), np.float32)
    patched = min(c["patch_images"], args.pairs)
    _ = bootstrap_weights(args.pairs, c["bootstrap"], 0)
    measure = timed(lambda: measure_variant(model, pairs, z, c["batch_size"], patched, 0.0, kv=True), args.repeats)
    started = time.perf_counter()
    found = calibrate(model, spec, pairs, list(LEVELS_Z))
    whole = time.perf_counter() - started
    print(f"tiny model (96 px, 3 blocks x 3 heads, dim 24), {args.pairs} pairs, best of {args.repeats}:")
    print(f"  rendering the pairs: {render:.2f} s")
    print(f"  one calibration evaluation: {evaluation * 1000:.1f} ms")
    print(f"  one measure of every method (measure_variant, kv): {measure:.2f} s")
    print(
        f"  calibrating one implant to {len(LEVELS_Z)} levels: {whole:.2f} s, {len(found)} levels, "
        f"{sum(f.evaluations for f in found)} evaluations after the probe, reached {sum(f.reached for f in found)}"
    )


if __name__ == "__main__":
    main()
