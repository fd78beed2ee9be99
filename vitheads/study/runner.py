"""Queueing a study's runs as DVC experiments, and finding the finished ones. Resumable: `run` queues only
the runs that have neither finished (as an experiment, or gathered into the committed study file) nor been
queued, so after an interruption (a stopped session kills the queue's workers; finished experiments are kept
as local git refs, and on a new machine only in the study file) the same command picks up where it stopped.
A study with an order seed (studies.ORDER_SEEDS) is queued seed-blocked: each seed's runs together, in an order
drawn from the order seed and the seed. Every run queued is logged (study/<study>-queue.jsonl: its place in the
queue, the machine whose queue runs it, the time) so that gathering can record where and when each run ran."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from vitheads.study.studies import ORDER_SEEDS, STAGE_TARGETS, STUDIES, Run, complete_block
from vitheads.threads import ENV as THREADS_ENV
from vitheads.threads import all_cores

TARGET = "classify"  # a study reads metrics and tables/: each run's figures and report would add about 20 s


def exp_run_command(run: Run, queue: bool = True) -> list[str]:
    overrides = [arg for o in (f"seed={run.seed}", *run.overrides) for arg in ("-S", o)]
    target = STAGE_TARGETS.get(run.study, TARGET)
    return ["dvc", "exp", "run", *(["--queue"] if queue else []), "-n", run.name, *overrides, target]


def show(tries: int = 3) -> list[dict]:
    """`dvc exp show --json -A`, tried again after a pause: it fails now and then while a queue worker starts."""
    for attempt in range(tries):
        done = subprocess.run(["dvc", "exp", "show", "--json", "-A"], capture_output=True, text=True)
        if done.returncode == 0:
            return json.loads(done.stdout)
        time.sleep(5 * (attempt + 1))
    raise SystemExit(f"dvc exp show --json -A failed {tries} times: {done.stderr.strip()[-500:]}")


def experiments(shown: list[dict], prefix: str = "") -> dict[str, dict]:
    """Each experiment of `dvc exp show --json -A` whose name starts with prefix, by name (the newest when a
    name ran on several commits): its state (success, queued, running, failed), rev, baseline commit and
    params.yaml. Until an experiment finishes, exp show gives it its baseline's metrics: read only successes."""
    found: dict[str, dict] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            for rev in exp["revs"]:
                name, data = rev.get("name") or "", rev.get("data") or {}
                if not name.startswith(prefix) or (
                    name in found and found[name]["timestamp"] >= (data.get("timestamp") or "")
                ):
                    continue
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data", {})
                found[name] = {
                    "state": state,
                    "rev": rev["rev"],
                    "baseline": commit["rev"],
                    "timestamp": data.get("timestamp") or "",  # None for a run killed before it committed
                    "params": params,
                }
    return found


def finished(shown: list[dict], prefix: str) -> dict[str, dict]:
    return {n: e for n, e in experiments(shown, prefix).items() if e["state"] == "success"}


def queue_study(
    study: str, held_out: bool, jobs: int = 1, arms: list[str] | None = None, blocks: int | None = None
) -> list[str]:
    """Queue the study's runs (the held-out ones only with held_out; only `arms` when given) that have not
    finished or been queued, and start `jobs` workers sharing the cores; returns the names queued. A seed-blocked
    study queues at most `blocks` seed blocks (a session queues only the blocks it has time for), and runs a
    block again whole where its gathered runs are on another machine (rerun_blocks)."""
    runs = STUDIES[study]()
    unknown = sorted(set(arms or ()) - {r.arm for r in runs})
    if unknown:
        raise SystemExit(f"--arm {', '.join(unknown)}: the {study} study's arms are {sorted({r.arm for r in runs})}")
    known = experiments(show(), f"{study}-")
    gathered_runs = (committed_study(study) or {}).get("runs", [])
    order_seed = ORDER_SEEDS.get(study)
    rerun = rerun_blocks(runs, gathered_runs, machine()) if order_seed is not None else set()
    gathered = {r["name"] for r in gathered_runs if r["seed"] not in rerun}
    todo = [r for r in runs if r.held_out == held_out and (not arms or r.arm in arms) and r.name not in gathered]
    todo = [r for r in todo if known.get(r.name, {}).get("state") not in ("success", "queued", "running")]
    todo = seed_major(todo) if order_seed is None else seed_blocked(todo, runs, order_seed)
    if blocks is not None:
        first = list(dict.fromkeys(r.seed for r in todo))[:blocks]
        todo = [r for r in todo if r.seed in first]
    for run in todo:
        subprocess.run(exp_run_command(run), check=True)
        log_queued(study, run, order_seed, runs)
    if running_workers():
        return [r.name for r in todo]  # the queue's workers take them in turn: no more runs side by side
    env = {**os.environ, THREADS_ENV: str(max(1, all_cores() // jobs))}
    subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # its workers inherit no pipe to wait on
    return [r.name for r in todo]


def seed_major(runs: list[Run]) -> list[Run]:
    """Every arm's first remaining seed before any arm's second: a study stopped part way leaves each arm
    with a run (the queue takes tasks in the order queued)."""
    position = {run: [r for r in runs if r.arm == run.arm].index(run) for run in runs}  # within its arm
    return sorted(runs, key=position.__getitem__)


def block_order(runs: list[Run], seed: int, order_seed: int) -> list[str]:
    """The arms of one seed's block in their queue order: a permutation drawn from (order_seed, seed), over the
    study's whole block, so that a resumed block keeps the order of the runs it has left."""
    arms = [r.arm for r in runs if r.seed == seed]
    return [arms[i] for i in np.random.default_rng([order_seed, seed]).permutation(len(arms))]


def seed_blocked(todo: list[Run], runs: list[Run], order_seed: int) -> list[Run]:
    """The runs to queue, one seed's block after another (the study's seed order), each in its drawn order."""
    seeds = list(dict.fromkeys(r.seed for r in runs))
    orders = {s: block_order(runs, s, order_seed) for s in seeds}
    return sorted(todo, key=lambda r: (seeds.index(r.seed), orders[r.seed].index(r.arm)))


def rerun_blocks(runs: list[Run], gathered: list[dict], here: str) -> set[int]:
    """The seeds whose block runs again whole on this machine (`here`): some of its gathered runs ran on another
    machine and the block is not complete on one machine (the factorial's pre-registration, amendment 1: a
    block's cells are compared within one machine only)."""
    rerun = set()
    for seed in {r.seed for r in runs}:
        elsewhere = any(g["seed"] == seed and g.get("machine") != here for g in gathered)
        if elsewhere and not complete_block(gathered, seed, {r.arm for r in runs if r.seed == seed}):
            rerun.add(seed)
    return rerun


def machine() -> str:
    """This machine: its host name and CPU model (machines of one kind train differently)."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = models[0] if models else cpu
    return f"{platform.node()} ({cpu})"


def queue_log_path(study: str) -> Path:
    return Path(f"study/{study}-queue.jsonl")


def log_queued(study: str, run: Run, order_seed: int | None, runs: list[Run]) -> None:
    """Append a queued run to the study's queue log: its position in its seed's block (when the study is
    seed-blocked), the order seed, this machine (the queue's workers run here) and the time."""
    position = block_order(runs, run.seed, order_seed).index(run.arm) if order_seed is not None else None
    entry = {
        "name": run.name,
        "block_position": position,
        "order_seed": order_seed,
        "machine": machine(),
        "queued": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = queue_log_path(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(json.dumps(entry) + "\n")


def queue_log(study: str) -> dict[str, dict]:
    """Each run's last queue entry (a run queued again after a failure: its last), by name."""
    path = queue_log_path(study)
    lines = path.read_text().splitlines() if path.is_file() else []
    return {entry["name"]: entry for entry in map(json.loads, lines)}


def study_path(study: str) -> Path:
    return Path(f"study/{study}.json")


def committed_study(study: str) -> dict | None:
    """The study file as gathered: its runs are done even where no local experiment holds them."""
    path = study_path(study)
    return json.loads(path.read_text()) if path.is_file() else None


def running_workers() -> int:
    """The queue's workers, active or idle, from `dvc queue status` ("Worker status: 1 active, 0 idle")."""
    out = subprocess.run(["dvc", "queue", "status"], check=True, capture_output=True, text=True).stdout
    found = re.search(r"Worker status: (\d+) active, (\d+) idle", out)
    return int(found[1]) + int(found[2]) if found else 0


def committed_file(rev: str, path: str) -> str:
    """A file as the experiment committed it (its git-tracked outputs: metrics, timings, tables, dvc.lock)."""
    return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout


def committed_json(rev: str, path: str) -> dict:
    """A JSON file as the experiment committed it (exp show drops the metrics' lists: every CI)."""
    return json.loads(committed_file(rev, path))
