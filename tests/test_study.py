"""The studies: which experiments the runner finds finished, from the real `dvc exp show`, what a run's record
holds, and the summaries that pool runs."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from vitheads import paper
from vitheads.analysis.benchmark import METHODS, RULE
from vitheads.analysis.factorial import R2_MEAN
from vitheads.analysis.pooling import random_effects
from vitheads.analysis.stats import proportion_interval
from vitheads.names import CUE_TARGETS, TARGETS
from vitheads.report import factorial as factorial_report
from vitheads.report import studies as report
from vitheads.report import study_figures
from vitheads.report.render import render
from vitheads.study import gather, provenance, runner, summaries
from vitheads.study.studies import (
    DISTORTION_ARMS,
    FACTORIAL_CELLS,
    FACTORIAL_ORDER_SEED,
    FACTORIAL_SEEDS,
    STUDIES,
    distortion,
    estimates,
    factorial,
    planted,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_runner_reads_finished_experiments_only_and_records_a_run(reproduced_six, monkeypatch):
    """One finished study experiment (tiny, 6 layers so that layer 6 exists) and one still queued: only the
    finished one is read, from its own commit (with the lists exp show drops), and its code hashes recorded.
    The first run's params are those of the session's six-layer run (params.yaml's seed, no overrides): the
    experiment is recorded with that run's outputs and reruns no stage."""
    project = reproduced_six
    first, queued = estimates()[0], estimates()[1]
    assert first.seed == project.params()["seed"] and not first.overrides
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
    heads = project.params()["model"]["num_heads"]
    assert record["fingerprints"].shape[:3] == (16, 6, heads) and "label" in record["heads"]["columns"]


def test_a_killed_run_without_a_timestamp_gives_way_to_the_same_names_later_success():
    """exp show gives a run killed before it committed no timestamp (None): the runner must neither crash on
    comparing it nor let it hide the finished run of the same name on another commit."""

    def commit(rev, state, timestamp):
        exp = {"revs": [{"rev": rev, "name": "distortion-all-off-20250324", "data": {"timestamp": timestamp}}]}
        return {"rev": f"base-{rev}", "experiments": [{**exp, "executor": {"state": state}}]}

    for shown in (
        [commit("a", "failed", None), commit("b", "success", "2026-12-02T20:00:00")],
        [commit("b", "success", "2026-12-02T20:00:00"), commit("a", "failed", None)],
    ):
        assert runner.experiments(shown)["distortion-all-off-20250324"]["rev"] == "b"
        assert list(runner.finished(shown, "distortion-")) == ["distortion-all-off-20250324"]


def test_the_runner_queues_every_arms_first_remaining_seed_before_any_second():
    runs = [r for r in distortion() if r.name != "distortion-frame-off-20250324"]
    order = [(r.arm, r.seed) for r in runner.seed_major(runs)]
    arms = list(DISTORTION_ARMS)
    assert order[: len(arms)] == [(a, 20250325 if a == "frame-off" else 20250324) for a in arms]
    assert sorted(order) == sorted((r.arm, r.seed) for r in runs) and order[-1] == ("all-off-adapting", 20250326)


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


def test_a_pooled_claim_takes_each_runs_bootstrap_sd_and_calls_a_verdict_fragile_when_the_estimators_differ():
    """Runs that kept their bootstrap's sd are pooled with it (older runs with their interval's width). On these
    three seeds REML's tau^2 is smaller than DL's: its interval excludes the paper's 0.34, DL's holds it."""
    runs = [fake_run(s, m, 0.2) for s, m in zip(range(3), [-0.26, -0.09, 0.44])]
    for run, se in zip(runs, [0.18, 0.06, 0.29]):
        run["metrics"]["ablate"]["mean"][paper.SE_KEYS["middle"]] = se
    entry = summaries.pooled_claim(runs, "middle", "mean")
    assert entry["se"] == [0.18, 0.06, 0.29] and entry["se_from"] == ["bootstrap sd"] * 3
    assert entry["pooled"]["estimator"] == "dl" and entry["pooled_reml"]["estimator"] == "reml"
    assert entry["verdict"]["kind"] == paper.INCONCLUSIVE and entry["verdict_reml"]["kind"] == paper.NOT_REPRODUCED
    assert entry["fragile"]
    old = summaries.pooled_claim([fake_run(s, 0.1 * s, 0.2) for s in range(3)], "middle", "mean")
    assert old["se_from"] == ["95% interval / 3.92"] * 3 and old["se"][0] == pytest.approx(0.4 / 3.919928, abs=1e-6)
    assert not old["fragile"]


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
    assert proportion_interval(0, 6)[0] == 0 and proportion_interval(6, 6)[1] == pytest.approx(1.0, abs=1e-4)
    low, high = proportion_interval(3, 6)
    assert low == pytest.approx(0.1876, abs=1e-3) and high == pytest.approx(0.8124, abs=1e-3)
    assert proportion_interval(0, 0) is None
    assert asdict(paper.Verdict("x"))["kind"] == "x"


def planted_record(
    arm: str, seed: int, held_out: bool, designated_found: int, others: int, planted=("text", "colorbar", "frame")
) -> dict:
    """A planted-study run as gathered: every planted kind with 2 designated heads of 144, every method finding
    the same, and the reliance inputs."""
    kinds = {
        kind: {
            "designated": ["L2H2", "L2H7"],
            "heads": 144,
            "methods": {m: {"designated_flagged": designated_found, "others_flagged": others} for m in METHODS},
        }
        for kind in planted
    }
    effects = {f"{k}_cue": {f"{t}_abs_change": 0.8 for t in CUE_TARGETS.values()} for k in kinds}
    finetune = {t: {"r2": 0.9} for t in (*TARGETS, *CUE_TARGETS.values())}
    metrics = {"causal": {"planted": kinds, "model_effect": effects}, "finetune": finetune}
    return {"arm": arm, "seed": seed, "held_out": held_out, "metrics": metrics}


def test_the_planted_benchmark_scores_held_out_runs_only_and_counts_from_the_metrics():
    records = [
        planted_record("planted", 1, False, 0, 9),  # the fit seed: left out of the benchmark
        planted_record("planted", 2, True, 2, 0),
        planted_record("planted", 3, True, 1, 1),
        planted_record("control", 2, True, 0, 0),
        planted_record("control", 3, True, 0, 2),
    ]
    row = summaries.planted(records)["benchmark"][RULE]["text"]
    assert row["hit_rate"] == 0.75 and row["seeds_with_a_hit"] == 2 and row["others_flagged_planted"] == 1
    assert row["false_rate_control"] == round(2 / 288, 5) and row["control_seeds_with_a_false_detection"] == 1


def test_a_study_that_plants_the_frame_alone_is_scored_on_the_frame_only():
    records = [planted_record(a, s, s > 1, 1, 0, planted=("frame",)) for a in ("planted", "control") for s in (1, 2, 3)]
    summary = summaries.planted(records)
    assert summary["kinds"] == ["frame"] and set(summary["benchmark"][RULE]) == {"frame"}
    assert set(summary["reliance"]["planted"]) == {"frame"} and summary["benchmark"][RULE]["frame"]["hit_rate"] == 0.5
    assert list(summaries.planted(records[:1])["reliance"]) == ["planted"]  # gathered before any control run
    names = [r.name for r in STUDIES["frame-band"]()]
    assert names[:2] == ["frame-band-planted-20250324", "frame-band-planted-20250325"]


def test_a_planted_study_gathered_before_its_control_arm_is_valid_json_and_reported_as_such():
    """No held-out control run yet: the control's interval is null (not NaN, which JSON refuses) and the
    report's benchmark says so instead of failing to format it."""
    records = [planted_record("planted", s, s > 1, 2, 0, planted=("frame",)) for s in (1, 2)]
    summary = summaries.planted(records)
    json.dumps(summary, allow_nan=False)
    study = {"study": "frame-band", "gathered": "today", "command": "c", "runs": [], "missing": [], "summary": summary}
    first_row = lambda: report.section("planted", report.planted("frame-band", study)).split(
        "| Method | frame |\n|---|---|\n"
    )[1]
    assert first_row().startswith(
        f"| {next(iter(METHODS))} | 1/1 runs [21%, 100%] (designated heads 100%); control: no held-out seed run yet |\n"
    )  # the run is the unit: 1 of 1 held-out planted runs found a designated head, Wilson over runs
    study["summary"] = summaries.planted(records + [planted_record("control", 2, True, 0, 0, planted=("frame",))])
    assert first_row().split("\n")[0].endswith("control: 0/1 runs flagged any head [0%, 79%] |")


def test_the_committed_estimates_recompute_from_the_per_seed_values_they_keep():
    """study/estimates.json as committed: every pooled claim is random_effects of the values and standard
    errors stored beside it."""
    path = Path(__file__).parents[1] / "study/estimates.json"
    summary = json.loads(path.read_text())["summary"]
    models = [m for m in summary.values() if "claims" in m]  # "matching" sits beside the models
    claims = [e for model in models for by_mode in model["claims"].values() for e in by_mode.values() if e]
    assert claims, "no pooled claim in the committed study file"
    for entry in claims:
        again = random_effects(entry["values"], entry["se"]).as_dict()
        assert again["estimate"] == pytest.approx(entry["pooled"]["estimate"], abs=1e-6)
        assert again["ci"] == pytest.approx(entry["pooled"]["ci"], abs=1e-5)


def test_gather_keeps_the_committed_files_runs_that_no_local_experiment_holds(tmp_path, monkeypatch):
    """Experiments are local git refs: on a new machine `dvc exp show` lists none of an earlier session's runs,
    and gathering must not drop them from the committed study file (nor call them missing)."""
    names = [r.name for r in planted()]
    records = [
        planted_record(arm, seed, held, 2, 0) | {"name": f"planted-{arm}-{seed}"}
        for arm, seed, held in (("planted", 20250324, False), ("control", 20250324, False), ("planted", 20250325, True))
    ]
    records.append(planted_record("planted", 1, True, 2, 0) | {"name": "planted-retired-1"})  # not in the study
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study/planted.json").write_text(json.dumps({"gathered": "2026-12-01", "runs": records}))
    table = gather.gather("planted", shown=[])
    assert [r["name"] for r in table["runs"]] == [n for n in names if n in {r["name"] for r in records}]
    assert table["kept_from_committed_file"] == sorted(r["name"] for r in records[:3])
    assert set(table["missing"]) == set(names) - {r["name"] for r in records}
    assert table["summary"]["fit"][RULE]["text"]["learned_in"] == 1


def distortion_record(arm: str, seed: int, r2: float, chirp_heads: int) -> dict:
    """A run as gathered, with the metrics the distortion summary and vitheads.compare read."""
    bands = {b: {"chirp": chirp_heads if b == "layers_6-11" else 0} for b in summaries.LABEL_BANDS}
    classify = {
        "counts": {"all": {"chirp": chirp_heads}, **bands},
        f"chirp_heads_{paper.CHIRP_BAND_KEY}": chirp_heads,
        f"distractor_heads_{paper.DISTRACTOR_BAND_KEY}": 0,
        f"heads_{paper.CHIRP_BAND_KEY}": 72,
        f"heads_{paper.DISTRACTOR_BAND_KEY}": 36,
    }
    ablate = {"mean": {paper.FIGURE_KEYS["early"]: 0.1 * seed, paper.FIGURE_KEYS["middle"]: 0.2}}
    finetune = {t: {"r2": r2 + 0.001 * seed} for t in TARGETS}
    metrics = {"finetune": finetune, "ablate": ablate, "classify": classify, "causal": {}}
    record = {"arm": arm, "seed": seed, "metrics": metrics, "timings": {"train": {"stage_seconds": 60.0}}}
    return record | {"held_out": False, "baseline": "earlier"}


def test_the_distortion_summary_flags_a_real_change_against_the_default_arm_and_not_training_noise():
    default = [distortion_record("conv", s, 0.90, 5) for s in (1, 2, 3, 4, 5)]
    records = [distortion_record("text-off", s, 0.70, 5) for s in (1, 2, 3)]
    records += [distortion_record("all-off", s, 0.90, 5) for s in (1, 2, 3)]
    records += [distortion_record("all-off-adapting", s, 0.90, 12) for s in (1, 2, 3)]
    this_session = [distortion_record("conv", s, 0.80, 5) | {"held_out": True, "baseline": "now"} for s in (6, 7)]
    records = [r | {"baseline": "now"} for r in records]
    out = summaries.distortion(records, default + this_session)
    rows = {r["metric"]: r for r in out["text-off"]["against_default"]}
    assert rows[f"R2 {TARGETS[0]}"]["differs"] and rows[f"R2 {TARGETS[0]}"]["difference"] == pytest.approx(-0.201)
    assert not rows["mean ablation: layers 1-3 (%)"]["differs"]  # the same seeds' spread on both sides
    assert not rows["heads labelled chirp, layers_6-11"]["differs"]
    layout = {r["metric"]: r for r in out["layout"]}
    assert layout["heads labelled chirp, layers_6-11"]["difference"] == 7 and out["default_seeds"] == [1, 2, 3, 4, 5]
    assert out["all-off"]["r2"][TARGETS[0]]["k"] == 3
    same = {r["metric"]: r for r in out["text-off"]["against_default_same_commit"]}
    assert out["text-off"]["same_commit_default_seeds"] == [6, 7]  # the held-out runs of the arm's own commit
    assert same[f"R2 {TARGETS[0]}"]["difference"] == pytest.approx(0.702 - 0.8065)
    across = {r["metric"]: r for r in out["default_across_commits"]}
    assert across[f"R2 {TARGETS[0]}"]["difference"] == pytest.approx(0.8065 - 0.903)


def test_the_report_reads_the_distortion_comparison_from_the_study_file(tmp_path):
    """The report section shows each arm's difference from the default arm and marks the one that differs."""
    default = [distortion_record("conv", s, 0.90, 5) for s in (1, 2, 3, 4, 5)]
    records = [
        distortion_record(arm, s, 0.70 if arm == "text-off" else 0.9, 5)
        for arm in ("text-off", "all-off", "all-off-adapting")
        for s in (1, 2, 3)
    ]
    records = [r | {"baseline": "now"} for r in records]  # no default run of their session
    study = {"study": "distortion", "gathered": "today", "command": "c", "missing": [], "runs": []}
    text = report.section("distortion", report.distortion(study | {"summary": summaries.distortion(records, default)}))
    r2_row = next(line for line in text.splitlines() if line.startswith(f"| R2 {TARGETS[0]}"))
    assert r2_row.count("**differs**") == 1 and "-0.201 [" in r2_row and "| layout: adapting - kept" in text
    assert f"text-off: R2 {TARGETS[0]}" in text and "No default-configuration run shares an arm's commit" in text


def test_the_factorial_queues_each_seeds_block_together_in_a_reproducible_drawn_order():
    """Every seed's 9 runs together, seeds in order; within a block an order drawn from (order seed, seed), the
    same on every call and kept for the runs a resumed block has left."""
    runs = factorial()
    order = runner.seed_blocked(runs, runs, FACTORIAL_ORDER_SEED)
    blocks = [order[i : i + 9] for i in range(0, len(order), 9)]
    assert [{r.seed for r in b} for b in blocks] == [{s} for s in FACTORIAL_SEEDS] and len(FACTORIAL_SEEDS) == 12
    first = [r.arm for r in blocks[0]]
    assert first == runner.block_order(runs, FACTORIAL_SEEDS[0], FACTORIAL_ORDER_SEED)
    assert first != [r.arm for r in runs[:9]] and first != [r.arm for r in blocks[1]]  # drawn, per seed
    assert sorted(first) == sorted([*FACTORIAL_CELLS, "all-off-adapting"])
    left = [r for r in runs if r.name != blocks[0][0].name]  # resumed after the block's first run
    assert runner.seed_blocked(left, runs, FACTORIAL_ORDER_SEED) == order[1:]
    cells = {r.arm: r.overrides for r in runs if r.seed == FACTORIAL_SEEDS[0]}
    assert cells["text1-colorbar1-frame1"] == () and "distortion.keep_layout=true" in cells["text0-colorbar1-frame1"]
    assert "distortion.keep_layout=true" not in cells["all-off-adapting"]


def test_a_seed_block_split_between_machines_runs_again_whole_and_its_earlier_runs_are_superseded(
    tmp_path, monkeypatch
):
    """Amendment 1 of the factorial's pre-registration: a block counts only when its 9 runs share one machine.
    A block begun elsewhere is queued whole here; a block complete elsewhere, or begun here, is not; when the new
    runs are gathered the earlier records move to `superseded` and the summary counts only one-machine blocks."""
    runs = factorial()
    first, second, third = FACTORIAL_SEEDS[:3]

    def on(seed: int, where: str, arms: list[str] | None = None) -> list[dict]:  # the block's runs on a machine
        block = [r for r in runs if r.seed == seed and (arms is None or r.arm in arms)]
        return [
            {"name": r.name, "arm": r.arm, "seed": seed, "machine": where, "rev": f"{where}-{r.name}"} for r in block
        ]

    two_arms = [r.arm for r in runs[:2]]
    gathered = on(first, "intel", two_arms) + on(second, "intel") + on(third, "amd", two_arms)
    assert runner.rerun_blocks(runs, gathered, "amd") == {first}
    assert runner.rerun_blocks(runs, gathered, "intel") == {third}
    rng = np.random.default_rng(0)
    records = [
        factorial_record(g["arm"], g["seed"], rng) | g
        for g in on(first, "intel", two_arms) + on(first, "amd")[2:] + on(second, "intel")
    ]
    assert summaries.factorial(records, 2, (first, second))["complete_seeds"] == [second]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study/factorial.json").write_text(json.dumps({"runs": records[:2]}))
    redone = {g["name"]: {"state": "success", **g} for g in on(first, "amd")}
    monkeypatch.setattr(gather, "finished", lambda shown, prefix: redone)
    monkeypatch.setattr(
        gather, "run_record", lambda run, exp, heads, queued: factorial_record(run.arm, run.seed, rng) | exp
    )
    table = gather.gather("factorial", shown=[])
    assert [r["machine"] for r in table["superseded"]] == ["intel", "intel"]
    assert {r["machine"] for r in table["runs"]} == {"amd"} and table["summary"]["complete_seeds"] == [first]


def test_the_queue_log_and_the_record_say_where_and_when_a_run_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = factorial()
    runner.log_queued("factorial", runs[3], FACTORIAL_ORDER_SEED, runs)
    runner.log_queued("factorial", runs[3], FACTORIAL_ORDER_SEED, runs)  # queued again after a failure
    log = runner.queue_log("factorial")
    entry = log[runs[3].name]
    assert len(log) == 1 and entry["machine"] == runner.machine() and entry["queued"].endswith("+00:00")
    assert entry["block_position"] == runner.block_order(runs, runs[3].seed, FACTORIAL_ORDER_SEED).index(runs[3].arm)
    monkeypatch.setattr(gather, "committed_file", lambda rev, path: "stages: {}\n")
    monkeypatch.setattr(gather, "committed_json", lambda rev, path: {})
    exp = {"rev": "abc", "baseline": "base", "timestamp": "2026-12-06T09:00:00"}
    record = gather.run_record(runs[3], exp, with_heads=False, queued=entry)
    assert record["machine"] == entry["machine"] and record["finished"] == "2026-12-06T09:00:00"
    assert record["queued"] == entry["queued"] and record["block_position"] == entry["block_position"]
    assert gather.run_record(runs[4], exp, with_heads=False)["machine"] is None  # queued before the log


def factorial_record(arm: str, seed: int, rng) -> dict:
    """A factorial run as gathered: the distortion record's metrics, R2 lowered by 0.05 where text is off."""
    levels = FACTORIAL_CELLS.get(arm, {"text": 0, "colorbar": 0, "frame": 0})
    record = distortion_record(arm, seed, 0.9 - 0.05 * (1 - levels["text"]) + rng.normal(0, 0.005), 5)
    record["metrics"]["ablate"]["mean"][paper.FIGURE_KEYS["middle"]] = 0.2 + rng.normal(0, 0.1)
    return record | {"name": f"factorial-{arm}-{seed}"}


def test_the_factorial_summary_fits_the_primary_outcomes_and_flags_the_planted_change():
    rng = np.random.default_rng(0)
    records = [factorial_record(r.arm, r.seed, rng) for r in factorial() if r.seed in FACTORIAL_SEEDS[:3]]
    out = summaries.factorial(records, simulations=5, planned_seeds=FACTORIAL_SEEDS[:3])
    json.dumps(out, allow_nan=False)
    text = out["fits"][R2_MEAN]["terms"]["text"]
    assert text["flagged"] and text["estimate"] == pytest.approx(0.05, abs=0.01) and text["verdict"] == "changes"
    assert not out["fits"]["mean ablation: layer 6 (%)"]["terms"]["text"]["flagged"]
    assert "heads labelled chirp, layers_6-11" in out["constant"] and out["seeds"] == list(FACTORIAL_SEEDS[:3])
    assert out["fits"][R2_MEAN]["df"] == 24 - 3 - 6 and out["cells_run"]["text0-colorbar0-frame0"] == 3
    assert R2_MEAN in out["layout"] and out["power_check"]["simulations"] == 5 and "run_12_seeds" in out["pilot"]
    early = summaries.factorial(records[:18], simulations=5, planned_seeds=FACTORIAL_SEEDS[:3])
    assert "fits" not in early and early["note"].startswith("2 of 3 seed blocks complete")  # no effect looked at
    assert early["pilot"]["from_seeds"] == list(FACTORIAL_SEEDS[:2]) and "run_12_seeds" in early["pilot"]
    assert all("terms" not in json.dumps(v) for v in early.values())


def test_the_factorial_section_gives_every_primary_main_effect_with_its_detectable_difference(tmp_path):
    rng = np.random.default_rng(0)
    records = [factorial_record(r.arm, r.seed, rng) for r in factorial() if r.seed in FACTORIAL_SEEDS[:3]]
    records = [r | {"machine": "vm", "finished": "2026-12-06T12:00:00"} for r in records]
    summary = summaries.factorial(records, simulations=5, planned_seeds=FACTORIAL_SEEDS[:3])
    study = {"runs": records, "summary": summary, "missing": ["one not run"]}
    assert study_figures.interaction_figure(study, tmp_path / "f.png") and (tmp_path / "f.png").stat().st_size
    section = lambda s: render(
        "factorial.md.j2", ROOT / "templates/report", s=factorial_report.factorial_section(s, tmp_path)
    )
    text = section(study)
    r2 = study["summary"]["fits"][R2_MEAN]["terms"]
    assert "So far 27 of 28 runs (3 of 3 seed blocks complete" in text
    assert f"| {R2_MEAN} | text | {r2['text']['estimate']:+.3f}" in text and "| changes |" in text
    assert f"{r2['frame']['detectable']:.3f} | ±0.02 |" in text  # every null beside what it could detect
    assert f"| [{r2['frame']['ci90'][0]:+.4f}, {r2['frame']['ci90'][1]:+.4f}] |" in text  # the verdict's interval
    complete = section(study | {"missing": []})
    assert "All 27 of 27 runs" in complete and "So far" not in complete
    early = {"runs": records[:18], "summary": summaries.factorial(records[:18], 5, FACTORIAL_SEEDS[:3])}
    assert not study_figures.interaction_figure(early, tmp_path / "early.png")  # no cell means before the end
    unfitted = section(early)
    assert "No effect is estimated yet" in unfitted and "Pilot rule" in unfitted and "On - off" not in unfitted


def test_the_results_notes_name_the_commits_and_machines_the_study_files_record(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert provenance.current(provenance.RESULTS.read_text()) == provenance.block()  # else: ... provenance
    runs = [
        {"arm": "a", "seed": 2, "baseline": "abcdef0123", "machine": "m1", "finished": "2026-12-06T10:00:00"},
        {"arm": "a", "seed": 1, "baseline": "abcdef0999", "machine": None, "finished": None},
        {"arm": "b", "seed": 1, "baseline": "1234567890"},
    ]
    groups = provenance.run_groups(runs)
    assert groups[0] == {
        "arm": "a", "commit": "abcdef0", "seeds": [1, 2], "machines": {"m1", "not recorded"},
        "days": {"2026-12-06", "not recorded"},
    }  # fmt: skip
    assert [g["commit"] for g in groups] == ["abcdef0", "1234567"]
    table = provenance.study_table("s", {"gathered": "today", "runs": runs[2:], "superseded": runs[:1]})
    assert table.splitlines()[-1] == "| a (superseded) | 2 | abcdef0 | 2026-12-06 | m1 |"
