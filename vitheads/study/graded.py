"""The graded benchmark (issue 38): implants of known size on trained default models, and every method scored on
them (vitheads.model.implant, vitheads.interp.implant, vitheads.analysis.graded; design: docs/graded.md).

    python -m vitheads.study run graded       # train the default model on GRADED_SEEDS (dvc exp, generate+finetune)
    python -m vitheads.study measure graded   # per finished run: implant, calibrate, measure; resumable
    python -m vitheads.study gather graded    # study/graded.json: header, per-run records, scores

The thresholds of every rule are params.yaml's causal section. `measure` records them, with the grid and the
levels, in study/graded/header.json the first time it runs and refuses to go on if they change: they are
fixed before the graded runs. They were set on seed 20250324 (the default run N and the planted study's fit
seed); the graded seeds are fresh (GRADED_SEEDS), so the rules are scored on models not used to set them.

One record per implant (all its levels and the gain-0 control) is appended to study/graded/<run>.jsonl as
soon as it is measured, so a stopped `measure` resumes at the next implant. Per run and element the trained
model's own measures (gain 0, the control of every implant of that element) come first, in a control line.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vitheads import params, threads
from vitheads.analysis.causal import change_bars, head_rows
from vitheads.analysis.graded import DECOMPOSITION, component_flags, detection_rows, head_flags, score
from vitheads.analysis.stats import bootstrap_weights
from vitheads.data.chirps import sample_chirp
from vitheads.data.furniture import Distortions
from vitheads.data.generation import image_rng
from vitheads.data.pairs import PairRenderer, render_pairs
from vitheads.interp.causal import measure_variant
from vitheads.interp.implant import calibrate, design
from vitheads.model.implant import implant
from vitheads.model.vit import Scaling, load_trained
from vitheads.names import TARGETS
from vitheads.study.studies import GRADED_SEEDS

STUDY = "graded"
LEVELS_Z = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # the whole-model effect of an implant on its target (z)
ELEMENTS = ("tick_labels_text", "colorbar_colormap", "frame_grey")  # one content swap per distractor kind
BANDS = {"early": (0, 1, 2, 3), "late": (6, 7, 8, 9, 10)}  # 0-based blocks: layers 1-4 and 7-11
PER_BAND = {"head": 2, "redundant": 1, "mlp": 1}  # implants per element and band; plus one direct per element
DIR = Path("study/graded")
HEADER = DIR / "header.json"
RULE_KEYS = (  # params.yaml causal keys that decide a flag: the rules' thresholds and the samples they see
    "fdr",
    "min_response",
    "min_follow",
    "min_prediction_change",
    "relative_change",
    "patch_screen",
    "min_auroc",
    "min_rollout",
    "images",
    "patch_images",
    "bootstrap",
)


def grid(seed: int, element: str, depth: int, n_heads: int) -> list[dict]:
    """The implants of one run and element, drawn from a generator seeded by both (the same on every machine):
    per band PER_BAND head, redundant and mlp implants at drawn layers and heads, and one direct; the targets
    taken in turn."""
    rng = np.random.default_rng([seed, ELEMENTS.index(element)])
    out = []
    for band, layers in BANDS.items():
        layers = [l for l in layers if l < depth]
        for site, count in PER_BAND.items():
            if len(layers) < count:  # a model shallower than the band (the tests' tiny models)
                continue
            for layer in rng.choice(layers, size=count, replace=False):
                heads = (
                    ()
                    if site == "mlp"
                    else tuple(
                        sorted(int(h) for h in rng.choice(n_heads, 2 if site == "redundant" else 1, replace=False))
                    )
                )
                out.append({"site": site, "band": band, "layer": int(layer), "heads": heads})
    out.append({"site": "direct", "band": "readout", "layer": depth, "heads": ()})
    for i, spec in enumerate(out):
        spec |= {"seed": seed, "variant": element, "target": i % len(TARGETS)}
        heads = "+".join(map(str, spec["heads"]))
        spec["key"] = f"{element}/{spec['site']}/{spec['band']}/L{spec['layer']}/H{heads}/T{spec['target']}"
    return out


def header(p: dict) -> dict:
    """What is fixed before the runs: every rule's thresholds (params.yaml's causal section), the levels, the
    grid, the seeds, and the commit."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "study": STUDY,
        "fixed": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "thresholds": {k: p["causal"][k] for k in RULE_KEYS},
        "thresholds_set_on_seeds": [20250324],
        "seeds": list(GRADED_SEEDS),
        "levels_z": list(LEVELS_Z),
        "elements": list(ELEMENTS),
        "bands": {b: [l + 1 for l in layers] for b, layers in BANDS.items()},
        "per_band": PER_BAND,
    }


def fixed_header(p: dict) -> dict:
    """The header on file, written now if there is none; refuses thresholds that differ from it."""
    now = header(p)
    if not HEADER.is_file():
        DIR.mkdir(parents=True, exist_ok=True)
        HEADER.write_text(json.dumps(now, indent=1) + "\n")
        return now
    fixed = json.loads(HEADER.read_text())
    for key in ("thresholds", "levels_z", "elements", "seeds"):
        if fixed[key] != now[key]:
            raise SystemExit(f"{HEADER} fixed {key} = {fixed[key]} before the runs; params/code now give {now[key]}")
    return fixed


def targets_z(seed: int, n: int, config: dict) -> np.ndarray:
    """[n, T] the first n test images' targets, z-scored with the model's scaling (the chirps are drawn from the
    seed exactly as the generate stage draws them)."""
    chirps = [sample_chirp(image_rng(seed, "test", i)) for i in range(n)]
    y = np.array([[c.start_time, c.start_freq, c.end_freq] for c in chirps])
    return Scaling.from_config(config).z(y)


class Measurer:
    """The measures of one run's model on one element's pairs, and the flags every method raises on them."""

    def __init__(self, model, pairs, z_true, p: dict, seed: int):
        c = p["causal"]
        self.model, self.pairs, self.z, self.c = model, pairs, z_true, c
        self.weights = bootstrap_weights(len(z_true), c["bootstrap"], seed)
        self.patch_weights = bootstrap_weights(c["patch_images"], c["bootstrap"], seed)
        self.screen = c["patch_screen"] * c["min_prediction_change"]

    def flags(self, model) -> tuple[dict, np.ndarray]:
        """{method: [L, H] bool, DECOMPOSITION: component flags} on a model, and its paired-render change [n, T]."""
        c = self.c
        m = measure_variant(model, self.pairs, self.z, c["batch_size"], c["patch_images"], self.screen, kv=True)
        rows = pd.DataFrame(head_rows(self.pairs.variant, m, self.weights, self.patch_weights, c, TARGETS))
        found = head_flags(rows, self.pairs.variant, c["fdr"], TARGETS)
        depth = len(model.blocks)
        found[DECOMPOSITION] = component_flags(m.route_changes, self.weights, change_bars(m, c), c["fdr"], depth)
        return found, m.prediction_change


def as_json(flags: dict) -> dict:
    return {
        k: (
            {kk: (vv.tolist() if isinstance(vv, np.ndarray) else vv) for kk, vv in v.items()}
            if isinstance(v, dict)
            else v.tolist()
        )
        for k, v in flags.items()
    }


def from_json(flags: dict) -> dict:
    return {
        k: (
            {kk: (np.array(vv) if isinstance(vv, list) else vv) for kk, vv in v.items()}
            if isinstance(v, dict)
            else np.array(v)
        )
        for k, v in flags.items()
    }


def done_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def measure_model(name: str, seed: int, model, config: dict, p: dict) -> None:
    """Every implant of the grid on one trained model, appended to study/graded/<name>.jsonl (resumable)."""
    torch.manual_seed(seed)
    path = DIR / f"{name}.jsonl"
    lines = done_lines(path)
    done = {line["key"] for line in lines}
    controls = {line["variant"]: line for line in lines if line["key"].startswith("control/")}
    size, patch, n = p["model"]["image_size"], p["model"]["patch_size"], p["causal"]["images"]
    renderer = PairRenderer(size, Distortions(**p["distortion"]))
    depth, n_heads = len(model.blocks), model.blocks[0].attn.num_heads
    z_true = targets_z(seed, n, config)
    for element in ELEMENTS:
        todo = [g for g in grid(seed, element, depth, n_heads) if g["key"] not in done]
        if not todo:
            continue
        pairs = render_pairs(element, seed, patch, n, renderer)
        measurer = Measurer(model, pairs, z_true, p, seed)
        if element not in controls:
            started = time.perf_counter()
            flags, change = measurer.flags(model)
            controls[element] = {
                "key": f"control/{element}",
                "variant": element,
                "flags": as_json(flags),
                "element_effect": np.abs(change).mean(0).round(6).tolist(),  # the trained model's own, per target
                "seconds": round(time.perf_counter() - started, 1),
            }
            append(path, controls[element])
        zero = from_json(controls[element]["flags"])
        for spec in todo:
            started = time.perf_counter()
            base = design(model, spec["site"], spec["layer"], spec["target"], pairs, spec["heads"])
            calibrated = calibrate(model, base, pairs, list(LEVELS_Z))
            rows = detection_rows(spec, {"level": 0.0, "effect": 0.0, "gain": 0.0}, zero, zero)
            for cal in calibrated:
                flags, _ = measurer.flags(implant(model, base.with_gain(cal.gain)))
                rows += detection_rows(spec, {"level": cal.level, "effect": cal.effect, "gain": cal.gain}, flags, zero)
            record = {**spec, "heads": list(spec["heads"]), "calibration": [c.as_dict() for c in calibrated]}
            append(path, record | {"rows": rows, "seconds": round(time.perf_counter() - started, 1)})


def append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def experiment_model(rev: str) -> tuple[torch.nn.Module, dict]:
    """The finetune stage's model of an experiment commit, read from the DVC cache (dvc.api)."""
    import dvc.api

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("model.safetensors", "model.json"):
            with dvc.api.open(f"models/{name}", rev=rev, mode="rb") as src:
                (Path(tmp) / name).write_bytes(src.read())
        return load_trained(tmp)


def measure(runs: list[tuple[str, int, str]]) -> None:
    """`measure graded`: runs are (name, seed, experiment rev or a model directory)."""
    threads.limit_torch()
    p = params.load()
    fixed_header(p)
    for name, seed, where in runs:
        model, config = load_trained(where) if Path(where).is_dir() else experiment_model(where)
        print(f"{name}: measuring the graded implants (study/graded/{name}.jsonl)", flush=True)
        measure_model(name, seed, model, config, p)


def observed_effects(estimates: dict | None) -> dict:
    """The default model's own element effects (mean |prediction change|, z) on the estimates study's runs: the
    marks on the power curve's effect axis."""
    out: dict[str, list[float]] = {}
    for run in (estimates or {}).get("runs", []):
        if run["arm"] != "conv":
            continue
        for variant, effect in run["metrics"]["causal"]["model_effect"].items():
            out.setdefault(variant, []).extend(effect[f"{t}_abs_change"] for t in TARGETS)
    return {v: {"min": min(x), "max": max(x), "values": x} for v, x in out.items()}


def gathered() -> dict:
    """study/graded.json: the header, per run its controls and calibrations, and the scores."""
    fixed = json.loads(HEADER.read_text()) if HEADER.is_file() else None
    runs, rows = [], []
    for path in sorted(DIR.glob("*.jsonl")):
        lines = done_lines(path)
        implants = [line for line in lines if not line["key"].startswith("control/")]
        runs.append(
            {
                "name": path.stem,
                "controls": {
                    line["variant"]: {"element_effect": line["element_effect"], "seconds": line["seconds"]}
                    for line in lines
                    if line["key"].startswith("control/")
                },
                "implants": [{k: v for k, v in line.items() if k != "rows"} for line in implants],
                "seconds": round(sum(line["seconds"] for line in lines), 1),
            }
        )
        rows += [row for line in implants for row in line["rows"]]
    estimates = Path("study/estimates.json")
    table = pd.DataFrame(rows)
    return {
        "study": STUDY,
        "gathered": datetime.date.today().isoformat(),
        "header": fixed,
        "runs": runs,
        "observed_element_effects": observed_effects(
            json.loads(estimates.read_text()) if estimates.is_file() else None
        ),
        "summary": score(table) if len(table) else {},
        "wall_seconds": round(sum(r["seconds"] for r in runs), 1),
    }


def write_gathered() -> None:
    out = Path(f"study/{STUDY}.json")
    table = gathered()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, separators=(",", ":"), default=_plain) + "\n")
    tmp.replace(out)
    print(f"wrote {out}: {len(table['runs'])} runs, {sum(len(r['implants']) for r in table['runs'])} implants")
