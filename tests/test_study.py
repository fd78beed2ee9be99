"""The seed study: which experiments `gather` reads, from the real `dvc exp show`, and how it
summarises figures across seeds."""

import json
from dataclasses import asdict

import pytest

from vitheads import paper
from vitheads.study import runner as study


def test_gather_reads_finished_study_experiments_only(project, monkeypatch):
    """One finished study experiment (tiny, 6 layers so that layer 6 exists) and one still queued:
    only the finished one is read, with the CIs that exp show drops, and gather names the rest."""
    project.set_params({"model": {"depth": 6}})
    project.commit("six layers")
    first, queued = study.study_runs()[0], study.study_runs()[1]
    project.run(*study.exp_run_command(first, queue=False))
    project.run(*study.exp_run_command(queued))
    monkeypatch.chdir(project.path)
    show = json.loads(project.dvc("exp", "show", "--json", "-A").stdout)

    found = study.finished_experiments(show)
    assert list(found) == [first.name]
    metrics = {s: study.committed_metrics(found[first.name]["rev"], s) for s in study.STAGES}
    record = study.run_record(first.name, found[first.name], metrics)
    assert (record["stem"], record["seed"]) == (first.stem, first.seed)
    middle = record["ablation"]["middle"]["mean"]
    assert middle["value"] == metrics["ablate"]["mean"]["layer_6_mean_pct"] and len(middle["ci"]) == 2
    assert record["head_types"]["chirp_heads"]["value"] == metrics["classify"]["chirp_heads_layers_6_11"]
    with pytest.raises(SystemExit, match=queued.name):
        study.gather(show)


def test_across_seeds_mean_sd_and_agreement():
    verdicts = [paper.Verdict(paper.REPRODUCED), paper.Verdict(paper.REPRODUCED), paper.NOT_COMPARABLE]
    figures = [{"value": v, "verdict": asdict(d)} for v, d in zip([0.3, 0.5, None], verdicts)]
    summary = study.across_seeds(figures)
    assert (summary["mean"], summary["sd"]) == (0.4, pytest.approx(0.14142, abs=1e-5))
    assert summary["values"] == [0.3, 0.5, None]
    assert str(paper.Verdict(**summary["verdict"])) == "no verdict (seeds disagree: 2 reproduced, 1 not comparable)"
