"""The real `dvc` CLI on a throwaway copy of the pipeline with tiny params."""

import json

import numpy as np

from vitheads.data.dataset import load_split
from vitheads.names import CLASS_ID


def test_generate_stage_runs_under_dvc_and_reruns_only_on_change(project):
    project.dvc("repro", "generate")
    test = load_split(project.path / "data/generated", "test")
    assert test.images.shape == (8, 96, 96, 3)
    metrics = json.loads((project.path / "metrics/generate.json").read_text())
    assert metrics["images"] == 32 and metrics["test_area_share"]["colorbar"] > 0

    again = project.dvc("repro", "generate")
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout

    project.set_params({"distortion": {"colorbar": False}})
    rerun = project.dvc("repro", "generate")
    assert "Running stage 'generate'" in rerun.stdout
    masks = np.load(project.path / "data/generated/train/masks.npy")
    assert not np.isin(masks, [CLASS_ID["colorbar"], CLASS_ID["colorbar_text"]]).any()


def test_bad_param_stops_the_stage_before_any_work(project):
    project.set_params({"distortion": {"colorbarr": False}})
    result = project.dvc("repro", "generate", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "unknown parameter 'distortion.colorbarr'; did you mean 'distortion.colorbar'" in output
    assert "Traceback" not in output
    assert not (project.path / "data/generated").exists()
