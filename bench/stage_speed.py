"""Each compute stage under commit d7b1f68's workload against the default's, interleaved in one run.

    python bench/stage_speed.py [RUN_DIR] [--repeats 2]

RUN_DIR is a finished default run (data/generated, models, results, params.yaml; default: here). Two
scratch copies link its data and model: one with d7b1f68's workload (OLD below: 6 epochs at batch 64, both
ablation modes and the author's protocol on 600 and 150 images, 200 pairs with 50 patched exactly for
every head, attention on 600 images), one with this checkout's params.yaml. Each stage runs as
`python -m stages.<stage>` in one copy, then the other, `--repeats` times; the lines print the median
ratio new/old of the stage's wall time, imports included. Training runs one epoch in each copy and is
scaled by the epochs of each recipe (the steps cost the same in every epoch).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
OLD = {
    "finetune": {"batch_size": 64, "epochs": 6, "lr": 0.001, "warmup_fraction": 0.05},
    "ablate": {"modes": ["zero", "mean"], "mean_images": 0, "zero_images": 0, "author_images": 150},
    "attention": {"max_images": 0},
    "causal": {"images": 200, "patch_images": 50, "patch_screen": 0.0},
}
STAGES = ("finetune", "ablate", "attention", "causal")


def scratch(run: Path, where: Path, override: dict | None) -> Path:
    """A copy of the project's code with the run's data and model linked in, and params overridden."""
    for name in ("stages", "vitheads", "templates", "params.yaml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, where / name)
    (where / "data").mkdir()
    (where / "data/generated").symlink_to((run / "data/generated").resolve())
    for name in ("models", "results"):
        shutil.copytree(run / name, where / name)
    yaml = YAML()
    params = yaml.load((where / "params.yaml").read_text())
    for section, values in (override or {}).items():
        params[section].update(values)
    params["finetune"]["epochs"] = 1  # one epoch each; scaled below
    with open(where / "params.yaml", "w") as out:
        yaml.dump(params, out)
    return where


def wall(copy: Path, stage: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=copy,
        check=True,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def ci_widths(copy: Path) -> dict[str, float]:
    """The median width of the 95% CIs that the reduced workload widens, from one copy's outputs."""
    import json

    import pandas as pd

    heads = pd.read_csv(copy / "results/ablate/heads.csv")
    ablate = json.loads((copy / "metrics/ablate.json").read_text())
    causal = pd.read_csv(copy / "results/causal/heads.csv")
    out = {
        f"per-head increase, {m} ablation": ((g["ci_high_pct"] - g["ci_low_pct"]).median())
        for m, g in heads.groupby("mode")
    }
    for m in ("mean", "zero"):
        for key in ("early_layers_1_3_ci_pct", "layer_6_ci_pct"):
            if key in ablate.get(m, {}):
                low, high = ablate[m][key]
                out[f"{key.removesuffix('_ci_pct')}, {m} ablation"] = high - low
    for measure in ("sensitivity_element", "follow", "patch_prediction_change"):
        widths = causal[f"{measure}_ci_high"] - causal[f"{measure}_ci_low"]
        out[f"per-head {measure}"] = float(widths.median())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    new_epochs = YAML(typ="safe").load((ROOT / "params.yaml").read_text())["finetune"]["epochs"]
    epochs = {"old": OLD["finetune"]["epochs"], "new": new_epochs}
    with tempfile.TemporaryDirectory() as tmp:
        copies = {"old": scratch(args.run, Path(tmp, "old"), OLD), "new": scratch(args.run, Path(tmp, "new"), None)}
        for stage in STAGES:
            times = {"old": [], "new": []}
            for _ in range(args.repeats):
                for which in ("old", "new"):
                    seconds = wall(copies[which], stage)
                    times[which].append(seconds * (epochs[which] if stage == "finetune" else 1))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"{stage}: {new / old:.2f}x ({new:.0f} s against {old:.0f} s)", flush=True)
        old, new = ci_widths(copies["old"]), ci_widths(copies["new"])
        for what in old:
            if what in new:
                print(f"CI width of the {what}: {new[what] / old[what]:.2f}x ({new[what]:.4g} against {old[what]:.4g})")


if __name__ == "__main__":
    main()
