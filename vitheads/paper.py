"""The paper under test (arXiv 2503.18762): its figures, layer bands, claims and verdict rules.

Every other module reads the paper from here, so a figure is typed once and a verdict rule
is tested once (tests/test_paper.py, table-driven). Layers are 1-based, as the paper writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per-head relative MSE increase when one head is ablated, in percent: mean (sd over heads).
EARLY_LAYERS = (1, 3)
EARLY_MEAN_PCT, EARLY_SD_PCT = 0.11, 0.09
MIDDLE_LAYER = 6
MIDDLE_MEAN_PCT, MIDDLE_SD_PCT = 0.34, 0.02
MIDDLE_OVER_EARLY = 3.0
# Head types: chirp-tracking heads in the middle-to-late layers, distractor detectors early.
CHIRP_LAYERS = (6, 11)
DISTRACTOR_LAYERS = (1, 4)
# Bands in which label counts are reported.
BANDS = {"1-3": (1, 3), "4-5": (4, 5), "6-11": (6, 11), "12": (12, 12)}

MAGNITUDE_FACTOR = 3.0  # "partly": same order of magnitude, within this factor
DETECTOR_SHARE = 0.25  # "reproduced": at least this share of the band's heads carry the label


@dataclass(frozen=True)
class Claim:
    key: str
    text: str


CLAIMS = (
    Claim("early", f"Ablating one head of layers 1-3 raises the MSE by +{EARLY_MEAN_PCT}% (sd {EARLY_SD_PCT}%)"),
    Claim("middle", f"Ablating one head of layer {MIDDLE_LAYER} raises the MSE by +{MIDDLE_MEAN_PCT}% (sd {MIDDLE_SD_PCT}%)"),
    Claim("ratio", f"Layer {MIDDLE_LAYER} heads matter about {MIDDLE_OVER_EARLY:g}-fold more than layers 1-3"),
    Claim("chirp_heads", "Layers 6-11 hold monosemantic chirp-tracking heads"),
    Claim("distractor_heads", "Early heads (layers 1-4) are monosemantic but task-irrelevant: text, edge or corner detectors"),
)


def in_band(layer: int, band: tuple[int, int]) -> bool:
    return band[0] <= layer <= band[1]


def magnitude_verdict(paper: float, measured: float, ci: list[float]) -> str:
    """Reproduced if our CI holds the paper's figure and excludes zero; partly if it holds both,
    or if our positive mean is within a factor of 3 of the paper's."""
    if ci[0] <= paper <= ci[1]:
        return "partly (consistent, but not distinguishable from zero)" if ci[0] <= 0 else "reproduced"
    if measured > 0 and paper / MAGNITUDE_FACTOR <= measured <= paper * MAGNITUDE_FACTOR:
        return "partly (same order of magnitude)"
    return "not reproduced"


def ratio_verdict(ratio_ci: list[float], early_ci: list[float], middle_ci: list[float]) -> str:
    """Reproduced if the ratio's CI lies above 1 and holds 3; partly if layer 6 clearly matters more
    but not threefold, or matters while layers 1-3 do not measurably (no finite ratio)."""
    if ratio_ci[0] > 1:
        return "reproduced" if ratio_ci[0] <= MIDDLE_OVER_EARLY <= ratio_ci[1] else "partly (layer 6 matters more, not threefold)"
    if early_ci[0] <= 0 <= early_ci[1] and middle_ci[0] > 0:
        return "partly (layer 6 matters; layers 1-3 indistinguishable from zero, so no ratio)"
    return "not reproduced"


def count_verdict(count: int, total: int, elsewhere_rate: float | None = None) -> str:
    """Reproduced if >= 25% of the band's heads carry the label (and more often than elsewhere)."""
    if total == 0:
        return "not comparable (the model has no heads in these layers)"
    rate = count / total
    if count == 0:
        return "not reproduced"
    if rate >= DETECTOR_SHARE and (elsewhere_rate is None or rate > elsewhere_rate):
        return "reproduced"
    return "partly (present, but few)"


VERDICT_RULES = (
    "Verdicts: an ablation figure is *reproduced* when our 95% CI holds the paper's value and excludes zero, "
    f"*partly* when it holds both, or when our mean is positive and within a factor of {MAGNITUDE_FACTOR:g} of it. "
    f"The ratio is *reproduced* when its CI lies above 1 and holds {MIDDLE_OVER_EARLY:g}, *partly* when it lies above 1, "
    f"or when layer {MIDDLE_LAYER}'s CI lies above zero while that of layers 1-3 holds zero. A head-type claim is "
    f"*reproduced* when at least {DETECTOR_SHARE:.0%} of the band's heads carry the label (for the chirp heads: also more "
    "often than in the other layers), *partly* when some do, *not comparable* when the model has no such layers."
)
