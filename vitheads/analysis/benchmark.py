"""The planted controls' benchmark: which heads each method flags as reading a planted cue, per kind.

A planted run (vitheads.model.planted) knows its truth: the designated heads are the only path from each
cue to the output. Each method below reads the cue variant's rows of results/causal/heads.csv (member A and
B differ in the cue alone) and flags heads by its own test, Benjamini-Hochberg at causal.fdr over the
heads (and targets) it tests; the study gathers hit rates on planted runs and false detections on control
runs (vitheads.study).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads.analysis.causal import discoveries, label_columns
from vitheads.data.cues import designated_heads
from vitheads.names import TARGETS, head_name

# method -> (per-target measure, or the one p column), in the order of the report's table
METHODS = {
    "attention AUROC (ceiling-free)": (None, "attention_auroc_p"),
    "attention rollout": (None, "rollout_excess_p"),
    "gradient x input (linearised head change)": (None, "linearised_p"),
    "key/value patching: reads": (None, "kv_read_p"),
    "key/value patching: reads into the output (the repaired rule)": ("kv_prediction_change", None),
    "head patching": ("patch_prediction_change", None),
    "attribution patching": ("patch_estimate", None),
    "direct attribution": ("direct_change", None),
}
RULE = "key/value patching: reads into the output (the repaired rule)"
DECOMPOSITION = "decomposition (route split, repaired rule's bar)"  # vitheads.analysis.graded.component_flags
RELIANCE_SD = 0.5  # a planted run relies on a cue when swapping it moves the cued prediction by half its sd


def columns(indexed: pd.DataFrame, per_target: str | None, column: str | None, targets: tuple[str, ...]) -> list[str]:
    """A method's p-value columns: one per target for a per-target measure, else its one column."""
    return label_columns(indexed, per_target, targets) if per_target else [column]


def flags(
    table: pd.DataFrame,
    kinds: list[str],
    fdr: float,
    targets: tuple[str, ...] = TARGETS,
    route_heads: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per method, planted kind and head (1-based): whether the method flags the head on the kind's
    cue variant; with route_heads ({kind: [L, H] bool}, the route split's head flags on that variant), the
    decomposition as one more method."""
    indexed = table.set_index(["variant", "layer", "head"])
    rows = []
    for kind in kinds:
        variant = f"{kind}_cue"
        heads = indexed.loc[variant].index
        found_by = {
            method: discoveries(indexed, [variant], columns(indexed, per_target, column, targets), fdr)
            for method, (per_target, column) in METHODS.items()
        }
        if route_heads is not None:
            found_by[DECOMPOSITION] = route_heads[kind].ravel()  # [L * H], the table's head order
        rows += [
            {"method": method, "kind": kind, "layer": l, "head": h, "flagged": bool(f)}
            for method, found in found_by.items()
            for (l, h), f in zip(heads, found)
        ]
    return pd.DataFrame(rows)


def benchmark_metrics(flagged: pd.DataFrame, kinds: list[str]) -> dict:
    """metrics/causal.json's `planted`: per kind, the designated heads (1-based, as L2H2), and per method how
    many of them it flags and how many other heads (for the route split, other heads of the designated heads'
    layers only: a head before them can feed the designated head, a head after them can carry its write on)."""
    out = {}
    for kind in kinds:
        truth = {(l + 1, h + 1) for l, h in designated_heads([kind])[kind]}
        mine = flagged[flagged["kind"] == kind]
        per_method = {}
        for method, rows in mine.groupby("method", sort=False):
            hit = {(r.layer, r.head) for r in rows[rows["flagged"]].itertuples()}
            others = hit - truth
            if method == DECOMPOSITION:  # heads in other layers can carry the cue on its route: not false
                others = {(l, h) for l, h in others if l in {tl for tl, _ in truth}}
            per_method[method] = {"designated_flagged": len(hit & truth), "others_flagged": len(others)}
        out[kind] = {
            "designated": [head_name(l, h) for l, h in sorted(truth)],
            "heads": int((mine["method"] == RULE).sum()),
            "methods": per_method,
        }
    return out
