"""How well the model regresses the targets: the test metrics and the predictions table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from vitheads.names import TARGETS, UNITS


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def regression_metrics(
    pred_z: np.ndarray,
    true_z: np.ndarray,
    unscale: Callable[[np.ndarray], np.ndarray],
    targets: tuple[str, ...] = TARGETS,
) -> dict[str, Any]:
    """Test MSE on z-scores (the paper's figure), and R^2, Pearson r, MAE per target in physical units."""
    pred, true = unscale(pred_z), unscale(true_z)
    per_target = {}
    for i, name in enumerate(targets):
        residual = pred[:, i] - true[:, i]
        per_target[name] = {
            "r2": round(float(1 - (residual**2).sum() / ((true[:, i] - true[:, i].mean()) ** 2).sum()), 5),
            "pearson_r": round(pearson(pred[:, i], true[:, i]), 5),
            f"mae_{UNITS[name]}": round(float(np.abs(residual).mean()), 5),
        }
    chirp = [i for i, t in enumerate(targets) if t in TARGETS]  # the test MSE is the chirp's: cues apart
    test_mse = round(float(np.mean((pred_z[:, chirp] - true_z[:, chirp]) ** 2)), 6)
    return {"test_mse": test_mse, "test_images": len(true_z), **per_target}


def predictions_table(true: np.ndarray, pred: np.ndarray, targets: tuple[str, ...] = TARGETS) -> pd.DataFrame:
    """Test targets and predictions in physical units, one row per test image."""
    columns = {f"true_{t}": true[:, i] for i, t in enumerate(targets)}
    columns |= {f"pred_{t}": pred[:, i] for i, t in enumerate(targets)}
    return pd.DataFrame(columns)


def history_table(history: list) -> pd.DataFrame:
    """One row per epoch of training (EpochRecord fields), for plots/finetune/history.csv."""
    return pd.DataFrame([vars(r) for r in history])
