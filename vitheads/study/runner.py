"""The replication study: the paper's claims on several training runs of two models, as queued DVC
experiments, and the table that gathers them (docs/experiments.md).

`python -m vitheads.study run` queues one experiment per model and seed and starts the queue's
workers; `python -m vitheads.study gather` reads every finished study experiment from
`dvc exp show --json` and writes study/replication.json, which the report reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vitheads import paper
from vitheads.names import TARGETS
from vitheads.threads import ENV as THREADS_ENV
from vitheads.threads import all_cores

SEEDS = (20250324, 20250325, 20250326)  # the first is params.yaml's: the default run is one of them
STEMS = ("conv", "patch")  # the default model (early convolutions) and the pure ViT
PREFIX = "study"
OUTPUT = Path("study/replication.json")
JOBS = 2  # experiments side by side, one core each on the 2-core machine
STAGES = ("finetune", "ablate", "classify")  # whose metrics the table reads


@dataclass(frozen=True)
class Run:
    stem: str
    seed: int

    @property
    def name(self) -> str:
        return f"{PREFIX}-{self.stem}-{self.seed}"


def study_runs() -> list[Run]:
    return [Run(stem, seed) for stem in STEMS for seed in SEEDS]


def exp_run_command(run: Run, queue: bool = True) -> list[str]:
    return [
        "dvc",
        "exp",
        "run",
        *(["--queue"] if queue else []),
        "-n",
        run.name,
        "-S",
        f"seed={run.seed}",
        "-S",
        f"model.stem={run.stem}",
    ]


def queue_and_start(jobs: int = JOBS) -> None:
    """Queue every study run and start `jobs` workers with one core's worth of threads each."""
    for run in study_runs():
        subprocess.run(exp_run_command(run), check=True)
    env = {**os.environ, THREADS_ENV: str(max(1, all_cores() // jobs))}
    subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(
        f"queued {len(study_runs())} experiments, {jobs} workers started; follow with `dvc queue status`, "
        "then `python -m vitheads.study gather`"
    )


def finished_experiments(show: list[dict]) -> dict[str, dict]:
    """Each successfully finished study experiment in `dvc exp show --json -A` output, by name (the
    newest when a name ran on several commits): its rev, baseline commit and params.yaml. Queued and
    running experiments are left out: until they finish, exp show gives them their baseline's metrics."""
    found: dict[str, dict] = {}
    for commit in show:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            for rev in exp["revs"]:
                name, data = rev.get("name") or "", rev["data"]
                if state != "success" or not name.startswith(PREFIX + "-"):
                    continue
                if name in found and found[name]["timestamp"] >= data["timestamp"]:
                    continue
                found[name] = {
                    "rev": rev["rev"],
                    "baseline": commit["rev"],
                    "timestamp": data["timestamp"],
                    "params": data["params"]["params.yaml"]["data"],
                }
    return found


def committed_json(rev: str, path: str) -> dict:
    """A JSON file as the experiment committed it (exp show drops the metrics' CIs: lists are not metrics)."""
    return json.loads(
        subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout
    )


def committed_metrics(rev: str, stage: str) -> dict:
    return committed_json(rev, f"metrics/{stage}.json")


def compute_seconds(rev: str) -> float:
    """The run's recorded stage times (timings/*.json): rendering, training, ablation sweep and author
    protocol, attention; start-up and the small stages are not in them."""
    t = {s: committed_json(rev, f"timings/{s}.json") for s in ("generate", "finetune", "ablate", "attention")}
    return round(
        t["generate"]["seconds"]
        + t["finetune"]["train_seconds"]
        + t["ablate"]["sweep_seconds"]
        + t["ablate"].get("author_protocol_seconds", 0)
        + t["attention"]["seconds"],
        1,
    )


def run_record(name: str, exp: dict, metrics: dict[str, dict], seconds: float | None = None) -> dict:
    """One training run's figures for every claim, judged by the paper module's rules."""
    fine, ablate, classify = (metrics[s] for s in ("finetune", "ablate", "classify"))
    return {
        "name": name,
        "rev": exp["rev"],
        "baseline": exp["baseline"],
        "stem": exp["params"]["model"]["stem"],
        "seed": exp["params"]["seed"],
        "r2": {t: fine[t]["r2"] for t in TARGETS},
        "test_mse": fine["test_mse"],
        "stage_seconds": seconds,
        "ablation": {
            c: {p: asdict(f) for p, f in by_protocol.items()}
            for c, by_protocol in paper.ablation_figures(ablate).items()
        },
        "head_types": {c: asdict(f) for c, f in paper.head_type_figures(classify).items()},
    }


def spread(values: list[float | None]) -> dict:
    """Each seed's value, their mean and sd (ddof 1: the spread over training runs); None where a
    run has no such figure."""
    known = np.array([v for v in values if v is not None], dtype=float)
    return {
        "values": values,
        "mean": round(float(known.mean()), 5) if known.size else None,
        "sd": round(float(known.std(ddof=1)), 5) if known.size > 1 else None,
    }


def across_seeds(figures: list[dict]) -> dict:
    """One claim's figures over seeds, with a verdict only where the seeds agree."""
    verdicts = [paper.Verdict(**f["verdict"]) for f in figures]
    return spread([f["value"] for f in figures]) | {
        "verdicts": [asdict(v) for v in verdicts],
        "verdict": asdict(paper.seeds_verdict(verdicts)),
    }


def summarise(records: list[dict]) -> dict:
    """Per model (stem): accuracy and every claim across its seeds."""
    models = {}
    for stem in sorted({r["stem"] for r in records}, key=STEMS.index):
        runs = sorted((r for r in records if r["stem"] == stem), key=lambda r: r["seed"])
        models[stem] = {
            "seeds": [r["seed"] for r in runs],
            "r2": {t: spread([r["r2"][t] for r in runs]) for t in TARGETS},
            "stage_seconds": spread([r["stage_seconds"] for r in runs]),
            "ablation": {
                c: {p: across_seeds([r["ablation"][c][p] for r in runs]) for p in paper.PROTOCOLS}
                for c in paper.FIGURE_KEYS
            },
            "head_types": {
                c: across_seeds([r["head_types"][c] for r in runs]) for c in ("chirp_heads", "distractor_heads")
            },
        }
    return models


def gather(show: list[dict], read_metrics=committed_metrics, seconds=compute_seconds) -> dict:
    """The study table from `dvc exp show --json -A`; refuses when a study run has not finished."""
    found = finished_experiments(show)
    missing = [r.name for r in study_runs() if r.name not in found]
    if missing:
        raise SystemExit(
            f"study experiments not finished (or never queued): {', '.join(missing)}; "
            "see `dvc queue status`, or queue them with `python -m vitheads.study run`"
        )
    records = [
        run_record(
            r.name,
            found[r.name],
            {s: read_metrics(found[r.name]["rev"], s) for s in STAGES},
            seconds(found[r.name]["rev"]),
        )
        for r in study_runs()
    ]
    return {
        "gathered": datetime.date.today().isoformat(),
        "command": "python -m vitheads.study run; python -m vitheads.study gather",
        "spread": "across training runs (seeds): each seed renders its own data and split and trains its own model",
        "runs": records,
        "models": summarise(records),
    }


def write_gathered() -> None:
    show = json.loads(
        subprocess.run(["dvc", "exp", "show", "--json", "-A"], check=True, capture_output=True, text=True).stdout
    )
    table = gather(show)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUTPUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(OUTPUT)
    print(f"wrote {OUTPUT}: {len(table['runs'])} runs of {len(table['models'])} models")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vitheads.study", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "gather"])
    args = parser.parse_args(argv)
    if args.command == "run":
        queue_and_start()
    else:
        write_gathered()
