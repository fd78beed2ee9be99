"""Stages under the code of two or more commits, same run, same params, interleaved in one run.

    python bench/code_speed.py RUN_DIR REF [REF ...] [--stages ablate causal] [--repeats 2]

RUN_DIR is a finished default run (data/generated, models, params.yaml). Each REF (a commit, or `.` for this
working tree) gets a scratch copy of its stages/, vitheads/ and templates/ with the run's data and model
linked in; each stage runs as `python -m stages.<stage>` in every copy in turn, `--repeats` times. The lines
print each stage's median wall time per REF, imports included, and its ratio to the first REF's. Written for
issue 36 (the hooked pass: at most 1.05x the hand-written forwards' time) and the decomposition's added cost.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("stages", "vitheads", "templates")


def code_of(ref: str, where: Path) -> None:
    """The project's code at ref (`.`: the working tree) in where."""
    where.mkdir(parents=True)
    if ref == ".":
        for name in CODE:
            shutil.copytree(ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        return
    archive = subprocess.run(["git", "archive", ref, *CODE], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")


def scratch(run: Path, ref: str, where: Path) -> Path:
    """A copy of ref's code with the run's data and model linked in and its params."""
    code_of(ref, where)
    shutil.copy2(run / "params.yaml", where / "params.yaml")
    (where / "data").mkdir()
    (where / "data/generated").symlink_to((run / "data/generated").resolve())
    (where / "models").symlink_to((run / "models").resolve())
    return where


def wall(copy: Path, stage: str) -> float:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(copy)}
    subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=copy, check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("refs", nargs="+")
    parser.add_argument("--stages", nargs="+", default=["ablate", "causal"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copies = [scratch(args.run, ref, Path(tmp, f"copy{i}")) for i, ref in enumerate(args.refs)]
        for stage in args.stages:
            times = [[] for _ in copies]
            for _ in range(args.repeats):
                for copy, seconds in zip(copies, times):
                    seconds.append(wall(copy, stage))
            medians = [statistics.median(t) for t in times]
            cells = [f"{ref} {m:.0f} s ({m / medians[0]:.3f}x)" for ref, m in zip(args.refs, medians)]
            print(f"{stage}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
