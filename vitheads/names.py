"""Names every stage shares: mask classes and the kinds a head can detect, regression targets
and their units, ablation modes, attention views, and how a head is written (L12H3).

Only plain data lives here, so any stage can import it without pulling in the renderer, the
model or matplotlib.
"""

from __future__ import annotations

# Mask classes, in the order of their ids in masks.npy and of the last axis of patch_fractions.npy.
CLASSES = (
    "margin",
    "background",
    "chirp",
    "title",
    "axis_labels",
    "tick_labels",
    "colorbar",
    "colorbar_text",
    "frame",
)
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}
# What a head can be said to detect: the chirp (the task) and three kinds of plot furniture.
# Background (plot interior) and margin (white space) only hold these, so they are no kind.
KINDS = {
    "chirp": ("chirp",),
    "text": ("title", "axis_labels", "tick_labels"),
    "colorbar": ("colorbar", "colorbar_text"),
    "frame": ("frame",),
}
KIND_OF = {c: kind for kind, classes in KINDS.items() for c in classes}
DISTRACTOR_KINDS = ("text", "colorbar", "frame")

TARGETS = ("Chirp_Start_Time", "Chirp_Start_Freq", "Chirp_End_Freq")
# Planted cues (vitheads.data.cues) add one target per kind, a shade in [0, 1].
CUE_TARGETS = {kind: f"Cue_{kind.capitalize()}" for kind in DISTRACTOR_KINDS}
UNITS = {"Chirp_Start_Time": "s", "Chirp_Start_Freq": "Hz", "Chirp_End_Freq": "Hz"} | dict.fromkeys(
    CUE_TARGETS.values(), "shade"
)

ABLATION_MODES = ("zero", "mean")
# Activation patching between the two members of a pair: whose head output goes into whose pass.
PATCH_DIRECTIONS = ("variant_into_original", "original_into_variant")
# Attention views (vitheads.interp.attention): distributions over the patches of one image.
VIEWS = ("received", "from_chirp", "cls")
VIEW_TITLES = {
    "received": "attention received per patch, mean over patch queries",
    "from_chirp": "attention from the chirp's patches",
    "cls": "CLS token attention",
}
CLS_NOTE = (
    "The flatten readout never reads the CLS token directly (forward_head drops it), so the last layer's CLS "
    "row cannot change the output; in earlier layers the patch tokens still read CLS as a key and value."
)


def view_reaches_output(view: str, pooling: str) -> bool:
    """Whether a view is what the readout reads: the CLS row only under a CLS readout (CLS_NOTE)."""
    return view != "cls" or pooling == "token"


def head_name(layer: int, head: int) -> str:
    """1-based layer and head as the paper writes them: L12H3."""
    return f"L{layer}H{head}"
