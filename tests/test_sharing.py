"""Sharing and scale with the real dvc CLI: a local-directory remote, queued experiments that run
side by side under a thread budget, and queued experiments that run their own code."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Project

from vitheads.params import read_yaml

QUEUE_TIMEOUT_S = 600


def finished_queue(project: Project) -> tuple[str, int]:
    """Wait until no queued experiment is queued or running; return the final `dvc queue status`
    and the most experiments seen running at once."""
    deadline, most_running = time.monotonic() + QUEUE_TIMEOUT_S, 0
    while time.monotonic() < deadline:
        status = project.dvc("queue", "status").stdout
        most_running = max(most_running, len(re.findall(r"\bRunning\b", status)))
        if not re.search(r"\b(Queued|Running)\b", status):
            return status, most_running
        time.sleep(2)
    raise AssertionError(f"queue still busy after {QUEUE_TIMEOUT_S} s:\n{status}")


def start_workers(project: Project, jobs: int) -> None:
    """`dvc queue start`, its output not captured: the workers it spawns inherit the pipes, so
    capturing would wait for them to finish and the queue would never be seen running."""
    subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        cwd=project.path,
        env=project.env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def experiment_revs(project: Project) -> dict[str, dict]:
    """Each named experiment's entry in `dvc exp show --json` (rev, data)."""
    return {
        rev["name"]: rev
        for commit in json.loads(project.dvc("exp", "show", "--json").stdout)
        for exp in commit.get("experiments") or []
        for rev in exp["revs"]
    }


def experiments(project: Project) -> dict[str, dict]:
    """Each named experiment's metrics files and params as `dvc exp show` gives them (it drops list values)."""
    return {
        name: {path: m["data"] for path, m in (rev["data"]["metrics"] | rev["data"]["params"]).items()}
        for name, rev in experiment_revs(project).items()
    }


def committed_metrics(project: Project, rev: str) -> dict[str, dict]:
    """An experiment's metrics files as its commit holds them, every value."""
    paths = [f"metrics/{f.name}" for f in sorted((project.path / "metrics").glob("*.json"))]
    return {path: json.loads(project.run("git", "show", f"{rev}:{path}").stdout) for path in paths}


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def read_metrics(path) -> dict[str, dict]:
    return {f"metrics/{f.name}": json.loads(f.read_text()) for f in sorted((path / "metrics").glob("*.json"))}


def share(project: Project, tmp_path: Path) -> str:
    """Add a bare git `origin` and a default local-directory DVC remote to a reproduced project, push
    both; return the branch."""
    assert json.loads(project.dvc("status", "--json").stdout) == {}, "the copy has nothing to rerun"
    project.run("git", "init", "-q", "--bare", str(tmp_path / "origin.git"))
    project.run("git", "remote", "add", "origin", str(tmp_path / "origin.git"))
    project.dvc("remote", "add", "-d", "store", str(tmp_path / "dvc-store"))
    project.commit("pipeline run, remote store")
    branch = project.run("git", "branch", "--show-current").stdout.strip()
    project.run("git", "push", "-q", "origin", branch)
    assert re.search(r"\d+ files? pushed", project.dvc("push").stdout)
    return branch


def test_push_clone_pull_and_experiment_push_pull(reproduced, tmp_path):
    project = reproduced
    branch = share(project, tmp_path)

    clone = Project(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", "-b", branch, str(tmp_path / "origin.git"), str(clone.path)], check=True)
    assert not (clone.path / "models").exists()
    clone.dvc("pull")
    assert json.loads(clone.dvc("status", "--json").stdout) == {}, "a pulled clone has nothing to rerun"
    assert read_metrics(clone.path) == read_metrics(project.path)

    project.dvc("exp", "run", "-n", "stricter", "-S", "classify.min_enrichment=3")
    project.dvc("exp", "push", "origin", "stricter")
    clone.dvc("exp", "pull", "origin", "stricter")
    clone.dvc("exp", "apply", "stricter")
    assert json.loads(clone.dvc("status", "--json").stdout) == {}, "an applied pulled experiment has nothing to rerun"
    assert clone.params()["classify"]["min_enrichment"] == 3
    assert read_metrics(clone.path) == read_metrics(project.path)


def test_two_queued_experiments_run_side_by_side_with_the_metrics_of_a_sequential_run(reproduced):
    """The sequential run is the reproduced project's own (one thread, as the queue's workers: thread
    count changes float rounding); the queued copy of it is forced to compute everything again."""
    project = reproduced
    project.env["VITHEADS_THREADS"] = "1"
    project.dvc("exp", "run", "--queue", "-f", "-n", "queued-same")
    project.dvc("exp", "run", "--queue", "-n", "queued-other", "-S", "seed=2")
    start_workers(project, 2)
    status, most_running = finished_queue(project)
    assert status.count("Success") == 2, status
    assert most_running == 2, "the two experiments ran side by side"
    log = project.dvc("queue", "logs", "queued-same").stdout
    assert "torch uses 1 thread(s) (VITHEADS_THREADS=1)" in log and "Running stage 'finetune'" in log, (
        "forced: computed again"
    )

    revs, sequential = experiment_revs(project), read_metrics(project.path)
    assert committed_metrics(project, revs["queued-same"]["rev"]) == sequential
    assert (
        committed_metrics(project, revs["queued-other"]["rev"])["metrics/finetune.json"]
        != sequential["metrics/finetune.json"]
    )


def test_a_queued_experiment_runs_the_code_it_was_queued_with(reproduced):
    """Stages import the vitheads of the checkout they run in, not the editable install's."""
    project = reproduced
    library = project.path / "vitheads/report/sections.py"
    original = library.read_text()
    assert '"Claim (paper)"' in original
    library.write_text(original.replace('"Claim (paper)"', '"Claim (paper, queued code)"'))
    project.dvc("exp", "run", "--queue", "-n", "new-code")
    library.write_text(original.replace('"Claim (paper)"', '"Claim (paper, workspace code)"'))
    start_workers(project, 1)
    assert "Success" in finished_queue(project)[0]

    library.write_text(original)
    project.dvc("exp", "apply", "new-code")
    assert "(paper, queued code)" in library.read_text()
    report = (project.path / "report/report.md").read_text()
    assert "| Claim (paper, queued code) |" in report and "workspace code" not in report


@pytest.mark.skipif(not (Path(sys.prefix) / "bin/activate").exists(), reason="tests run outside a virtual environment")
def test_the_skypilot_job_runs_an_experiment_and_pushes_it_to_the_shared_remotes(reproduced, tmp_path):
    """The task file's `run` block as written, on a clone made as its `setup` block makes it (the
    install step aside: the clone's .venv is this interpreter's); SkyPilot itself is not run here."""
    project = reproduced
    branch = share(project, tmp_path)
    home = tmp_path / "home"
    subprocess.run(
        ["git", "clone", "-q", "-b", branch, str(tmp_path / "origin.git"), str(home / "vitheads")], check=True
    )
    (home / "vitheads/.venv").symlink_to(sys.prefix)
    task = read_yaml((ROOT / "cloud/skypilot-experiment.yaml").read_text())
    env = {**project.env, **task["envs"], "HOME": str(home), "EXP_NAME": "job", "PARAMS": "classify.min_enrichment=3"}
    job = subprocess.run(["bash", "-c", task["run"]], env=env, capture_output=True, text=True)
    assert job.returncode == 0, job.stderr[-3000:]
    assert stages_run(job.stdout)[0] == "classify", "the job pulls what the remote holds and runs only what changed"

    project.dvc("exp", "pull", "origin", "job")
    pulled = experiments(project)["job"]
    assert pulled["params.yaml"]["classify"]["min_enrichment"] == 3 and "metrics/classify.json" in pulled
