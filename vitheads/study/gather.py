"""Gathering a study's finished runs into study/<study>.json: one compact record per run, read from the
experiment's own commit (metrics, timings, tables and dvc.lock are in git), and the study's summary
(vitheads.study.summaries). The file records the commit every run was queued on and the md5 of every code
file its stages ran, so that the report can flag a study whose analysis code is not the checkout's; and where and
when each run ran (the machine and time of its queue entry, the time its experiment was committed)."""

from __future__ import annotations

import datetime
import io
import json
import subprocess

import numpy as np
import pandas as pd
from ruamel.yaml import YAML

from vitheads.study.runner import (
    committed_file,
    committed_json,
    committed_study,
    finished,
    queue_log,
    show,
    study_path,
)
from vitheads.study.studies import ORDER_SEEDS, STUDIES, Run
from vitheads.study.summaries import SUMMARIES, distortion

STAGES = ("generate", "finetune", "ablate", "attention", "causal")
METRICS = ("finetune", "ablate", "classify", "causal")


PRESENTATION = ("figures", "report")  # their code draws and words; it computes nothing a study gathers


def code_hashes(lock_text: str) -> dict[str, str]:
    """md5 of every stages/ and vitheads/ file the computing stages of a run depended on (from its dvc.lock):
    the analysis code; the figures and report stages' own code is left out."""
    lock = YAML(typ="safe").load(lock_text)
    return {
        d["path"]: d["md5"]
        for name, stage in lock["stages"].items()
        if name not in PRESENTATION
        for d in stage.get("deps", [])
        if d["path"].startswith(("stages/", "vitheads/"))
    }


def committed_arrays(rev: str, path: str) -> dict[str, np.ndarray]:
    raw = subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True).stdout
    with np.load(io.BytesIO(raw)) as arrays:
        return dict(arrays)


def run_record(run: Run, exp: dict, with_heads: bool, queued: dict | None = None) -> dict:
    """One run: identity, where and when it ran (queued: its queue log entry; None for a run queued before the
    log was kept), code, cost, and the metrics every summary reads; with_heads, the per-head table and the
    attention fingerprints on the shared images (for matching heads across runs)."""
    rev = exp["rev"]
    queued = queued or {}
    record = {
        "name": run.name,
        "arm": run.arm,
        "seed": run.seed,
        "held_out": run.held_out,
        "overrides": list(run.overrides),
        "rev": rev,
        "baseline": exp["baseline"],
        "machine": queued.get("machine"),  # host (CPU model), of the queue that ran it
        "queued": queued.get("queued"),  # UTC
        "finished": exp["timestamp"],  # the experiment's commit
        "block_position": queued.get("block_position"),  # in its seed's queue order (seed-blocked studies)
        "code": code_hashes(committed_file(rev, "dvc.lock")),
        "timings": {s: committed_json(rev, f"timings/{s}.json") for s in STAGES},
        "metrics": {s: committed_json(rev, f"metrics/{s}.json") for s in METRICS},
    }
    if with_heads:
        table = pd.read_csv(io.StringIO(committed_file(rev, "tables/heads.csv")))
        record["heads"] = {"columns": list(table.columns), "rows": table.to_numpy().tolist()}
        fingerprints = committed_arrays(rev, "tables/fingerprints.npz")["received"]  # [n, L, H, G, G] float16
        record["fingerprints"] = fingerprints.astype(float).reshape(*fingerprints.shape[:3], -1)  # [n, L, H, P]
    return record


def gather(study: str, shown: list[dict]) -> dict:
    """The study file from `dvc exp show --json -A`: every finished run and the summary; runs not finished
    yet are listed, not waited for (so a study can be gathered in parts, held-out runs last). Runs that the
    committed file holds and no local experiment does are kept from the file: experiments are local git refs,
    so the runs of an earlier session's machine survive only there. A committed run that a newer run of the
    same name replaces (a seed block run again whole on one machine) moves to `superseded`, kept, not analysed."""
    done = finished(shown, f"{study}-")
    previous = committed_study(study) or {}
    kept = {r["name"]: r for r in previous.get("runs", []) if r["name"] not in done}
    replaced = [r for r in previous.get("runs", []) if r["name"] in done and r["rev"] != done[r["name"]]["rev"]]
    runs = STUDIES[study]()
    log = queue_log(study)
    records = [
        run_record(r, done[r.name], study == "estimates", log.get(r.name)) if r.name in done else kept[r.name]
        for r in runs
        if r.name in done or r.name in kept
    ]
    summary = summarise(study, records)
    if study == "estimates" and "matching" not in summary and "matching" in previous.get("summary", {}):
        summary["matching"] = previous["summary"]["matching"] | {"carried_over_from": previous["gathered"]}
    return {
        "study": study,
        "gathered": datetime.date.today().isoformat(),
        "command": f"python -m vitheads.study run {study}; python -m vitheads.study gather {study}",
        "order_seed": ORDER_SEEDS.get(study),  # each seed block's queue order is drawn from it (runner.block_order)
        "missing": [r.name for r in runs if r.name not in done and r.name not in kept],
        "kept_from_committed_file": sorted(kept.keys() & {r.name for r in runs}),
        "runs": records,
        "superseded": previous.get("superseded", []) + replaced,  # run again under the same name; not analysed
        "summary": summary,
    }


def summarise(study: str, records: list[dict]) -> dict:
    """The study's summary; the distortion study's arms are compared with the estimates study's default runs."""
    if study != "distortion":
        return SUMMARIES[study](records)
    estimates = committed_study("estimates") or {"runs": []}
    return distortion(records, [r for r in estimates["runs"] if r["arm"] == "conv"])


def write_gathered(study: str) -> None:
    table = gather(study, show())
    for record in table["runs"] + table["superseded"]:
        record.pop("fingerprints", None)  # the matching is in the summary; the maps would weigh megabytes
    path = study_path(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=None, separators=(",", ":")) + "\n")
    tmp.replace(path)
    missing = table["missing"]
    print(
        f"wrote {path}: {len(table['runs'])} runs"
        + (f"; {len(missing)} not finished (first: {missing[0]}; `status {study}` lists them)" if missing else "")
    )
