"""Batch files at SVIT's scale: request files written for N synthetic requests, then N output lines read back
(svit_dataset/generation/batch_files.py), requests/s each way and peak RSS, printed at 100K and at N.

    python bench/batch.py [--requests 1000000] [--prompt-bytes 1500] [--out bench/out]

Each request is a chat body of `--prompt-bytes` of scene text (an SVIT prompt with its annotations is 1-3 KB),
its custom_id `<run id>/<image_id>/<task>/<attempt>` (batch_run.custom_id); the output lines are what the Batch API returns for them (a reply
of about 400 bytes, usage counts). Streaming both ways: memory should stay flat as the count grows. Writes
bench/out/batch.json; the files go to a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orjson  # noqa: E402
from _measure import current_rss_mb, save_results  # noqa: E402

from svit_dataset.generation.batch_files import RequestFiles, read_output_file  # noqa: E402
from svit_dataset.generation.batch_run import custom_id  # noqa: E402

TASKS = ("conversation", "complex_reasoning", "referring_qa", "detail_description")
RUN = "c522969b9deb"  # a run id, as batch_run.run_id makes them
REPLY = (
    "Question: What is on the table?\nAnswer: A red <st>cup<ed> [0.21, 0.40, 0.35, 0.62] next to a plate. "
    * 4
)


def requests(n: int, prompt_bytes: int):
    scene = ("object: cup [0.21, 0.40, 0.35, 0.62]; region: a red cup on a wooden table. " * 40)[
        :prompt_bytes
    ]
    for i in range(n):
        image_id, task = divmod(i, len(TASKS))
        body = {
            "model": "gpt-4-0613",
            "messages": [
                {"role": "system", "content": "You are an AI visual assistant."},
                {"role": "user", "content": scene},
            ],
            "seed": i,
            "temperature": 1.0,
        }
        yield custom_id(RUN, f"{image_id}/{TASKS[task]}", 1), body


def output_lines(n: int):
    for i in range(n):
        image_id, task = divmod(i, len(TASKS))
        body = {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 600, "completion_tokens": 120, "total_tokens": 720},
        }
        record = {
            "id": f"batch_req_{i}",
            "custom_id": custom_id(RUN, f"{image_id}/{TASKS[task]}", 1),
            "response": {"status_code": 200, "body": body},
            "error": None,
        }
        yield orjson.dumps(record) + b"\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--prompt-bytes", type=int, default=1500)
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    n, checkpoint = args.requests, min(100_000, args.requests)
    work = Path(tempfile.mkdtemp(prefix="svit-bench-batch-"))
    results: dict = {
        "requests": n,
        "prompt_bytes": args.prompt_bytes,
        "rss_mb_start": round(current_rss_mb(), 1),
    }
    try:
        # requests -> files
        start, cpu = time.perf_counter(), time.process_time()
        with RequestFiles(work / "requests", "round-1") as files:
            for k, (custom_id, body) in enumerate(requests(n, args.prompt_bytes), 1):
                files.add(custom_id, body)
                if k == checkpoint:
                    results["write_rss_mb_at_100k"] = round(current_rss_mb(), 1)
        took = time.perf_counter() - start
        results["write"] = {
            "seconds": round(took, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "requests_per_s": round(n / took),
            "files": len(files.files),
            "gb": round(sum(p.stat().st_size for p, _ in files.files) / 1e9, 2),
            "rss_mb_at_end": round(current_rss_mb(), 1),
        }
        shutil.rmtree(work / "requests")
        # output files (what the API returns) -> answers
        outputs = work / "outputs"
        outputs.mkdir()
        per_file = 50_000
        paths = []
        lines = output_lines(n)
        for f in range((n + per_file - 1) // per_file):
            path = outputs / f"output-{f:05d}.jsonl"
            with open(path, "wb") as handle:
                for _ in range(min(per_file, n - f * per_file)):
                    handle.write(next(lines))
            paths.append(path)
        start, cpu = time.perf_counter(), time.process_time()
        problems, answered, tokens = Counter(), 0, 0
        for path in paths:
            for line in read_output_file(path, problems):
                answered += 1
                tokens += line.usage[1]
                if answered == checkpoint:
                    results["read_rss_mb_at_100k"] = round(current_rss_mb(), 1)
        took = time.perf_counter() - start
        assert answered == n and not problems, (answered, problems)
        results["read"] = {
            "seconds": round(took, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "requests_per_s": round(n / took),
            "completion_tokens": tokens,
            "rss_mb_at_end": round(current_rss_mb(), 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save_results(results, args.out, "batch.json")


if __name__ == "__main__":
    main()
