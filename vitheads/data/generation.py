"""Rendering a dataset to disk (the generate stage); reading it back is vitheads.data.dataset.

Layout of a dataset directory (one per pipeline run, a DVC output):
    meta.json                      image size, patch size, classes, distortions, split sizes
    <split>/images.npy             uint8 [N, S, S, 3] RGB, the model's input size
    <split>/masks.npy              uint8 [N, S, S], class ids (names.CLASSES)
    <split>/patch_fractions.npy    float32 [N, S/p, S/p, C], share of each class per patch
    <split>/labels.csv             Image (1-based, as in the title) + the seed paper's columns
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitheads import threads
from vitheads.data.chirps import LABEL_COLUMNS, sample_chirp, spectrogram
from vitheads.data.cues import CuePlan, apply_cues, cue_values, shown_index
from vitheads.data.dataset import SHARED_IMAGES, SPLITS
from vitheads.data.furniture import Distortions
from vitheads.data.regions import patch_fractions, receptive_tokens
from vitheads.data.rendering import PlotRenderer, title_for
from vitheads.names import CLASSES
from vitheads.outputs import StageError

CHUNK = 64
SHARED_SEED = 0  # the shared split is rendered with this seed whatever the run's: heads compared across runs
_renderer: PlotRenderer | None = None


@dataclass(frozen=True)
class RenderSpec:
    """Everything that decides the pixels: same spec, same bytes."""

    seed: int
    image_size: int
    patch_size: int
    distortions: Distortions
    cues: CuePlan = field(default_factory=CuePlan)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent stream per image, so output bytes do not depend on worker count or chunking."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _init_worker(spec: RenderSpec) -> None:
    global _renderer
    _renderer = PlotRenderer(spec.image_size, spec.distortions, spec.cues.frame_cue)


def render_image(renderer: PlotRenderer, spec: RenderSpec, split: str, index: int, n: int):
    """One image of a split (0-based index of n): RGB, mask, and its labels row (with the cue targets)."""
    rng = image_rng(spec.seed, split, index)
    chirp = sample_chirp(rng)
    rgb, mask = renderer.render(spectrogram(chirp, rng), chirp, title_for(index + 1, chirp))
    row = (index + 1, *chirp.label_row(), chirp.noise_level)
    if spec.cues.kinds:
        s = SPLITS.index(split)
        shown = cue_values(spec.seed, s, shown_index(spec.cues, spec.seed, s, n, index), spec.cues.kinds)
        rgb = apply_cues(rgb, renderer.cue_places, spec.cues.kinds, shown)
        row += tuple(cue_values(spec.seed, s, index, spec.cues.kinds))
    return rgb, mask, row


def _render_chunk(job: tuple[RenderSpec, str, int, int, int]):
    spec, split, start, stop, n = job
    images = np.empty((stop - start, spec.image_size, spec.image_size, 3), np.uint8)
    masks = np.empty((stop - start, spec.image_size, spec.image_size), np.uint8)
    rows = []
    for i, index in enumerate(range(start, stop)):
        images[i], masks[i], row = render_image(_renderer, spec, split, index, n)
        rows.append(row)
    return start, images, masks, patch_fractions(masks, spec.patch_size), rows


def write_split(spec: RenderSpec, split: str, n: int, out: Path, pool) -> pd.DataFrame:
    """Render n images of one split into out/<split>/ with a progress bar."""
    folder = out / split
    folder.mkdir(parents=True)
    size, grid = spec.image_size, spec.image_size // spec.patch_size
    images = np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (n, size, size, 3))
    masks = np.lib.format.open_memmap(folder / "masks.npy", "w+", np.uint8, (n, size, size))
    fractions = np.lib.format.open_memmap(
        folder / "patch_fractions.npy", "w+", np.float32, (n, grid, grid, len(CLASSES))
    )
    rows = [None] * n
    jobs = [(spec, split, s, min(s + CHUNK, n), n) for s in range(0, n, CHUNK)]
    with tqdm(total=n, desc=f"render {split}", unit="img") as bar:
        for start, chunk_images, chunk_masks, chunk_fractions, chunk_rows in pool.imap_unordered(_render_chunk, jobs):
            stop = start + len(chunk_rows)
            images[start:stop], masks[start:stop], fractions[start:stop] = chunk_images, chunk_masks, chunk_fractions
            rows[start:stop] = chunk_rows
            bar.update(len(chunk_rows))
    for array in (images, masks, fractions):
        array.flush()
    labels = pd.DataFrame(rows, columns=["Image", *LABEL_COLUMNS, "Noise_Level", *spec.cues.targets])
    labels.to_csv(folder / "labels.csv", index=False)
    return labels


def cue_meta(spec: RenderSpec, stem: str) -> dict:
    """meta.json's record of a planted dataset: the cues, their targets, and the tokens each reaches
    through the model's stem (vitheads.model.planted reads them)."""
    places = PlotRenderer(spec.image_size, spec.distortions, spec.cues.frame_cue).cue_places
    missing = [k for k in spec.cues.kinds if k not in places]
    if missing:
        raise StageError(f"plant.cues {missing}: the plot has no such element (distortion.* switches it off)")
    tokens = {k: np.flatnonzero(receptive_tokens(places[k], spec.patch_size, stem)).tolist() for k in spec.cues.kinds}
    for first, second in combinations(spec.cues.kinds, 2):
        if shared := sorted(set(tokens[first]) & set(tokens[second])):
            raise StageError(
                f"plant.cues: the {first} and {second} cues reach the same tokens {shared} (plant.frame_cue "
                f"'{spec.cues.frame_cue}'); each kind's heads must see its own tokens only: plant them in separate runs"
            )
    return {
        "kinds": list(spec.cues.kinds),
        "control": spec.cues.control,
        "frame_cue": spec.cues.frame_cue,
        "targets": list(spec.cues.targets),
        "tokens": tokens,
    }


def write_dataset(
    spec: RenderSpec, sizes: dict[str, int], out: Path, workers: int | None = None, stem: str = "conv"
) -> None:
    """Render every split into the (empty, temporary) directory `out`, one process per thread of the budget."""
    cues = cue_meta(spec, stem) if spec.cues.kinds else None
    with threads.lean_pool(workers or threads.budget(), _init_worker, (spec,)) as pool:
        for split, n in sizes.items():
            write_split(spec, split, n, out, pool)
        write_split(replace(spec, seed=SHARED_SEED), "shared", SHARED_IMAGES, out, pool)
    meta = {
        "classes": list(CLASSES),
        "splits": sizes | {"shared": SHARED_IMAGES},
        **{k: v for k, v in asdict(spec).items() if k not in ("distortions", "cues")},
        "distortions": asdict(spec.distortions),
        **({"cues": cues} if cues else {}),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
