"""How many cores one pipeline may use. `VITHEADS_THREADS=N` caps torch's threads and the render
pool, so that `dvc queue start -j J` runs J pipelines side by side instead of each taking every core."""

from __future__ import annotations

import os

from vitheads.outputs import StageError, log

ENV = "VITHEADS_THREADS"


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def budget() -> int:
    """The thread budget of this process: VITHEADS_THREADS when set, else every core it may run on."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return all_cores()
    if not raw.isdecimal() or not raw.isascii() or int(raw) < 1:
        raise StageError(
            f"environment variable {ENV} is {raw!r}; expected a whole number >= 1 (unset: all {all_cores()} cores)"
        )
    return int(raw)


def limit_torch() -> int:
    """Cap torch's intra-op threads at the budget (imported here: generate needs no torch)."""
    import torch

    n = budget()
    torch.set_num_threads(n)
    log.info(
        "torch uses %d thread(s) (%s)",
        n,
        f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV, "").strip() else "all cores",
    )
    return n
