"""The report's interactive head explorer: every number and map it shows, packed into one JSON
payload that the page's own script (templates/explorer.js) draws, offline.

Maps are quantised to one byte on a log scale in multiples of uniform attention over [1/vmax, vmax],
vmax the largest value among the example maps of every view (the figures' scale also counts the
mean grids, so their vmax can differ). A step is 2 ln(vmax) / 255 in log units: under 4% of the
value while vmax <= 165 (56 on the default run).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from PIL import Image as PILImage

from vitheads import artifacts
from vitheads.analysis.causal import rule_text
from vitheads.analysis.tables import read_arrays, read_table
from vitheads.analysis.taxonomy import LABEL_COLOURS, LABELS
from vitheads.names import CLASSES, DISTRACTOR_KINDS, KINDS, TARGETS, VIEW_TITLES, VIEWS, view_reaches_output

NOTE = "The interactive head explorer is in report.html (open it in a browser; it works offline)."
OUTLINE_COLOURS = {"chirp": "#39ff14", "text": "#00bfff", "colorbar": "#ff9900", "frame": "#ffff00"}
REGION_COLUMNS = ["enrichment", "ci_low", "ci_high", "null", "excess_ci_low", "excess_ci_high"]
CAUSAL_MEASURES = [
    "sensitivity_element",
    "sensitivity_elsewhere",
    "kv_read",
    "follow",
    "patch_prediction_change",
    "kv_prediction_change",
]  # results/causal/heads.csv
EVIDENCE = {
    "responds": "responds",
    "reads": "reads",
    "follows": "follows",
    "changes_predictions": "changes predictions",
    "reads_into_output": "reads into the output",
}  # classify's joined columns


def png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of a boolean [S, S] mask with a 4-neighbour outside the mask (the image edge counts as outside)."""
    padded = np.pad(mask, 1)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inside


def outline_layers(masks: np.ndarray) -> dict[str, list[str]]:
    """Per kind, one transparent PNG per image with the kind's outline in its colour."""
    layers = {}
    for kind in ("chirp", *DISTRACTOR_KINDS):
        ids = [CLASSES.index(c) for c in KINDS[kind]]
        rgb = np.array([int(OUTLINE_COLOURS[kind][i : i + 2], 16) for i in (1, 3, 5)], np.uint8)
        uris = []
        for mask in masks:  # [S, S] class ids
            edge = outline(np.isin(mask, ids))
            rgba = np.zeros((*mask.shape, 4), np.uint8)
            rgba[edge] = [*rgb, 255]
            uris.append(png_data_uri(rgba))
        layers[kind] = uris
    return layers


def quantise(maps: np.ndarray, vmax: float) -> str:
    """[..., G, G] attention probabilities -> base64 bytes of log(multiples of uniform) on [1/vmax, vmax]."""
    tokens = maps.shape[-1] * maps.shape[-2]
    log_multiple = np.log(np.maximum(maps * tokens, 1e-12))
    codes = np.clip(np.rint((log_multiple + np.log(vmax)) / (2 * np.log(vmax)) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(codes.tobytes()).decode()


def palette(name: str) -> list[str]:
    """A matplotlib colour map as 256 hex colours, for the page's script."""
    rgb = (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def number(x: float) -> float | None:
    """JSON has no NaN: a value that does not exist (a region absent from every image) becomes null."""
    return float(x) if np.isfinite(x) else None


def causal_evidence(causal: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """One head's paired-render measures per variant ([mean, CI low, CI high], null where not measured)
    and its verdicts per distractor kind (the columns classify joined)."""
    measures = {}
    for r in causal[(causal["layer"] == row["layer"]) & (causal["head"] == row["head"])].to_dict("records"):
        measures[r["variant"]] = {
            "distractor": r["distractor"],
            **{
                m: [
                    number(r.get(m, np.nan)),
                    number(r.get(f"{m}_ci_low", np.nan)),
                    number(r.get(f"{m}_ci_high", np.nan)),
                ]
                for m in CAUSAL_MEASURES
            },
        }
    verdicts = {
        kind: {name: bool(row[f"{key}_{kind}"]) for key, name in EVIDENCE.items() if f"{key}_{kind}" in row}
        for kind in DISTRACTOR_KINDS
    }
    return {
        "variants": measures,
        "verdicts": {k: v for k, v in verdicts.items() if v},
        "taskRelevant": bool(row.get("task_relevant", False)),
    }


def head_records(
    classified: pd.DataFrame, regions: pd.DataFrame, ablated: pd.DataFrame, causal: pd.DataFrame
) -> list[dict[str, Any]]:
    """One record per head (layer-major): label, region scores with CIs, ablation effects per mode with
    CIs, causal evidence."""
    records = []
    for row in classified.sort_values(["layer", "head"]).itertuples():
        mine = regions[(regions["layer"] == row.layer) & (regions["head"] == row.head)]
        effects = {}
        for e in ablated[(ablated["layer"] == row.layer) & (ablated["head"] == row.head)].itertuples():
            per_target = {
                t: [getattr(e, f"increase_pct_{t}"), getattr(e, f"ci_low_pct_{t}"), getattr(e, f"ci_high_pct_{t}")]
                for t in TARGETS
            }
            effects[e.mode] = {"all": [e.increase_pct, e.ci_low_pct, e.ci_high_pct], **per_target}
        records.append(
            {
                "layer": int(row.layer),
                "head": int(row.head),
                "label": row.label,
                "regions": {r.region: [number(getattr(r, c)) for c in REGION_COLUMNS] for r in mine.itertuples()},
                "effects": {m: {k: [number(x) for x in v] for k, v in d.items()} for m, d in effects.items()},
                "causal": causal_evidence(causal, row._asdict()),
            }
        )
    return records


def payload(
    classified: pd.DataFrame,
    regions: pd.DataFrame,
    ablated: pd.DataFrame,
    causal: pd.DataFrame,
    examples: dict[str, np.ndarray],
    measured: dict[str, dict[str, Any]],
    p: dict[str, Any],
) -> dict[str, Any]:
    """Everything the explorer shows, JSON-ready. What the run did (the labelling view, the causal pairs) comes
    from its metrics (`measured`: classify and causal), as the report prints it, not from today's params."""
    views = [v for v in VIEWS if v in examples]
    grid = examples[views[0]].shape[-1]
    vmax = max(2.0, max(float(examples[v].max()) * grid * grid for v in views))
    return {
        "layers": int(classified["layer"].max()),
        "heads": int(classified["head"].max()),
        "grid": grid,
        "labelView": measured["classify"]["view"],
        "importanceMode": p["classify"]["importance_mode"],
        "labels": list(LABELS),
        "labelColours": LABEL_COLOURS,
        "targets": list(TARGETS),
        "views": [
            {"name": v, "title": VIEW_TITLES[v], "reachesOutput": view_reaches_output(v, p["model"]["pooling"])}
            for v in views
        ],
        "vmax": vmax,
        "magma": palette("magma"),
        "maps": {v: quantise(examples[v], vmax) for v in views},  # [images, layers, heads, G, G]
        "images": [png_data_uri(image) for image in examples["images"]],
        "outlines": outline_layers(examples["masks"]) if "masks" in examples else {},
        "outlineColours": OUTLINE_COLOURS,
        "causalRuleText": causal_rules(p["causal"], measured["causal"]).replace("*", ""),
        "records": head_records(classified, regions, ablated, causal),
    }


def causal_rules(c: dict[str, Any], causal_metrics: dict[str, Any]) -> str:
    """The causal rules with today's thresholds and the pairs the run measured (its metrics): the report and the
    explorer print this one text."""
    return rule_text(c, causal_metrics["images"], causal_metrics["patch_images"])


def run_payload(p: dict[str, Any]) -> dict[str, Any]:
    """The payload of the run in the working directory."""
    return payload(
        read_table(artifacts.CLASSIFY_HEADS),
        read_table(artifacts.CLASSIFY_REGIONS),
        read_table(artifacts.ABLATE_HEADS),
        read_table(artifacts.CAUSAL_HEADS),
        read_arrays(artifacts.ATTENTION_EXAMPLES),
        {stage: artifacts.read_json(artifacts.metrics(stage)) for stage in ("classify", "causal")},
        p,
    )


def explorer_html(data: dict[str, Any]) -> str:
    """The explorer's markup, styles, data and script, inline: the page makes no request."""
    script, style = artifacts.EXPLORER_JS.read_text(), artifacts.EXPLORER_CSS.read_text()
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        f"<style>{style}</style>\n"
        '<section id="explorer"></section>\n'
        f'<script type="application/json" id="explorer-data">{blob}</script>\n'
        f"<script>{script}</script>"
    )
