"""Ingest a dataset in the seed author's format (PyPI chirp-spectrogram-generator) instead of rendering.

The format: a folder of `spectrogram_<i>.png` (i from 1) and `labels.csv` whose row i-1
describes image i, with the columns below. Everything is checked before any image is
written, and nothing is skipped or replaced: the author's own loader substitutes black
images and zero labels for files it cannot read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from vitheads.data.chirps import CHIRP_TYPES
from vitheads.data.dataset import SHARED_IMAGES
from vitheads.outputs import StageError

NUMERIC = ("Chirp_Start_Time", "Chirp_Start_Freq", "Chirp_End_Freq", "Chirp_Duration")
COLUMNS = (*NUMERIC, "Chirp_Type")
IMAGE_NAME = re.compile(r"spectrogram_(\d+)\.png$")


def read_labels(folder: Path) -> pd.DataFrame:
    """labels.csv with every column present, numeric and finite, and a known chirp type."""
    path = folder / "labels.csv"
    if not path.is_file():
        raise StageError(f"'{path}' not found; expected the labels of the spectrogram_<i>.png files beside it")
    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)  # as written: '' stays '', not NaN
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise StageError(f"'{path}' is not a readable CSV: {err}") from None
    missing = [c for c in COLUMNS if c not in labels.columns]
    if missing:
        raise StageError(f"'{path}' lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    for column in NUMERIC:
        values = pd.to_numeric(labels[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if len(bad):
            row = bad[0]
            raise StageError(
                f"'{path}' row {row + 1} (spectrogram_{row + 1}.png): {column} is {labels[column].iloc[row]!r}; "
                "expected a finite number"
            )
        labels[column] = values
    unknown = ~labels["Chirp_Type"].isin(CHIRP_TYPES)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise StageError(
            f"'{path}' row {row + 1}: Chirp_Type is {labels['Chirp_Type'].iloc[row]!r}; expected one of "
            f"{', '.join(CHIRP_TYPES)}"
        )
    return labels


def image_paths(folder: Path, n_labels: int) -> list[Path]:
    """spectrogram_1.png .. spectrogram_<n>.png, exactly one per labels row."""
    found = {int(m[1]): p for p in folder.iterdir() if (m := IMAGE_NAME.match(p.name))}
    expected = set(range(1, n_labels + 1))
    if set(found) != expected:
        missing, extra = sorted(expected - set(found)), sorted(set(found) - expected)
        detail = f"missing spectrogram_{missing[0]}.png" if missing else f"spectrogram_{extra[0]}.png has no labels row"
        raise StageError(
            f"'{folder}' has {len(found)} spectrogram_<i>.png files for {n_labels} rows of labels.csv: {detail}"
        )
    return [found[i] for i in range(1, n_labels + 1)]


def read_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: transparency composited on white, resized once with antialiasing."""
    try:
        with Image.open(path) as image:
            image.load()
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise StageError(f"cannot read image '{path}': {err}") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    return np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS))


def ingest(folder: str | Path, size: int, n_test: int, seed: int, out: Path) -> dict[str, int]:
    """Check, read, resize and split an author-format folder into out/ (data.py's layout, no masks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StageError(
            f"data.source '{folder}' is not a folder; expected 'generate' or a folder in the author's format"
        )
    labels = read_labels(folder)
    paths = image_paths(folder, len(labels))
    if not 1 <= n_test < len(labels):
        raise StageError(
            f"generate.n_test ({n_test}) must be at least 1 and below the {len(labels)} images in '{folder}'"
        )
    images = np.stack([read_image(p, size) for p in tqdm(paths, desc="ingest", unit="img")])
    order = np.random.default_rng(seed).permutation(len(labels))
    splits = {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}
    splits["shared"] = np.arange(min(SHARED_IMAGES, len(labels)))  # the folder's first: the same in every run
    for split, rows in splits.items():
        (out / split).mkdir(parents=True)
        np.save(out / split / "images.npy", images[rows])
        labels.iloc[rows].assign(Image=rows + 1)[["Image", *COLUMNS]].to_csv(out / split / "labels.csv", index=False)
    sizes = {split: len(rows) for split, rows in splits.items()}
    meta = {"source": str(folder), "image_size": size, "masks": False, "splits": sizes}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return sizes
