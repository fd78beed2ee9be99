"""The studies: which experiments the runner finds finished, from the real `dvc exp show`, what a run's record
holds, and the summaries that pool runs."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from vitheads import paper
from vitheads.study import gather, runner, summaries
from vitheads.study.studies import STUDIES, estimates, planted


def test_the_runner_reads_finished_experiments_only_and_records_a_run(project, monkeypatch):
    """One finished study experiment (tiny, 6 layers so that layer 6 exists) and one still queued: only the
    finished one is read, from its own commit (with the lists exp show drops), and its code hashes recorded."""
    project.set_params({"model": {"depth": 6}})
    project.commit("six layers")
    first, queued = estimates()[0], estimates()[1]
    project.run(*runner.exp_run_command(first, queue=False))
    project.run(*runner.exp_run_command(queued))
    monkeypatch.chdir(project.path)
    shown = json.loads(project.dvc("exp", "show", "--json", "-A").stdout)
    known = runner.experiments(shown, "estimates-")
    assert known[first.name]["state"] == "success" and known[queued.name]["state"] == "queued"
    assert list(runner.finished(shown, "estimates-")) == [first.name]
    record = gather.run_record(first, known[first.name], with_heads=True)
    middle = record["metrics"]["ablate"]["mean"]
    assert len(middle[paper.CI_KEYS["middle"]]) == 2 and paper.DIFFERENCE_KEY in middle
    assert record["code"]["vitheads/interp/cache.py"] and "stages/ablate.py" in record["code"]
    assert record["fingerprints"].shape[:3] == (16, 6, 3) and "label" in record["heads"]["columns"]


def test_every_study_names_its_runs_once_and_holds_its_held_out_runs_apart():
    for name, runs in STUDIES.items():
        names = [r.name for r in runs()]
        assert len(names) == len(set(names)) and all(n.startswith(f"{name}-") for n in names)
    held = [r for r in estimates() if r.held_out]
    assert len(held) == 2 and len([r for r in estimates() if r.arm == "conv" and not r.held_out]) >= 5
    assert {r.arm for r in planted()} == {"planted", "control"} and sum(not r.held_out for r in planted()) == 2


def fake_run(seed: float, middle: float, half: float, held_out: bool = False) -> dict:
    ablate = {paper.FIGURE_KEYS["middle"]: middle, paper.CI_KEYS["middle"]: [middle - half, middle + half]}
    return {"arm": "conv", "seed": seed, "held_out": held_out, "metrics": {"ablate": {"mean": ablate}}}


def test_a_pooled_claim_recomputes_from_the_per_seed_values_it_keeps():
    runs = [fake_run(s, m, 0.2) for s, m in zip(range(5), [0.1, 0.3, 0.5, 0.2, 0.4])]
    entry = summaries.pooled_claim(runs, "middle", "mean")
    assert entry["values"] == [0.1, 0.3, 0.5, 0.2, 0.4]
    assert entry["pooled"]["estimate"] == pytest.approx(0.3, abs=1e-6) and entry["pooled"]["prediction"]
    assert paper.Verdict(**entry["verdict"]).kind in (paper.REPRODUCED, paper.INCONCLUSIVE)
    held = summaries.held_out_check({"middle": {"mean": entry}}, [fake_run(9, 5.0, 0.2, True)])
    assert held["middle"]["outside"] == 1


@pytest.mark.parametrize(
    "ci, ci90, verdict",
    [
        ([0.30, 0.38], [0.31, 0.37], paper.REPRODUCED),  # inside 0.34 +- 0.17 at 90%
        ([-0.2, 0.1], [-0.15, 0.05], paper.NOT_REPRODUCED),  # excludes 0.34
        ([-0.45, 0.49], [-0.3, 0.35], paper.INCONCLUSIVE),  # the three default seeds pooled: holds 0.34, too wide
    ],
)
def test_pooled_verdicts_are_equivalence_tests_not_votes(ci, ci90, verdict):
    assert paper.pooled_verdict("middle", {"ci": ci, "ci90": ci90}).kind == verdict


def test_wilson_interval_on_known_values():
    assert summaries.wilson(0, 6)[0] == 0 and summaries.wilson(6, 6)[1] == pytest.approx(1.0, abs=1e-4)
    low, high = summaries.wilson(3, 6)
    assert low == pytest.approx(0.1876, abs=1e-3) and high == pytest.approx(0.8124, abs=1e-3)
    assert np.isnan(summaries.wilson(0, 0)[0])
    assert asdict(paper.Verdict("x"))["kind"] == "x"
