"""Time `svit build` of all subsets at the paper's scale, against stream-parsing the same files, on the two
layouts release files come in: compact, and indented as `json.dump(..., indent=4)` writes.

    python bench/build.py [--scale 1.0] [--corpus /tmp/svit_full] [--layouts compact,indent4] [--out bench/out]

Writes (or reuses) a synthetic release-format corpus with the paper's counts and mean lengths
(tools.synthetic), and its indented copy (`<corpus>-indent4`, the same records re-dumped a record at a time),
then, per layout, in this one process: (1) the baseline, a stream parse of every file with ijson's C backend,
building each record as Python objects and doing nothing else; (2) the build of every config without images
(--image-data). Reports seconds, CPU seconds, the load average before and after, peak RSS of each phase and
their ratio per layout (a figure taken while other work held the cores says so: CPU time near wall time, load
near 2 on this 2-core machine, is a quiet run), and writes bench/out/build.json.
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
from svit_dataset.jsonlist import iter_json_list  # noqa: E402
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


def write_indented(source: Path, target: Path) -> None:
    """`source`'s corpus re-dumped as `json.dump(records, f, indent=4)` writes it, streamed a record at a time
    (json's layout: each record indented one level inside the list); the other files copied."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix != ".json" or path.stem not in TASKS:
            if path.is_file():
                shutil.copy(path, target / path.name)
            continue
        partial = target / f".{path.name}.partial"
        with open(partial, "w", encoding="utf-8") as f:
            f.write("[")
            for index, record in iter_json_list(path):
                f.write(
                    ("\n    " if index == 0 else ",\n    ")
                    + json.dumps(record, indent=4).replace("\n", "\n    ")
                )
            f.write("\n]")
        partial.replace(target / path.name)


def measure_layout(corpus: Path, out: Path, num_proc: int | None) -> dict:
    """Stream parse, then `svit build` of every config, of one corpus folder."""
    results: dict = {}
    paths = [corpus / f"{t}.json" for t in TASKS]
    results["input_mb"] = round(sum(p.stat().st_size for p in paths) / 2**20, 1)
    with measure(results, "stream_parse"):
        results["records"] = stream_parse(paths)
    target = out / "hub" / "svit"
    with measure(results, "svit_build"):
        report = build_hub_dataset(
            corpus, target, "all", image_data=corpus / "image_data.json", overwrite=True, num_proc=num_proc
        )
    results["rows"] = report["configs"]
    results["output_mb"] = round(sum(p.stat().st_size for p in target.rglob("*.parquet")) / 2**20, 1)
    results["build_over_parse"] = round(
        results["svit_build"]["seconds"] / results["stream_parse"]["seconds"], 2
    )
    shutil.rmtree(out / "hub")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="share of the paper's 108,077 images")
    parser.add_argument("--corpus", default=None, help="corpus folder (written if missing)")
    parser.add_argument(
        "--layouts", default="compact,indent4", help="compact, indent4 or both (comma-separated)"
    )
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
    layouts = args.layouts.split(",")
    unknown = set(layouts) - {"compact", "indent4"}
    if unknown:
        parser.error(f"--layouts: unknown {', '.join(sorted(unknown))}; known: compact, indent4")
    folders = {"compact": corpus, "indent4": corpus.with_name(corpus.name + "-indent4")}
    if "indent4" in layouts and not all((folders["indent4"] / f"{t}.json").is_file() for t in TASKS):
        with measure(results, "write_indented_copy"):
            write_indented(corpus, folders["indent4"])
    for layout in layouts:
        results[layout] = measure_layout(folders[layout], out, args.num_proc)

    (out / f"build{'' if args.num_proc is None else f'-np{args.num_proc}'}.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    print(json.dumps(results, indent=2))
    for layout in layouts:
        r = results[layout]
        parse, build = r["stream_parse"], r["svit_build"]
        build_cpu = build["cpu_seconds"] + build["child_cpu_seconds"]
        print(
            f"\n{layout}: stream parse {parse['seconds']}s (CPU {parse['cpu_seconds']}s) / build "
            f"{build['seconds']}s (CPU {build_cpu:.2f}s, workers included): x{r['build_over_parse']}; peak RSS "
            f"{build['peak_rss_mb']} MB, with worker processes {build['peak_tree_rss_mb']} MB; {r['input_mb']} MB "
            f"in, {r['output_mb']} MB out; load average {parse['load'][0]} -> {build['load'][1]}"
        )


if __name__ == "__main__":
    main()
