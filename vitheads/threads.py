"""How many cores one pipeline may use. `VITHEADS_THREADS=N` caps torch's threads and the render
pool, so that `dvc queue start -j J` runs J pipelines side by side instead of each taking every core."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.pool
import os
import sys

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


def release_freed_memory() -> None:
    """Hand the heap's freed blocks back to the system (glibc's malloc_trim; a no-op elsewhere). Without it the
    ablation sweep's resident memory grows with every batch of images, though what it holds does not:
    measured on 200 images, peak 1.41 GiB without and 1.13 GiB with it, at the same speed (docs/speed.md)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):  # no libc, or no malloc_trim in it
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


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


def lean_pool(workers: int, initializer, initargs: tuple) -> multiprocessing.pool.Pool:
    """A spawn pool whose workers load only what `initializer` needs. Spawned workers re-import the parent's
    __main__, and a stage's imports load torch: 776 MiB a worker against 113 MiB for the renderer alone
    (measured here), so the stage's __main__ is hidden while the workers start (they all start in Pool())."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        return multiprocessing.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs)
    finally:
        main.__dict__.update(saved)
