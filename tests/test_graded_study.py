"""The graded study's runner end to end on a tiny model (vitheads.study.graded): implants drawn, calibrated and
measured, one record per implant appended (resumable), the header fixed before the runs, the gathered scores."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_tiny_model
from vitheads import params
from vitheads.analysis.benchmark import RULE
from vitheads.analysis.graded import ALL_METHODS
from vitheads.report.graded import graded_section
from vitheads.report.render import render
from vitheads.report.study_figures import power_figure
from vitheads.study import graded

SMALL = {"images": 4, "patch_images": 2, "batch_size": 4, "bootstrap": 20}


@pytest.fixture
def small_study(tmp_path, monkeypatch):
    monkeypatch.setattr(graded, "DIR", tmp_path / "graded")
    monkeypatch.setattr(graded, "HEADER", tmp_path / "graded" / "header.json")
    monkeypatch.setattr(graded, "ELEMENTS", ("tick_labels_text",))
    monkeypatch.setattr(graded, "LEVELS_Z", (0.003, 0.03))
    monkeypatch.setattr(graded, "PER_BAND", {"head": 1, "redundant": 1, "mlp": 1})
    monkeypatch.chdir(tmp_path)
    p = params.load(graded.Path(__file__).resolve().parents[1] / "params.yaml")
    p["causal"] |= SMALL
    p["model"] |= {"image_size": 96, "patch_size": 16}
    return p


def test_the_runner_measures_every_implant_once_and_gathers_the_scores(small_study):
    p = small_study
    model = make_tiny_model(image_size=96, patch_size=16)
    config = {"target_mean": [22.5, 50.0, 50.0], "target_std": [10.0, 20.0, 20.0]}
    assert graded.fixed_header(p)["thresholds"]["fdr"] == p["causal"]["fdr"]
    graded.measure_model("graded-tiny-1", 7, model, config, p)
    lines = graded.done_lines(graded.DIR / "graded-tiny-1.jsonl")
    sites = [line.get("site") for line in lines]
    assert sites == [None, "head", "redundant", "mlp", "direct"]  # the control line first
    for line in lines[1:]:
        assert [c["level"] for c in line["calibration"]] == [0.003, 0.03]
        assert {r["level"] for r in line["rows"]} == {0.0, 0.003, 0.03}
        assert len(line["rows"]) == 3 * len(ALL_METHODS)
    graded.measure_model("graded-tiny-1", 7, model, config, p)  # resumed: nothing left to do
    assert len(graded.done_lines(graded.DIR / "graded-tiny-1.jsonl")) == len(lines)
    out = graded.gathered()
    assert out["header"]["levels_z"] == [0.003, 0.03] and out["runs"][0]["name"] == "graded-tiny-1"
    assert set(out["summary"]) == set(ALL_METHODS)
    json.dumps(out, default=graded._plain)
    section = graded_section(out, graded.Path("plots/none.png"))
    text = render("graded.md.j2", graded.Path(__file__).resolve().parents[1] / "templates/report", s=section)
    rule = out["summary"][RULE]["head"]
    assert f"detects {rule['curve'][-1]['detected']} of {rule['curve'][-1]['implants']} single-head implants" in text
    assert "| **" + RULE + "** |" in text and "graded-tiny-1" in text
    power_figure(out, graded.Path("power.png"))
    assert graded.Path("power.png").stat().st_size > 10_000
    p["causal"]["fdr"] = 0.1
    with pytest.raises(SystemExit, match="thresholds"):
        graded.fixed_header(p)
