"""Measuring helpers for bench scripts: wall time, CPU time and peak RSS of a phase, in this process.

Peaks are sampled in a thread: of this process (`peak_rss_mb`) and of this process plus its child
processes together (`peak_tree_rss_mb`: builds and recipes may run worker processes). CPU seconds are
of this process and of its child processes that ended within the phase (`cpu_seconds`,
`child_cpu_seconds`): on a shared machine, wall time says how much CPU the phase got, CPU time how
much work it did.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from pathlib import Path


def _rss_mb(pid: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def current_rss_mb() -> float:
    return _rss_mb("self")


def tree_rss_mb() -> float:
    """RSS of this process and its direct children, in MB."""
    pids = [str(os.getpid())]
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids += (task / "children").read_text().split()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += _rss_mb(pid)
    return total


def _cpu_seconds() -> tuple[float, float]:
    """(user + system seconds of this process, of its ended child processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@contextlib.contextmanager
def measure(results: dict, name: str, interval: float = 0.05):
    """Record `seconds`, `cpu_seconds`, `child_cpu_seconds`, `peak_rss_mb`, `peak_tree_rss_mb` and the
    1-minute load average before and after (`load`: other users of the machine) under results[name]."""
    load = os.getloadavg()[0]
    peak, tree_peak = [current_rss_mb()], [tree_rss_mb()]
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak[0] = max(peak[0], current_rss_mb())
            tree_peak[0] = max(tree_peak[0], tree_rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        cpu, child_cpu = (end - begin for end, begin in zip(_cpu_seconds(), cpu_start, strict=True))
        done.set()
        thread.join()
        results[name] = {
            "seconds": round(elapsed, 2),
            "cpu_seconds": round(cpu, 2),
            "child_cpu_seconds": round(child_cpu, 2),
            "peak_rss_mb": round(max(peak[0], current_rss_mb()), 1),
            "peak_tree_rss_mb": round(max(tree_peak[0], tree_rss_mb()), 1),
            "load": [round(load, 2), round(os.getloadavg()[0], 2)],
        }


def save_results(results: dict, out_dir: str | Path, name: str) -> Path:
    """Write a bench's figures to `out_dir/name` (JSON) and print them."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return path
