"""Rendering throughput, masks and patch fractions included, on all cores and on one.

Usage: python bench/render_throughput.py [n_images] [image_size]
Target (issue 2): >= 100 images/s at 160 px on the 2-core dev machine.
The seed author's chirp-spectrogram-generator 0.1.6 renders 6.4 images/s there, without masks.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vitheads.data.chirps import sample_chirp, spectrogram
from vitheads.data.furniture import Distortions
from vitheads.data.generation import RenderSpec, write_dataset
from vitheads.data.rendering import PlotRenderer, title_for

AUTHOR_IMAGES_PER_SECOND = 6.4
TARGET = 100.0


def single_process(n: int, size: int) -> float:
    renderer = PlotRenderer(size, Distortions())
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in range(n):
        chirp = sample_chirp(rng)
        renderer.render(spectrogram(chirp, rng), chirp, title_for(i + 1, chirp))
    return n / (time.perf_counter() - started)


def all_cores(n: int, size: int) -> float:
    spec = RenderSpec(seed=0, image_size=size, patch_size=16, distortions=Distortions())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_dataset(spec, {"train": n}, Path(tmp))
        return n / (time.perf_counter() - started)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 160
    one = single_process(min(n, 500), size)
    many = all_cores(n, size)
    print(f"image size {size} px, masks and patch fractions included")
    print(f"one process:          {one:7.1f} img/s")
    print(f"all {all_cores()} cores (to disk): {many:7.1f} img/s  (pool start-up and writing included)")
    print(f"vs target {TARGET:.0f} img/s:     {many / TARGET:7.2f}x")
    print(f"vs seed author's {AUTHOR_IMAGES_PER_SECOND} img/s: {many / AUTHOR_IMAGES_PER_SECOND:6.1f}x")


if __name__ == "__main__":
    main()
