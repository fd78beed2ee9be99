"""Reading and writing the pipeline's tables (CSV) and arrays (npz), in one format everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FLOAT_FORMAT = "%.6g"


def read_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def write_table(table: pd.DataFrame, path: str | Path, float_format: str | None = FLOAT_FORMAT) -> None:
    """CSV without the index; floats to 6 significant digits unless float_format is None (full precision)."""
    table.to_csv(path, index=False, float_format=float_format)


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return dict(arrays)


def write_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Compressed npz at exactly `path` (numpy would add .npz to a name without it: atomic temporaries)."""
    with open(path, "wb") as out:
        np.savez_compressed(out, **arrays)


def concat_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Tables with the same columns, one below the other."""
    return pd.concat(tables, ignore_index=True)


def as_table(rows: list[dict]) -> pd.DataFrame:
    """A table from one dict per row."""
    return pd.DataFrame(rows)
