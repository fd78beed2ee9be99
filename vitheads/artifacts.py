"""Every artifact path the figures and report stages read or write, relative to the run's directory: one
place to rename a file, and no matplotlib or pandas here, so any stage may import it."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path("data/generated")
REPORT = Path("report")
REPORT_MD = REPORT / "report.md"
REPORT_HTML = REPORT / "report.html"
TEMPLATES = Path("templates")
REPORT_TEMPLATES = TEMPLATES / "report"
EXPLORER_JS = TEMPLATES / "explorer.js"
EXPLORER_CSS = TEMPLATES / "explorer.css"
STUDY = Path("study")
TIMINGS_FINETUNE = Path("timings/finetune.json")

PREDICTIONS = Path("results/finetune/predictions.csv")
ABLATE_HEADS = Path("results/ablate/heads.csv")
ABLATE_LAYERS = Path("results/ablate/layers.csv")
ATTENTION_MAPS = Path("results/attention/maps.npz")
ATTENTION_EXAMPLES = Path("results/attention/examples.npz")
ATTENTION_SCORES = Path("results/attention/scores.npz")
ATTENTION_HEADS = Path("results/attention/heads.csv")
CLASSIFY_HEADS = Path("results/classify/heads.csv")
CLASSIFY_REGIONS = Path("results/classify/regions.csv")
CLASSIFY_SENSITIVITY = Path("results/classify/sensitivity.csv")
CAUSAL_HEADS = Path("results/causal/heads.csv")
CAUSAL_ATTRIBUTION = Path("results/causal/attribution.csv")
CAUSAL_DECOMPOSITION = Path("results/causal/decomposition.csv")

PLOTS = Path("plots")
SAMPLES_PNG = PLOTS / "generate/samples.png"
PRED_VS_TRUE_PNG = PLOTS / "finetune/pred_vs_true.png"
ABLATE_PLOTS = PLOTS / "ablate"
LAYERS_PNG = ABLATE_PLOTS / "layers.png"
ATTENTION_PLOTS = PLOTS / "attention"
OVERLAYS_PNG = ATTENTION_PLOTS / "overlays.png"
DISTANCE_PNG = ATTENTION_PLOTS / "distance.png"
TAXONOMY_PNG = PLOTS / "classify/taxonomy.png"
CAUSAL_PLOTS = PLOTS / "causal"
STUDY_PLOTS = PLOTS / "study"
CAUSAL_FIGURES = ("sensitivity", "broadcast", "reads", "follow", "patching")  # plots/causal/<name>.png
ROUTES_FIGURE = "routes"  # plots/causal/routes.png: the route split of every element


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def metrics(stage: str) -> Path:
    return Path("metrics") / f"{stage}.json"


def study(name: str) -> Path:
    """A committed study file: estimates, planted, frame-band, distortion (replication: the old one)."""
    return STUDY / f"{name}.json"


def read_study(name: str) -> dict | None:
    """A committed study file's contents, None before it is gathered."""
    path = study(name)
    return read_json(path) if path.is_file() else None


def heatmap_png(mode: str) -> Path:
    return ABLATE_PLOTS / f"heatmap_{mode}.png"


def grid_png(view: str) -> Path:
    return ATTENTION_PLOTS / f"grid_{view}.png"


def causal_png(name: str) -> Path:
    return CAUSAL_PLOTS / f"{name}.png"


GRADED_POWER = STUDY_PLOTS / "graded_power.png"  # the graded benchmark's power curves (study/graded.json)
FACTORIAL_INTERACTIONS = STUDY_PLOTS / "factorial_interactions.png"  # the factorial's cell means (study/factorial.json)


def forest_png(stem: str) -> Path:
    return STUDY_PLOTS / f"forest_{stem}.png"
