"""Stage plumbing: logging, and outputs that appear whole or not at all."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("vitheads")


class StageError(ValueError):
    """Bad input the user can fix: reported as one line, without a traceback."""


def setup_logging(stage: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format=f"[{stage}] %(message)s")
    return log


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; a StageError ends it with exit status 1 and its message."""
    try:
        main()
    except StageError as err:
        log.error("error: %s", err)
        sys.exit(1)


@contextlib.contextmanager
def atomic_path(final: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; move it into place only if the block succeeds.

    A stage killed midway leaves a `.tmp-*` sibling behind, never a half-written `final`;
    the next run of the stage removes it (DVC lets one stage run at a time per checkout).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", dir=final.parent)
        os.close(handle)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if is_dir else tmp.unlink(missing_ok=True)
        raise
    if is_dir and final.exists():
        shutil.rmtree(final)
    for entry in [tmp, *(tmp.rglob("*") if is_dir else [])]:  # mkdtemp, mkstemp, safetensors: owner-only
        os.chmod(entry, 0o755 if entry.is_dir() else 0o644)
    os.replace(tmp, final)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    log.info("wrote %s", path)
