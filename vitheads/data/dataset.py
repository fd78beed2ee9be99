"""Reading a rendered or ingested dataset back, memory-mapped (layout: vitheads.data.generation).

Kept apart from the writer so that the stages which only read data (finetune, ablate,
attention) do not import the renderer and matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitheads.data.cues import CueContext, CuePlan
from vitheads.names import CLASSES, TARGETS
from vitheads.outputs import StageError

SPLITS = ("train", "test", "shared")  # shared: the same images for every run (vitheads.data.generation)
SHARED_IMAGES = 16


@dataclass
class Split:
    images: np.ndarray
    masks: np.ndarray | None  # None for ingested data (vitheads.ingest): it has no masks
    patch_fractions: np.ndarray | None
    labels: pd.DataFrame

    def targets(self, columns: tuple[str, ...] = TARGETS) -> np.ndarray:
        """[n, T] regression targets in physical units: the chirp's (names.TARGETS), or the given columns."""
        return self.labels[list(columns)].to_numpy()

    def area_shares(self) -> dict[str, float]:
        """Each mask class's share of the split's pixels (from the patch fractions)."""
        share = np.asarray(self.patch_fractions).mean(axis=(0, 1, 2))
        return {c: round(float(s), 5) for c, s in zip(CLASSES, share)}


def load_meta(root: str | Path) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"dataset metadata '{path}' not found; run `dvc repro generate` first")
    return json.loads(path.read_text())


def model_targets(meta: dict) -> tuple[str, ...]:
    """What a model trained on this dataset regresses: the chirp's targets, then any planted cue's."""
    return (*TARGETS, *meta.get("cues", {}).get("targets", ()))


def cue_tokens(meta: dict) -> dict[str, list[int]] | None:
    """kind -> the tokens each planted cue reaches (vitheads.data.generation.cue_meta); None: no cues."""
    return meta["cues"]["tokens"] if "cues" in meta else None


def cue_context(meta: dict, seed: int) -> CueContext | None:
    """How the dataset drew its planted cues in the test split (None: no cues), for paired renders."""
    if "cues" not in meta:
        return None
    plan = CuePlan(tuple(meta["cues"]["kinds"]), meta["cues"]["control"], meta["cues"].get("frame_cue", "tick"))
    return CueContext(plan, seed, meta["splits"]["test"])


def load_first(root: str | Path, split: str, max_images: int) -> Split:
    """The first `max_images` rows of a split (0: all of them), still memory-mapped."""
    s = load_split(root, split)
    n = len(s.labels) if max_images == 0 else min(max_images, len(s.labels))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:n]

    return Split(cut(s.images), cut(s.masks), cut(s.patch_fractions), s.labels.iloc[:n])


def load_split(root: str | Path, split: str) -> Split:
    """Memory-map one split; nothing is read until it is indexed."""
    folder = Path(root) / split
    if not (folder / "images.npy").is_file():
        raise StageError(f"'{folder / 'images.npy'}' not found; run `dvc repro generate` first")

    def optional(name: str) -> np.ndarray | None:
        return np.load(folder / name, mmap_mode="r") if (folder / name).is_file() else None

    return Split(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=optional("masks.npy"),
        patch_fractions=optional("patch_fractions.npy"),
        labels=pd.read_csv(folder / "labels.csv"),
    )
