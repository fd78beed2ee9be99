"""The studies, each a set of training runs of the pipeline queued as DVC experiments (vitheads.study.runner):
estimates   the paper's claims as estimates over training runs: the default model on 5 pooled seeds and
            2 held out (run after the pooled intervals are committed), and the pure ViT on 3
planted     the positive and negative controls: a planted arm (every kind's cue) and a control arm (the
            cues shuffled), on one seed that fixes the rules and 3 held out that score them
frame-band  the frame cue's second form (a band under the bottom spine, planted alone: it shares the text cue's
            tokens), in the planted study's arms and seeds
distortion  what each distractor changes: text, colorbar, frame and all of them off with the layout kept,
            and all off with the layout adapting, on 3 seeds each (the default arm is the estimates study's)
graded      the graded benchmark's trained default models on 3 fresh seeds, trained only (generate and
            finetune); implants are measured on them by `measure graded` (vitheads.study.graded)
"""

from __future__ import annotations

from dataclasses import dataclass

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


def graded() -> list[Run]:
    return [Run("graded", "default", s) for s in GRADED_SEEDS]


STUDIES = {
    "estimates": estimates,
    "planted": planted,
    "frame-band": frame_band,
    "distortion": distortion,
    "graded": graded,
}
STAGE_TARGETS = {"graded": "finetune"}  # the pipeline stage a study's runs reproduce (default: runner.TARGET)
