"""Head taxonomy from measured attention, not by eye (rule: README; thresholds: params `classify`).

Input: the attention stage's region table in one view (`classify.view`: cls or received), per
head and mask class: mass (attention on the class's pixels) and area share. The kinds a head can detect are names.KINDS: the chirp
(the task), text (title, axis and tick labels), the colorbar (bar and its labels) and the
frame (spines and tick marks: edges and corners). Plot interior and white margin only hold
these and are no kind.

A class's enrichment is mass / area share; its excess is max(enrichment - 1, 0); a kind's
excess is the sum over its classes, and its share is that over all kinds' excess. Pooling
excess rather than area keeps a head on the title from being diluted by all the other text.
  - A kind is enriched when one of its classes has enrichment >= `min_enrichment`.
  - No kind enriched: `diffuse` if the normalised entropy is >= `diffuse_entropy`, else `unfocused`.
  - Two or more kinds enriched and none with share >= `mono_share`: `polysemantic`.
  - Otherwise `monosemantic-<kind>` for the enriched kind with the largest share
    (monosemantic-chirp is the task-relevant label).
A class absent from the images (area share 0) has no enrichment: without a colorbar no head
can be a colorbar detector.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vitheads import paper
from vitheads.names import KIND_OF

LABELS = ("monosemantic-chirp", "monosemantic-text", "monosemantic-colorbar", "monosemantic-frame", "polysemantic", "diffuse", "unfocused")
DISTRACTOR_LABELS = ("monosemantic-text", "monosemantic-colorbar", "monosemantic-frame")


def kind_scores(region: pd.DataFrame) -> pd.DataFrame:
    """Per layer, head and kind: mass, best class enrichment, excess (the rule in the module doc)."""
    r = region[region["class"].isin(KIND_OF)].assign(kind=lambda d: d["class"].map(KIND_OF))
    r = r.assign(excess=(r["enrichment"] - 1).clip(lower=0).fillna(0))
    return r.groupby(["layer", "head", "kind"], as_index=False).agg(
        mass=("mass", "sum"), enrichment=("enrichment", "max"), excess=("excess", "sum")
    )


def label_head(kinds: pd.DataFrame, entropy: float, c: dict[str, Any]) -> tuple[str, str]:
    """(label, dominant kind or kinds) for one head's rows of kind_scores."""
    enriched = kinds[kinds["enrichment"] >= c["min_enrichment"]]
    if enriched.empty:
        return ("diffuse" if entropy >= c["diffuse_entropy"] else "unfocused"), ""
    shares = enriched.set_index("kind")["excess"] / kinds["excess"].sum()
    if len(enriched) >= 2 and shares.max() < c["mono_share"]:
        return "polysemantic", "+".join(shares.sort_values(ascending=False).index)
    return f"monosemantic-{shares.idxmax()}", shares.idxmax()


def classify(region: pd.DataFrame, heads: pd.DataFrame, c: dict[str, Any]) -> pd.DataFrame:
    """One row per head: label, dominant kind, mass and enrichment per kind, entropy, all in the
    attention view `classify.view` (cls or received)."""
    kinds = kind_scores(region[region["view"] == c["view"]])
    rows = []
    for h in heads.itertuples():
        mine = kinds[(kinds["layer"] == h.layer) & (kinds["head"] == h.head)]
        e = getattr(h, f"entropy_{c['view']}")
        label, dominant = label_head(mine, e, c)
        row = {"layer": h.layer, "head": h.head, "label": label, "dominant": dominant, "entropy": e}
        for k in mine.itertuples():
            row[f"mass_{k.kind}"] = k.mass
            row[f"enrichment_{k.kind}"] = k.enrichment
        rows.append(row)
    return pd.DataFrame(rows)


def band_counts(labelled: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Label counts overall and per layer band (1-based layers, as in the paper)."""
    out = {"all": labelled["label"].value_counts().to_dict()}
    for band, (low, high) in paper.BANDS.items():
        out[f"layers_{band}"] = labelled[labelled["layer"].between(low, high)]["label"].value_counts().to_dict()
    return {k: {label: int(v.get(label, 0)) for label in LABELS} for k, v in out.items()}


def paper_counts(labelled: pd.DataFrame) -> dict[str, int]:
    """The head counts the paper's head-type claims are judged on (bands: vitheads.paper)."""
    chirp = labelled["label"] == "monosemantic-chirp"
    chirp_band = labelled["layer"].between(*paper.CHIRP_LAYERS)
    early = labelled["layer"].between(*paper.DISTRACTOR_LAYERS)
    return {
        "chirp_heads_all": int(chirp.sum()),
        "chirp_heads_layers_6_11": int((chirp & chirp_band).sum()),
        "heads_layers_6_11": int(chirp_band.sum()),
        "distractor_heads_layers_1_4": int((early & labelled["label"].isin(DISTRACTOR_LABELS)).sum()),
        "text_or_frame_heads_layers_1_4": int((early & labelled["label"].isin(["monosemantic-text", "monosemantic-frame"])).sum()),
        "heads_layers_1_4": int(early.sum()),
    }
