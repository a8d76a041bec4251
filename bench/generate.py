"""Throughput of `svit generate` against a local OpenAI-compatible server that answers at once.

    python bench/generate.py [--images 1500] [--concurrency 64] [--rpm 3000] [--out bench/out]

The fake server (tests/fake_openai.py) runs in its own process, so its CPU is not the client's.
Scenes are the bundled sample's, repeated under new image ids (scenes JSONL). In this one process:

1. uncapped: all four tasks for `--images` images at `--concurrency`: sustained requests/s (from the
   server's log, first to last arrival), wall time, the client's CPU seconds per request (this
   process's user + system time over the run, which includes parsing, checking and the ledger),
   peak RSS;
2. capped: the same at `--rpm`, for `--capped-images` images: the rate the server saw, over its
   whole log, as a share of the cap.

Writes bench/out/generate.json. Goals (issue 4): >= 200 requests/s uncapped; within 5% of the cap.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
from _measure import current_rss_mb, measure  # noqa: E402

from svit_dataset import bundled  # noqa: E402
from svit_dataset.generation.annotations import iter_vg_scenes, write_scenes_jsonl  # noqa: E402
from svit_dataset.generation.client import ClientSettings  # noqa: E402
from svit_dataset.generation.run import GenerationConfig, SceneSource, generate  # noqa: E402


def write_scenes(path: Path, images: int) -> None:
    base = list(
        iter_vg_scenes(bundled.ANNOTATIONS_DIR, [bundled.ANNOTATIONS_DIR / "captions_train2017.json"])
    )
    scenes = (
        dataclasses.replace(
            base[k % len(base)], image_id=10_000_000 + k, image_path=f"VG_100K/{10_000_000 + k}.jpg"
        )
        for k in range(images)
    )
    write_scenes_jsonl(scenes, path)


class Server:
    """tests/fake_openai.py in a child process, logging every request to a file."""

    def __init__(self, workdir: Path):
        self.port_file = workdir / "port"
        self.log = workdir / "server_log.jsonl"
        for p in (self.port_file, self.log):
            p.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fake_openai",
                "--port-file",
                str(self.port_file),
                "--log",
                str(self.log),
            ],
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while not self.port_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{self.port_file.read_text()}/v1"

    def arrivals(self) -> list[float]:
        with open(self.log) as f:
            return sorted(json.loads(line)["t"] for line in f)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_phase(
    server: Server, scenes: Path, out: Path, images: int, concurrency: int, rpm: float | None
) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    server.log.write_text("")
    config = GenerationConfig(
        output_dir=out,
        client=ClientSettings(model="bench-model", base_url=server.base_url, rpm=rpm),
        concurrency=concurrency,
        max_images=images,
        progress=False,
    )
    cpu0 = cpu_seconds()
    summary = generate(SceneSource(scenes=scenes), config)
    cpu = cpu_seconds() - cpu0
    arrivals = server.arrivals()
    span = arrivals[-1] - arrivals[0]
    requests = len(arrivals)
    result = {
        "images": images,
        "concurrency": concurrency,
        "requests": requests,
        "items_done": summary["items"]["done"],
        "wall_seconds": summary["session"]["seconds"],
        "server_span_seconds": round(span, 3),
        "requests_per_second": round((requests - 1) / span, 1) if span > 0 else None,
        "client_cpu_ms_per_request": round(1000 * cpu / requests, 3),
    }
    if rpm:
        achieved_rpm = 60 * (requests - 1) / span
        result["rpm_cap"] = rpm
        result["rpm_achieved"] = round(achieved_rpm, 1)
        result["share_of_cap"] = round(achieved_rpm / rpm, 4)
        # the busiest minute-long window, when the run is long enough to have one
        if span >= 60:
            busiest, j = 0, 0
            for i, t in enumerate(arrivals):
                while arrivals[j] < t - 60:
                    j += 1
                busiest = max(busiest, i - j + 1)
            result["busiest_minute_requests"] = busiest
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1500, help="images of the uncapped phase (x4 requests)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rpm", type=float, default=3000.0)
    parser.add_argument(
        "--capped-images", type=int, default=250, help="images of the capped phase (x4 requests)"
    )
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    work = out / "generate"
    work.mkdir(parents=True, exist_ok=True)
    scenes = work / "scenes.jsonl"
    write_scenes(scenes, max(args.images, args.capped_images))
    results: dict = {"cpu_count": os.cpu_count(), "start_rss_mb": round(current_rss_mb(), 1)}
    server = Server(work)
    try:
        timings: dict = {}
        with measure(timings, "uncapped"):
            results["uncapped"] = run_phase(
                server, scenes, work / "run-uncapped", args.images, args.concurrency, None
            )
        results["uncapped"]["peak_rss_mb"] = timings["uncapped"]["peak_rss_mb"]
        with measure(timings, "capped"):
            results["capped"] = run_phase(
                server, scenes, work / "run-capped", args.capped_images, args.concurrency, args.rpm
            )
        results["capped"]["peak_rss_mb"] = timings["capped"]["peak_rss_mb"]
    finally:
        server.stop()
    (out / "generate.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
