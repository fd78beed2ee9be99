"""What a stage costs: wall seconds and the peak resident memory of its whole process tree (the stage
and any worker processes it starts), written to timings/<stage>.json beside the stage's own splits."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from pathlib import Path

SAMPLE_SECONDS = 0.2
PROC = Path("/proc")


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc); empty where /proc has no such file."""
    kids = []
    for task in (PROC / str(pid) / "task").glob("*/children"):
        with contextlib.suppress(OSError):  # the task ended meanwhile
            kids += [int(c) for c in task.read_text().split()]
    return kids


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, now."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = (PROC / str(p) / "statm").read_text().split()
            total += int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        todo += children_of(p)
    return total


class StageClock:
    """Measures a stage from creation: seconds, and the peak RSS of the process tree, sampled every
    SAMPLE_SECONDS by a daemon thread (without /proc, the process's own ru_maxrss alone)."""

    def __init__(self):
        self.started = time.perf_counter()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            self._stop.wait(SAMPLE_SECONDS)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def peak_mib(self) -> int:
        """The sampled tree peak, or the main process's exact peak where that is higher."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        return round(max(self.peak, tree_rss_bytes(os.getpid()), own) / 2**20)

    def record(self, **parts: float) -> dict:
        """timings/<stage>.json: the named parts (seconds), the stage's seconds and peak tree RSS (MiB)."""
        self._stop.set()
        return {
            **{k: round(v, 1) for k, v in parts.items()},
            "stage_seconds": round(self.seconds(), 1),
            "peak_tree_rss_mib": self.peak_mib(),
        }
