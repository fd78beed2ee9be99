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
# The bound under which a plot element "does not move the output" (vitheads.analysis.decomposition), fixed
# before the decomposition's runs: the rms prediction change (z units) that, uncorrelated with the error,
# raises a test MSE of REFERENCE_MSE_Z2 by the paper's smallest per-head effect (layers 1-3, 0.11%). An
# element under it moves the output less than the paper says a single early head does. 0.0088 z.
REFERENCE_MSE_Z2 = 0.07  # the default model's test MSE in z units (R² about 0.93 over the targets)
ELEMENT_EQUIVALENCE_Z = (EARLY_MEAN_PCT / 100 * REFERENCE_MSE_Z2) ** 0.5
# Head types: chirp-tracking heads in the middle-to-late layers, distractor detectors early.
CHIRP_LAYERS = (6, 11)
DISTRACTOR_LAYERS = (1, 4)
# Bands in which label counts are reported.
BANDS = {"1-3": (1, 3), "4-5": (4, 5), "6-11": (6, 11), "12": (12, 12)}


def band_key(band: tuple[int, int]) -> str:
    """How metric keys name a band of layers: layers_6_11 (1-based, inclusive)."""
    return f"layers_{band[0]}_{band[1]}"


EARLY_KEY = f"early_{band_key(EARLY_LAYERS)}"  # early_layers_1_3
MIDDLE_KEY = f"layer_{MIDDLE_LAYER}"  # layer_6

MAGNITUDE_FACTOR = 3.0  # "partly": same order of magnitude, within this factor
DETECTOR_SHARE = 0.25  # "reproduced": at least this share of the band's heads carry the label


@dataclass(frozen=True)
class Verdict:
    """A verdict on a claim: its kind (reproduced, partly, not reproduced, not comparable, no verdict)
    and, where the kind needs one, the reason."""

    kind: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.kind} ({self.reason})" if self.reason else self.kind


REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"


@dataclass(frozen=True)
class Claim:
    key: str
    text: str


EARLY_TEXT = f"layers {EARLY_LAYERS[0]}-{EARLY_LAYERS[1]}"
CLAIMS = (
    Claim("early", f"Ablating one head of {EARLY_TEXT} raises the MSE by +{EARLY_MEAN_PCT}% (sd {EARLY_SD_PCT}%)"),
    Claim(
        "middle",
        f"Ablating one head of layer {MIDDLE_LAYER} raises the MSE by +{MIDDLE_MEAN_PCT}% (sd {MIDDLE_SD_PCT}%)",
    ),
    Claim("ratio", f"Layer {MIDDLE_LAYER} heads matter about {MIDDLE_OVER_EARLY:g}-fold more than {EARLY_TEXT}"),
    Claim("chirp_heads", f"Layers {CHIRP_LAYERS[0]}-{CHIRP_LAYERS[1]} hold monosemantic chirp-tracking heads"),
    Claim(
        "distractor_heads",
        f"Early heads (layers {DISTRACTOR_LAYERS[0]}-{DISTRACTOR_LAYERS[1]}) are monosemantic but task-irrelevant: "
        "text, edge or corner detectors",
    ),
)


def in_band(layer: int, band: tuple[int, int]) -> bool:
    return band[0] <= layer <= band[1]


def within_factor(paper: float, measured: float) -> bool:
    return measured > 0 and paper / MAGNITUDE_FACTOR <= measured <= paper * MAGNITUDE_FACTOR


def magnitude_verdict(paper: float, measured: float, ci: list[float]) -> Verdict:
    """Reproduced if our CI holds the paper's figure and excludes zero; partly if it holds both,
    or if our positive mean is within a factor of 3 of the paper's."""
    if ci[0] <= paper <= ci[1]:
        return Verdict(PARTLY, "consistent, but not distinguishable from zero") if ci[0] <= 0 else Verdict(REPRODUCED)
    if within_factor(paper, measured):
        return Verdict(PARTLY, "same order of magnitude")
    return Verdict(NOT_REPRODUCED)


def ratio_verdict(ratio_ci: list[float], early_ci: list[float], middle_ci: list[float]) -> Verdict:
    """Reproduced if the ratio's CI lies above 1 and holds 3; partly if layer 6 clearly matters more
    but not threefold, or matters while layers 1-3 do not measurably (no finite ratio)."""
    if ratio_ci[0] > 1:
        if ratio_ci[0] <= MIDDLE_OVER_EARLY <= ratio_ci[1]:
            return Verdict(REPRODUCED)
        return Verdict(PARTLY, f"layer {MIDDLE_LAYER} matters more, not threefold")
    if early_ci[0] <= 0 <= early_ci[1] and middle_ci[0] > 0:
        return Verdict(
            PARTLY,
            f"layer {MIDDLE_LAYER} matters; layers {EARLY_LAYERS[0]}-{EARLY_LAYERS[1]} indistinguishable "
            "from zero, so no ratio",
        )
    return Verdict(NOT_REPRODUCED)


def point_verdict(paper: float, measured: float) -> Verdict:
    """For a figure without a CI (the author's protocol: one cumulative pass): same sign and within
    a factor of 3 of the paper's is at most *partly*, since nothing says how far chance moves it."""
    if within_factor(paper, measured):
        return Verdict(PARTLY, "same order of magnitude; one pass, no CI")
    return Verdict(NOT_REPRODUCED)


def count_verdict(count: int, total: int, elsewhere_rate: float | None = None) -> Verdict:
    """Reproduced if >= 25% of the band's heads carry the label (and more often than elsewhere)."""
    if total == 0:
        return Verdict("not comparable", "the model has no heads in these layers")
    if count == 0:
        return Verdict(NOT_REPRODUCED)
    if count / total >= DETECTOR_SHARE and (elsewhere_rate is None or count / total > elsewhere_rate):
        return Verdict(REPRODUCED)
    return Verdict(PARTLY, "present, but few")


NOT_COMPARABLE = Verdict("not comparable", "the run has no such figure")
# How each ablation claim's figure is named in metrics/ablate.json (the author's protocol has no CI).
FIGURE_KEYS = {
    "early": f"{EARLY_KEY}_mean_pct",
    "middle": f"{MIDDLE_KEY}_mean_pct",
    "ratio": f"{MIDDLE_KEY}_over_early_ratio",
}
CI_KEYS = {
    "early": f"{EARLY_KEY}_ci_pct",
    "middle": f"{MIDDLE_KEY}_ci_pct",
    "ratio": f"{MIDDLE_KEY}_over_early_ratio_ci",
}
SD_KEYS = {"early": f"{EARLY_KEY}_sd_pct", "middle": f"{MIDDLE_KEY}_sd_pct"}
# The well-posed form of the ratio claim: layer 6 minus 3 x layers 1-3 (about 0 if the paper is right: its own
# figures give PAPER_DIFFERENCE), not a ratio whose denominator's interval straddles zero.
DIFFERENCE_KEY = f"{MIDDLE_KEY}_minus_{MIDDLE_OVER_EARLY:g}x_early_pct"
# The bootstrap's sd of each figure (its standard error over test images), for pooling over runs.
SE_KEYS = {"early": f"{EARLY_KEY}_se_pct", "middle": f"{MIDDLE_KEY}_se_pct", "difference": f"{DIFFERENCE_KEY}_se"}
# The smallest effects of interest for the equivalence tests, fixed before the estimates study ran: half the
# paper's figure (an effect half or one and a half times as large would change its story), and for the
# difference half the paper's layer-6 figure.
EQUIVALENCE_MARGINS = {"early": EARLY_MEAN_PCT / 2, "middle": MIDDLE_MEAN_PCT / 2, "difference": MIDDLE_MEAN_PCT / 2}
PAPER_DIFFERENCE = MIDDLE_MEAN_PCT - MIDDLE_OVER_EARLY * EARLY_MEAN_PCT  # +0.01: the paper's own figures
# How the head-type claims' counts are named in metrics/classify.json.
CHIRP_BAND_KEY, DISTRACTOR_BAND_KEY = band_key(CHIRP_LAYERS), band_key(DISTRACTOR_LAYERS)
PAPER_FIGURES = {"early": EARLY_MEAN_PCT, "middle": MIDDLE_MEAN_PCT, "ratio": MIDDLE_OVER_EARLY}
AUTHOR = "author_protocol"  # the seed author's released ablation code, emulated (vitheads.author_protocol)
PROTOCOLS = {
    "mean": "our mean ablation (primary)",
    "zero": "our zero ablation",
    AUTHOR: "the author's code emulated (cumulative, one weight row, raw labels)",
}


@dataclass(frozen=True)
class Figure:
    """One claim's figure on one run under one protocol: value, 95% CI over images (None: one pass)."""

    value: float | None
    ci: list[float] | None
    verdict: Verdict


def ablation_figure(claim: str, m: dict) -> Figure:
    """The figure of ablation claim `claim` in one protocol's metrics, judged by the paper's rules."""
    if FIGURE_KEYS[claim] not in m or FIGURE_KEYS["middle"] not in m:
        return Figure(None, None, NOT_COMPARABLE)
    value, ci = m[FIGURE_KEYS[claim]], m.get(CI_KEYS[claim])
    if ci is None:
        return Figure(value, None, point_verdict(PAPER_FIGURES[claim], value))
    if claim == "ratio":
        return Figure(value, ci, ratio_verdict(ci, m[CI_KEYS["early"]], m[CI_KEYS["middle"]]))
    return Figure(value, ci, magnitude_verdict(PAPER_FIGURES[claim], value, ci))


def ablation_figures(ablate: dict) -> dict[str, dict[str, Figure]]:
    """Every ablation claim under every protocol, from one run's metrics/ablate.json."""
    return {
        claim: {proto: ablation_figure(claim, ablate.get(proto, {})) for proto in PROTOCOLS} for claim in FIGURE_KEYS
    }


def head_type_figures(classify: dict) -> dict[str, Figure]:
    """The head-type claims from one run's metrics/classify.json: the label count in the paper's band."""
    chirp, chirp_total = classify[f"chirp_heads_{CHIRP_BAND_KEY}"], classify[f"heads_{CHIRP_BAND_KEY}"]
    n_all = sum(classify["counts"]["all"].values())
    elsewhere_rate = (classify["chirp_heads_all"] - chirp) / max(1, n_all - chirp_total)
    detectors, detector_total = (
        classify[f"distractor_heads_{DISTRACTOR_BAND_KEY}"],
        classify[f"heads_{DISTRACTOR_BAND_KEY}"],
    )
    return {
        "chirp_heads": Figure(chirp, None, count_verdict(chirp, chirp_total, elsewhere_rate)),
        "distractor_heads": Figure(detectors, None, count_verdict(detectors, detector_total)),
    }


def seeds_verdict(verdicts: list[Verdict]) -> Verdict:
    """A verdict only where every seed gives the same kind of verdict; else say how they split."""
    kinds = [v.kind for v in verdicts]
    if not kinds:
        return NOT_COMPARABLE
    if len(set(kinds)) == 1:
        return verdicts[0] if len(set(verdicts)) == 1 else Verdict(kinds[0])
    split = ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds), key=kinds.index))
    return Verdict("no verdict", f"seeds disagree: {split}")


INCONCLUSIVE = "inconclusive"


def pooled_verdict(claim: str, pooled: dict) -> Verdict:
    """A claim judged on its estimate over training runs (vitheads.analysis.pooling.random_effects as a dict):
    reproduced when the 90% interval lies within the paper's value +- the smallest effect of interest (two
    one-sided tests at 5%), not reproduced when the 95% interval excludes the paper's value, inconclusive
    otherwise. No vote counting over seeds."""
    value = PAPER_DIFFERENCE if claim == "difference" else PAPER_FIGURES[claim]
    margin = EQUIVALENCE_MARGINS[claim]
    low90, high90 = pooled["ci90"]
    low, high = pooled["ci"]
    if value - margin <= low90 and high90 <= value + margin:
        return Verdict(REPRODUCED, f"equivalent within +-{margin:g}")
    if not low <= value <= high:
        return Verdict(NOT_REPRODUCED, "the interval over training runs excludes the paper's value")
    return Verdict(INCONCLUSIVE, "the interval holds the paper's value but is too wide to show equivalence")


def pooled_count_verdict(interval: dict, total: int) -> Verdict:
    """A head-type claim on the label's count over training runs (a seed-level t interval): reproduced when
    the interval lies at or above DETECTOR_SHARE of the band's heads, not reproduced when it lies below one
    head, partly otherwise (present in some runs or in few heads)."""
    low, high = interval["ci"]
    if total == 0:
        return Verdict("not comparable", "the model has no heads in these layers")
    if low >= DETECTOR_SHARE * total:
        return Verdict(REPRODUCED)
    if high < 1:
        return Verdict(NOT_REPRODUCED, "fewer than one head per run")
    return Verdict(PARTLY, "present, but in few heads or not in every run")


VERDICT_RULES = (
    "Verdicts: an ablation figure is *reproduced* when our 95% CI holds the paper's value and excludes zero, "
    f"*partly* when it holds both, or when our mean is positive and within a factor of {MAGNITUDE_FACTOR:g} of it. "
    f"The ratio is *reproduced* when its CI lies above 1 and holds {MIDDLE_OVER_EARLY:g}, *partly* when it "
    "lies above 1, "
    f"or when layer {MIDDLE_LAYER}'s CI lies above zero while that of {EARLY_TEXT} holds zero. A head-type claim is "
    f"*reproduced* when at least {DETECTOR_SHARE:.0%} of the band's heads carry the label (for the chirp "
    "heads: also more "
    "often than in the other layers), *partly* when some do, *not comparable* when the model has no such layers. "
    "A figure without a CI (the author's protocol: one cumulative pass) is at most *partly*: when positive and within "
    f"a factor of {MAGNITUDE_FACTOR:g} of the paper's. Across seeds, a verdict is given only when every seed gives the "
    "same kind of verdict."
)
