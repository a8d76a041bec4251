"""Measuring helpers for bench scripts: wall time and peak RSS of a phase, in this process."""

from __future__ import annotations

import contextlib
import threading
import time


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def measure(results: dict, name: str, interval: float = 0.05):
    """Record `seconds` and `peak_rss_mb` of the block under results[name] (RSS sampled in a thread)."""
    peak = [current_rss_mb()]
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak[0] = max(peak[0], current_rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        thread.join()
        peak[0] = max(peak[0], current_rss_mb())
        results[name] = {"seconds": round(elapsed, 2), "peak_rss_mb": round(peak[0], 1)}
