"""The dataset on disk: shapes, patch fractions, labels, and byte-identical reruns."""

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from vitheads.data.chirps import LABEL_COLUMNS
from vitheads.data.dataset import SHARED_IMAGES, load_meta, load_split
from vitheads.data.furniture import Distortions
from vitheads.data.generation import RenderSpec, write_dataset
from vitheads.data.regions import patch_fractions
from vitheads.names import CLASSES

SPEC = RenderSpec(seed=7, image_size=64, patch_size=16, distortions=Distortions())
SIZES = {"train": 10, "test": 5}


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_shared_split_is_the_same_whatever_the_run_seed(tmp_path):
    write_dataset(SPEC, SIZES, tmp_path / "a", workers=1)
    write_dataset(replace(SPEC, seed=8), SIZES, tmp_path / "b", workers=1)
    a, b = load_split(tmp_path / "a", "shared"), load_split(tmp_path / "b", "shared")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(load_split(tmp_path / "a", "test").images, load_split(tmp_path / "b", "test").images)


def test_dataset_layout_and_labels(tmp_path):
    write_dataset(SPEC, SIZES, tmp_path, workers=1)
    meta = load_meta(tmp_path)
    sizes = SIZES | {"shared": SHARED_IMAGES}
    assert meta["classes"] == list(CLASSES) and meta["splits"] == sizes and meta["patch_size"] == 16
    for split, n in sizes.items():
        data = load_split(tmp_path, split)
        assert data.images.shape == (n, 64, 64, 3) and data.images.dtype == np.uint8
        assert data.masks.shape == (n, 64, 64)
        assert data.patch_fractions.shape == (n, 4, 4, len(CLASSES))
        assert list(data.labels.columns) == ["Image", *LABEL_COLUMNS, "Noise_Level"]
        assert data.labels["Image"].tolist() == list(range(1, n + 1))
        assert not data.labels.isna().any().any()


def test_patch_fractions_count_the_mask():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, len(CLASSES), size=(3, 32, 32)).astype(np.uint8)
    fractions = patch_fractions(masks, 8)
    assert np.allclose(fractions.sum(-1), 1)
    patch = masks[2, 8:16, 24:32]
    expected = np.bincount(patch.ravel(), minlength=len(CLASSES)) / 64
    assert np.allclose(fractions[2, 1, 3], expected)


def test_same_seed_gives_byte_identical_outputs_whatever_the_worker_count(tmp_path):
    write_dataset(SPEC, SIZES, tmp_path / "a", workers=1)
    write_dataset(SPEC, SIZES, tmp_path / "b", workers=2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    other = RenderSpec(8, 64, 16, Distortions())
    write_dataset(other, {"test": 5}, tmp_path / "c", workers=1)
    a = pd.read_csv(tmp_path / "a" / "test" / "labels.csv")
    c = pd.read_csv(tmp_path / "c" / "test" / "labels.csv")
    assert not np.allclose(a["Chirp_Start_Time"], c["Chirp_Start_Time"])
