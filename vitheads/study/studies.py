"""The studies, each a set of training runs of the pipeline queued as DVC experiments (vitheads.study.runner):
estimates   the paper's claims as estimates over training runs: the default model on 5 pooled seeds and
            2 held out (run after the pooled intervals are committed), and the pure ViT on 3
planted     the positive and negative controls: a planted arm (every kind's cue) and a control arm (the
            cues shuffled), on one seed that fixes the rules and 3 held out that score them
frame-band  the frame cue's second form (a band under the bottom spine, planted alone: it shares the text cue's
            tokens), in the planted study's arms and seeds
distortion  what each distractor changes: text, colorbar, frame and all of them off with the layout kept,
            and all off with the layout adapting, on 3 seeds each (the default arm is the estimates study's)
factorial   what each distractor changes, answered: text x colorbar x frame on/off with the layout kept, and
            all off with the layout adapting, every cell on every seed, each seed's cells queued together in a
            recorded random order (pre-registered in study/factorial-preregistration.md before any run)
graded      the graded benchmark's trained default models on 3 fresh seeds, trained only (generate and
            finetune); implants are measured on them by `measure graded` (vitheads.study.graded)
routes      the route split (issue 37) on the models the factorial does not train: the pure ViT on the estimates
            study's 3 seeds, and the planted controls' planted arms (P, PB) on their fit seed, whose cues the
            split must put on the designated heads; the default model's runs are the factorial's all-on cells
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

POOLED_SEEDS = (20250324, 20250325, 20250326, 20250327, 20250328)  # the first is params.yaml's
HELD_OUT_SEEDS = (20250329, 20250330)
VIT_SEEDS = (20250324, 20250325, 20250326)
PLANTED_FIT_SEED, PLANTED_HELD_OUT_SEEDS = 20250324, (20250325, 20250326, 20250327)
DISTORTION_SEEDS = (20250324, 20250325, 20250326)
GRADED_SEEDS = (20250331, 20250332, 20250333)  # fresh: the rules' thresholds were set on 20250324
PLANT_ALL = ("plant.cues=[text,colorbar,frame]", "causal.kv_patching=true")  # the benchmark needs key/value patching
PLANT_BAND = ("plant.cues=[frame]", "plant.frame_cue=band", "causal.kv_patching=true")
TEXT_OFF = ("distortion.title=false", "distortion.axis_labels=false", "distortion.tick_labels=false")
DISTORTION_ARMS = {
    "text-off": (*TEXT_OFF, "distortion.keep_layout=true"),
    "colorbar-off": ("distortion.colorbar=false", "distortion.keep_layout=true"),
    "frame-off": ("distortion.frame=false", "distortion.keep_layout=true"),
    "all-off": (*TEXT_OFF, "distortion.colorbar=false", "distortion.frame=false", "distortion.keep_layout=true"),
    "all-off-adapting": (*TEXT_OFF, "distortion.colorbar=false", "distortion.frame=false"),
}

# 12: the pre-registered pilot rule read the first two blocks' residual variances (study/factorial.json, pilot)
FACTORIAL_SEEDS = tuple(range(20250324, 20250336))
FACTORIAL_ORDER_SEED = 39  # draws each seed block's queue order (issue 39)
ORDER_SEEDS = {"factorial": FACTORIAL_ORDER_SEED}  # the studies queued seed-blocked in a random order
FACTOR_OFF = {"text": TEXT_OFF, "colorbar": ("distortion.colorbar=false",), "frame": ("distortion.frame=false",)}
# arm -> each factor on (1) or off (0): "text1-colorbar0-frame1"; the all-on cell is the default configuration
FACTORIAL_CELLS = {
    "-".join(f"{f}{on}" for f, on in zip(FACTOR_OFF, levels)): dict(zip(FACTOR_OFF, levels))
    for levels in product((1, 0), repeat=3)
}
FACTORIAL_ADAPTING = "all-off-adapting"
FACTORIAL_ALL_ON = "text1-colorbar1-frame1"  # the default configuration: its runs carry every element's route split


@dataclass(frozen=True)
class Run:
    """One training run: its arm, seed, params overrides (`dvc exp run -S`), and whether it is held out."""

    study: str
    arm: str
    seed: int
    overrides: tuple[str, ...] = ()
    held_out: bool = False

    @property
    def name(self) -> str:
        return f"{self.study}-{self.arm}-{self.seed}"


def estimates() -> list[Run]:
    runs = [Run("estimates", "conv", s) for s in POOLED_SEEDS]
    runs += [Run("estimates", "conv", s, held_out=True) for s in HELD_OUT_SEEDS]
    return runs + [Run("estimates", "patch", s, ("model.stem=patch",)) for s in VIT_SEEDS]


def planted(study: str = "planted", plant: tuple[str, ...] = PLANT_ALL) -> list[Run]:
    arms = {"planted": plant, "control": (*plant, "plant.control=true")}
    seeds = ((PLANTED_FIT_SEED, False), *((s, True) for s in PLANTED_HELD_OUT_SEEDS))
    return [Run(study, arm, seed, overrides, held) for arm, overrides in arms.items() for seed, held in seeds]


def frame_band() -> list[Run]:
    return planted("frame-band", PLANT_BAND)


def distortion() -> list[Run]:
    return [
        Run("distortion", arm, s, overrides) for arm, overrides in DISTORTION_ARMS.items() for s in DISTORTION_SEEDS
    ]


def cell_overrides(levels: dict[str, int]) -> tuple[str, ...]:
    """A factorial cell's params: the elements switched off, with the layout kept (nothing for the all-on cell:
    keeping the layout hides nothing there)."""
    off = tuple(o for f, on in levels.items() if not on for o in FACTOR_OFF[f])
    return (*off, "distortion.keep_layout=true") if off else ()


def factorial() -> list[Run]:
    arms = {arm: cell_overrides(levels) for arm, levels in FACTORIAL_CELLS.items()}
    arms[FACTORIAL_ADAPTING] = DISTORTION_ARMS["all-off-adapting"]
    return [Run("factorial", arm, s, overrides) for s in FACTORIAL_SEEDS for arm, overrides in arms.items()]


def complete_block(records: list[dict], seed: int, arms: set[str]) -> bool:
    """A seed block counts when all its arms ran, on one machine (factorial pre-registration, amendment 1)."""
    block = [r for r in records if r["seed"] == seed]
    return arms <= {r["arm"] for r in block} and len({r.get("machine") for r in block}) == 1


def routes() -> list[Run]:
    planted_arms = [
        Run("routes", "planted", PLANTED_FIT_SEED, PLANT_ALL),
        Run("routes", "planted-band", PLANTED_FIT_SEED, PLANT_BAND),
    ]  # first: the check that the split finds planted heads
    return planted_arms + [Run("routes", "patch", s, ("model.stem=patch",)) for s in VIT_SEEDS]


def graded() -> list[Run]:
    return [Run("graded", "default", s) for s in GRADED_SEEDS]


STUDIES = {
    "estimates": estimates,
    "planted": planted,
    "frame-band": frame_band,
    "distortion": distortion,
    "factorial": factorial,
    "graded": graded,
    "routes": routes,
}
STAGE_TARGETS = {"graded": "finetune"}  # the pipeline stage a study's runs reproduce (default: runner.TARGET)
