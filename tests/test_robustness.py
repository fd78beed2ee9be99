"""External data in the seed author's format, bad input, interrupted stages, determinism."""

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from vitheads.data.ingest import ingest
from vitheads.outputs import StageError

N_AUTHOR = 8


@pytest.fixture(scope="module")
def author_folder(tmp_path_factory) -> Path:
    """A few images made by the seed author's own package (chirp-spectrogram-generator 0.1.6)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from chirp_spectrogram_generator import SpectrogramGenerator

    folder = tmp_path_factory.mktemp("author")
    np.random.seed(0)  # the package has no seed argument, only numpy's global state
    SpectrogramGenerator(output_dir=str(folder)).generate_dataset(N_AUTHOR)
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    target.mkdir()
    for f in folder.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def test_ingest_resizes_once_and_keeps_every_label(author_folder, tmp_path):
    sizes = ingest(author_folder, 64, 3, seed=1, out=tmp_path / "data")
    assert sizes == {"train": 5, "test": 3, "shared": N_AUTHOR}  # shared: the folder's first 16 (all 8 here)
    shared = pd.read_csv(tmp_path / "data/shared/labels.csv")
    assert list(shared["Image"]) == list(range(1, N_AUTHOR + 1))
    train = np.load(tmp_path / "data/train/images.npy")
    assert train.shape == (5, 64, 64, 3) and train.dtype == np.uint8
    labels = pd.concat([pd.read_csv(tmp_path / f"data/{s}/labels.csv") for s in ("train", "test")]).sort_values("Image")
    original = pd.read_csv(author_folder / "labels.csv")
    np.testing.assert_allclose(labels["Chirp_Start_Time"], original["Chirp_Start_Time"])
    assert list(labels["Image"]) == list(range(1, N_AUTHOR + 1))


def broken(case: str, folder: Path) -> None:
    labels = folder / "labels.csv"
    table = pd.read_csv(labels)
    if case == "missing image":
        (folder / "spectrogram_3.png").unlink()
    elif case == "truncated image":
        data = (folder / "spectrogram_2.png").read_bytes()
        (folder / "spectrogram_2.png").write_bytes(data[: len(data) // 2])
    elif case == "not an image":
        (folder / "spectrogram_2.png").write_text("this is not a PNG")
    elif case == "missing column":
        table.drop(columns="Chirp_End_Freq").to_csv(labels, index=False)
    elif case == "non-numeric":
        table.astype({"Chirp_Start_Freq": object}).assign(
            Chirp_Start_Freq=lambda t: t["Chirp_Start_Freq"].where(t.index != 1, "abc")
        ).to_csv(labels, index=False)
    elif case == "NaN":
        table.loc[4, "Chirp_Duration"] = np.nan
        table.to_csv(labels, index=False)
    elif case == "fewer rows":
        table.iloc[:-1].to_csv(labels, index=False)
    elif case == "more rows":
        pd.concat([table, table.iloc[:1]]).to_csv(labels, index=False)
    elif case == "no labels":
        labels.unlink()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing image", r"8 rows of labels.csv: missing spectrogram_3.png"),
        ("truncated image", r"cannot read image '.*spectrogram_2.png'"),
        ("not an image", r"cannot read image '.*spectrogram_2.png'"),
        ("missing column", r"labels.csv' lacks column\(s\) Chirp_End_Freq"),
        ("non-numeric", r"row 2 \(spectrogram_2.png\): Chirp_Start_Freq is 'abc'; expected a finite number"),
        ("NaN", r"row 5 \(spectrogram_5.png\): Chirp_Duration is ''; expected a finite number"),
        ("fewer rows", r"for 7 rows of labels.csv: spectrogram_8.png has no labels row"),
        ("more rows", r"for 9 rows of labels.csv: missing spectrogram_9.png"),
        ("no labels", r"labels.csv' not found"),
    ],
)
def test_bad_external_data_is_refused_with_the_file_named(author_folder, tmp_path, case, message):
    folder = copy_of(author_folder, tmp_path)
    broken(case, folder)
    with pytest.raises(StageError, match=message):
        ingest(folder, 64, 3, seed=1, out=tmp_path / "data")


def test_author_data_runs_through_finetune_ablate_and_attention(project, author_folder):
    project.set_params(
        {
            "data": {"source": str(author_folder)},
            "generate": {"n_test": 3},
            "finetune": {"val_fraction": 0.2},
            "ablate": {"bootstrap": 20},
        }
    )
    project.dvc("repro", "ablate", "attention")
    assert json.loads((project.path / "metrics/generate.json").read_text())["images"] == N_AUTHOR
    assert len(pd.read_csv(project.path / "results/ablate/heads.csv")) == 2 * 2 * 3
    assert (project.path / "results/attention/maps.npz").exists()
    assert not (project.path / "results/attention/region_mass.csv").exists()
    result = project.dvc("repro", "causal", check=False)  # classify needs it
    assert result.returncode != 0
    assert "paired renders need the generated dataset; data.source is" in result.stdout + result.stderr


def test_bad_external_data_stops_the_stage_and_writes_nothing(project, author_folder, tmp_path):
    folder = copy_of(author_folder, tmp_path)
    broken("truncated image", folder)
    project.set_params({"data": {"source": str(folder)}, "generate": {"n_test": 3}})
    result = project.dvc("repro", "generate", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "cannot read image" in output and "Traceback" not in output
    assert not (project.path / "data/generated").exists()


def kill_when(project, script: str, ready) -> None:
    """Start a stage, SIGKILL it once ready() holds (checked every 0.1 s)."""
    process = subprocess.Popen(
        ["python", script], cwd=project.path, env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, "stage ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_killed_stages_leave_nothing_a_later_repro_trusts(project):
    project.set_params({"generate": {"n_train": 600}})
    data = project.path / "data"
    kill_when(project, "stages/generate.py", lambda: any(data.glob(".tmp-generated-*/train/images.npy")))
    assert not (data / "generated").exists() and list(data.glob(".tmp-generated-*"))
    status = project.dvc("status", "generate")
    assert "changed outs" in status.stdout or "deleted" in status.stdout

    project.set_params({"generate": {"n_train": TINY["generate"]["n_train"]}})  # 600 only to be caught running
    project.dvc("repro", "generate")
    assert not list(data.glob(".tmp-generated-*"))  # the next run cleared the debris
    project.set_params({"finetune": {"epochs": 100_000, "patience": 100_000}})  # still training when killed
    started = time.monotonic()
    kill_when(project, "stages/finetune.py", lambda: time.monotonic() - started > 6)
    assert not (project.path / "models").exists() and not (project.path / "metrics/finetune.json").exists()
    project.set_params({"finetune": {"epochs": 2, "patience": 3}})
    project.dvc("repro", "finetune")
    assert (project.path / "models/model.safetensors").exists()


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


TIMINGS = {"train_seconds", "peak_rss_mb", "sweep_seconds"}


def test_same_params_same_bytes_and_metrics(reproduced):
    """The session's tiny run, then the same stages forced again on a copy of it (one torch thread, as that run)."""
    project = reproduced
    project.env["VITHEADS_THREADS"] = "1"
    runs = []
    for forced in (False, True):
        if forced:
            output = project.dvc("repro", "ablate", "--force").stdout
            assert re.findall(r"Running stage '(\w+)'", output) == ["generate", "finetune", "ablate"]
        metrics = {s: json.loads((project.path / f"metrics/{s}.json").read_text()) for s in ("finetune", "ablate")}
        runs.append(
            (
                tree_hash(project.path / "data/generated"),
                {s: {k: v for k, v in m.items() if k not in TIMINGS} for s, m in metrics.items()},
            )
        )
    assert runs[0] == runs[1]
