"""Smoke run of the GPU path: every stage of a small pipeline on CUDA, with finetune.precision fp32
and then bf16, in a throwaway copy of the project. Prints each stage's seconds, the test R^2 of
both precisions, the bf16 speed-up of the finetune, and how far the GPU's predictions are from the
CPU's for the same trained weights. Without a CUDA device it says so and exits 0.

    python bench/cuda_smoke.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitheads.data.dataset import load_split  # noqa: E402
from vitheads.model.vit import load_trained, predict  # noqa: E402
from vitheads.names import TARGETS  # noqa: E402
from vitheads.params import read_yaml  # noqa: E402

PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "vitheads", "templates"]
SMALL = {"generate": {"n_train": 1024, "n_test": 128}, "finetune": {"epochs": 3}, "attention": {"example_images": 8}}


def copy_project(target: Path, overrides: dict) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        shutil.copytree(source, target / name) if source.is_dir() else shutil.copy2(source, target / name)
    p = read_yaml((target / "params.yaml").read_text())
    for section, values in overrides.items():
        p[section].update(values)
    (target / "params.yaml").write_text(json.dumps(p))  # JSON is YAML


def run_stages(project: Path, names: list[str]) -> dict[str, float]:
    seconds = {}
    for name in names:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=project, check=True)
        seconds[name] = time.perf_counter() - started
    return seconds


def set_precision(project: Path, precision: str) -> None:
    p = read_yaml((project / "params.yaml").read_text())
    p["finetune"]["precision"] = precision
    (project / "params.yaml").write_text(json.dumps(p))


def gpu_vs_cpu_gap(project: Path) -> float:
    """Largest |prediction on GPU - prediction on CPU| (z-score units) over the test images."""
    model, _ = load_trained(project / "models")
    images = load_split(project / "data/generated", "test").images
    on_cpu = predict(model, images)
    on_gpu = predict(model.to("cuda"), images)
    return float(np.abs(on_gpu - on_cpu).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to validate (the GPU path runs where one is)")
        return
    print(f"device: {torch.cuda.get_device_name()}, bf16 supported: {torch.cuda.is_bf16_supported()}")
    project = args.keep or Path(tempfile.mkdtemp(prefix="vitheads-cuda-"))
    copy_project(project, SMALL)
    stages = list(read_yaml((project / "dvc.yaml").read_text())["stages"])
    print(f"generate: {run_stages(project, ['generate'])['generate']:.1f} s")
    finetune_seconds = {}
    for precision in ("fp32", "bf16"):
        set_precision(project, precision)
        seconds = run_stages(project, stages[1:])
        finetune_seconds[precision] = seconds["finetune"]
        metrics = json.loads((project / "metrics/finetune.json").read_text())
        r2 = " / ".join(f"{metrics[t]['r2']:.3f}" for t in TARGETS)
        print(f"{precision}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + f"; test R2 {r2}")
        print(f"{precision}: largest GPU-CPU prediction gap {gpu_vs_cpu_gap(project):.2e} (z units)")
    print(f"bf16 finetune speed-up over fp32: {finetune_seconds['fp32'] / finetune_seconds['bf16']:.2f}x")
    if not args.keep:
        shutil.rmtree(project)


if __name__ == "__main__":
    main()
