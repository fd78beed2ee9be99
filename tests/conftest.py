"""Shared fixtures: the tiny model, and throwaway copies of the DVC project with tiny params. A whole `dvc repro`
costs about a minute (each stage pays its imports): the tests that start from a run pipeline share two projects
reproduced once per pytest run, and those that run dvc again work on private copies of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock

from vitheads.model.vit import build_model
from vitheads.threads import ENV as THREADS_ENV

ROOT = Path(__file__).resolve().parents[1]
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    # pytest -n N (pyproject.toml): the workers share the cores, one thread each, here and in the stages they run.
    os.environ.setdefault(THREADS_ENV, "1")
    torch.set_num_threads(int(os.environ[THREADS_ENV]))
SHARED_RUNS = ("reproduced_once", "reproduced_six_once")


@pytest.hookimpl(trylast=True)  # after -k and -m deselect
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist each worker first gets a chunk of consecutive tests (a quarter of its share): the
    users of the tiny run lead the first worker's chunk and those of the six-layer run the second's, so that two
    workers build the two shared projects side by side and neither waits for the other's build. Order only."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    users = {f: [i for i in items if f in getattr(i, "fixturenames", ())] for f in SHARED_RUNS}
    tiny, six = users["reproduced_once"], [i for i in users["reproduced_six_once"] if i not in users["reproduced_once"]]
    rest = [i for i in items if i not in tiny and i not in six]
    chunk = max(len(items) // workers // 4, 2)
    lead = max(chunk - len(tiny), 0)
    items[:] = tiny + rest[:lead] + six + rest[lead:]


PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "stages",
    "vitheads",
    "templates",
    "study",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
]
TINY = {
    "generate": {"n_train": 24, "n_test": 8},
    "model": {"image_size": 96, "patch_size": 16, "depth": 2, "num_heads": 3, "embed_dim": 24},
    "finetune": {"batch_size": 8, "epochs": 2, "val_fraction": 0.25},
    "causal": {"images": 4, "patch_images": 2, "batch_size": 4, "bootstrap": 50},
}
# The shared tiny run (reproduced_once) on top of TINY: what the tests that read its stages' outputs ask for.
SHARED = {
    "ablate": {"bootstrap": 50, "author_images": 5},
    "attention": {"example_images": 2},
    "figures": {"overlay_images": 2, "overlay_heads": 2},
}
# Six layers so the paper's layer-6 comparison exists; still a few seconds per stage (reproduced_six_once).
SIX_LAYERS = {
    "model": {"depth": 6, "num_heads": 2, "embed_dim": 16},
    "ablate": {"bootstrap": 50},
    "attention": {"example_images": 2},
    "figures": {"overlay_images": 2, "overlay_heads": 2},
}


TINY_MODEL = {
    "image_size": 32,
    "patch_size": 8,
    "depth": 3,
    "num_heads": 3,
    "embed_dim": 24,
    "mlp_ratio": 2.0,
    "pooling": "flatten",
    "stem": "patch",
    "init": "scratch",
}


def make_tiny_model(seed: int = 0, readout_std: float | None = 0.05, **changes) -> torch.nn.Module:
    """The tests' model: timm's ViT with a few small blocks, seeded, in eval mode. The flatten readout
    starts at zero (model.vit), so readout_std gives it random weights: outputs then depend on the heads."""
    torch.manual_seed(seed)
    model = build_model({**TINY_MODEL, **changes}, 3).eval()
    if readout_std is not None and model.flatten_readout:
        torch.nn.init.normal_(model.head.weight, std=readout_std)
    return model


@pytest.fixture
def tiny_model():
    """make_tiny_model, for tests: tiny_model(depth=6, num_heads=2, ...)."""
    return make_tiny_model


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


class Project:
    """A git+DVC copy of the pipeline in a temp dir, driven through the real `dvc` CLI."""

    def __init__(self, path: Path):
        self.path = path
        # Stage commands call `python`: it must be this interpreter, with its `dvc` beside it.
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def set_params(self, override: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(merge(self.params(), override), sort_keys=False))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and result.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dvc", *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def make_project(path: Path, site_cache: Path, params: dict | None = None) -> Project:
    """A committed throwaway copy of the project with tiny params (and params on top) and a private DVC site
    cache."""
    for name in PROJECT_FILES:
        source, target = ROOT / name, path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    p = Project(path)
    p.set_params(merge(TINY, params or {}))
    p.run("git", "init", "-q")
    p.run("git", "config", "user.email", "test@example.com")
    p.run("git", "config", "user.name", "test")
    p.dvc("config", "--local", "core.site_cache_dir", str(site_cache))
    p.commit("throwaway copy")
    return p


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "project", tmp_path / "site_cache")


@dataclass
class Reproduced:
    """A project after its first `dvc repro`, committed, and that command's stdout."""

    path: Path
    output: str


def reproduce(tmp_path_factory, name: str, params: dict) -> Reproduced:
    """A tiny project after its first `dvc repro`, committed, once per pytest run: under pytest-xdist the first
    worker that needs it builds it in the run's shared temp dir while the others wait for it. One torch
    thread, as queued experiments use, so that they can reproduce its bytes."""
    if not WORKER:
        return build(tmp_path_factory.mktemp(name), params)
    root = tmp_path_factory.getbasetemp().parent / name  # the run's dir, above each worker's own
    with FileLock(f"{root}.lock"):
        if (root / "repro.out").exists():
            return Reproduced(root / "project", (root / "repro.out").read_text())
        shutil.rmtree(root, ignore_errors=True)  # a build that failed in another worker
        root.mkdir()
        return build(root, params)


def build(root: Path, params: dict) -> Reproduced:
    p = make_project(root / "project", root / "site_cache", params)
    p.env["VITHEADS_THREADS"] = "1"
    output = p.dvc("repro").stdout
    p.commit("pipeline run")
    (root / "repro.out").write_text(output)
    return Reproduced(p.path, output)


def copy_of(once: Reproduced, tmp_path: Path) -> Project:
    """A private copy of a reproduced project (git, DVC cache and outputs; its own site cache)."""
    path = tmp_path / "project"
    shutil.copytree(once.path, path, symlinks=True)
    p = Project(path)
    p.dvc("config", "--local", "core.site_cache_dir", str(tmp_path / "site_cache"))
    return p


@pytest.fixture(scope="session")
def reproduced_once(tmp_path_factory) -> Reproduced:
    """The tiny project (TINY and SHARED) after one `dvc repro`: one run for the tests that start from a run
    pipeline or read its stages' outputs. Read only: a test that runs dvc takes `reproduced`."""
    return reproduce(tmp_path_factory, "reproduced", SHARED)


@pytest.fixture
def reproduced(tmp_path: Path, reproduced_once: Reproduced) -> Project:
    """A private copy of reproduced_once."""
    return copy_of(reproduced_once, tmp_path)


@pytest.fixture(scope="session")
def reproduced_six_once(tmp_path_factory) -> Reproduced:
    """The tiny project with six layers (SIX_LAYERS) after one `dvc repro`. Read only."""
    return reproduce(tmp_path_factory, "reproduced_six", SIX_LAYERS)


@pytest.fixture
def reproduced_six(tmp_path: Path, reproduced_six_once: Reproduced) -> Project:
    """A private copy of reproduced_six_once."""
    return copy_of(reproduced_six_once, tmp_path)
