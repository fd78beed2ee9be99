"""The GPU path, where torch sees a CUDA device: the smoke bench runs every stage in fp32 and bf16."""

import subprocess
import sys

import pytest
import torch
from conftest import ROOT


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device visible to torch; the GPU path is validated where one is"
)
def test_cuda_smoke_bench_runs_every_stage_in_both_precisions():
    result = subprocess.run([sys.executable, "bench/cuda_smoke.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for precision in ("fp32", "bf16"):
        assert f"{precision}: largest GPU-CPU prediction gap" in result.stdout
    gap = float(result.stdout.split("fp32: largest GPU-CPU prediction gap ")[1].split()[0])
    assert gap < 1e-2, "an fp32 model predicts the same on GPU and CPU up to TF32 rounding"
