"""Time `svit build` of all subsets at the paper's scale, against stream-parsing the same files.

    python bench/build.py [--scale 1.0] [--corpus /tmp/svit_full] [--out bench/out]

Writes (or reuses) a synthetic release-format corpus with the paper's counts and mean lengths
(tools.synthetic), then in this one process: (1) the baseline, a stream parse of every file
with ijson's C backend, building each record as Python objects and doing nothing else; (2) the
build of every config without images (--image-data). Reports seconds, peak RSS of each phase and
their ratio, and writes bench/out/build.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import ijson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/: the corpus maker, not installed
from _measure import current_rss_mb, measure  # noqa: E402

from svit_dataset.hub_build.engine import build_hub_dataset  # noqa: E402
from svit_dataset.schema import TASKS  # noqa: E402
from tools.synthetic import CorpusSpec, write_corpus  # noqa: E402


def stream_parse(paths: list[Path]) -> int:
    """The baseline: every record of every file as Python objects, nothing more."""
    records = 0
    for path in paths:
        with open(path, "rb") as f:
            for _ in ijson.items(f, "item", use_float=True):
                records += 1
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="share of the paper's 108,077 images")
    parser.add_argument("--corpus", default=None, help="corpus folder (written if missing)")
    parser.add_argument("--out", default="bench/out")
    parser.add_argument(
        "--num-proc", type=int, default=None, help="build processes (default: svit build's own)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import datasets

    datasets.disable_progress_bars()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus or out / f"corpus-{args.scale:g}")
    results: dict = {
        "scale": args.scale,
        "ijson_backend": ijson.backend,
        "start_rss_mb": round(current_rss_mb(), 1),
    }
    if not all((corpus / f"{t}.json").is_file() for t in TASKS):
        with measure(results, "write_corpus"):
            results["corpus"] = write_corpus(CorpusSpec(scale=args.scale), corpus)
    paths = [corpus / f"{t}.json" for t in TASKS]
    results["input_mb"] = round(sum(p.stat().st_size for p in paths) / 2**20, 1)

    with measure(results, "stream_parse"):
        results["records"] = stream_parse(paths)
    target = out / "hub" / "svit"
    with measure(results, "svit_build"):
        report = build_hub_dataset(
            corpus,
            target,
            "all",
            image_data=corpus / "image_data.json",
            overwrite=True,
            num_proc=args.num_proc,
        )
    results["rows"] = report["configs"]
    results["output_mb"] = round(sum(p.stat().st_size for p in target.rglob("*.parquet")) / 2**20, 1)
    results["build_over_parse"] = round(
        results["svit_build"]["seconds"] / results["stream_parse"]["seconds"], 2
    )
    shutil.rmtree(out / "hub")

    (out / f"build{'' if args.num_proc is None else f'-np{args.num_proc}'}.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    print(json.dumps(results, indent=2))
    build_cpu = results["svit_build"]["cpu_seconds"] + results["svit_build"]["child_cpu_seconds"]
    print(
        f"\nstream parse {results['stream_parse']['seconds']}s / build {results['svit_build']['seconds']}s "
        f"(x{results['build_over_parse']}); CPU {results['stream_parse']['cpu_seconds']}s / "
        f"{build_cpu:.2f}s (workers included); peak RSS {results['svit_build']['peak_rss_mb']} MB, "
        f"with worker processes {results['svit_build']['peak_tree_rss_mb']} MB; "
        f"{results['input_mb']} MB in, {results['output_mb']} MB out; load average "
        f"{results['stream_parse']['load'][0]} -> {results['svit_build']['load'][1]}"
    )


if __name__ == "__main__":
    main()
