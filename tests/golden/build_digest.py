"""Digests of what a build writes, to compare builds across versions of the code.

    python tests/golden/build_digest.py OUT.json   # run from the repo root of the version to record

Builds the bundled sample (images embedded, upstream's held-out list) and a small synthetic corpus
(tools/synthetic.py at scale 0.005, sizes from image_data.json), then records, per config and split,
the row count and a SHA-256 over every row in order (image bytes included), and the quality counts
(seen, kept, dropped by reason). tests/golden/build_before.json was recorded with the last version
that read each file once per split (commit f9a0d78); test_build_equivalence.py compares.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import datasets


def digest_rows(dataset) -> str:
    h = hashlib.sha256()
    for row in dataset:
        row = dict(row)
        row["images"] = [hashlib.sha256(image["bytes"] or b"").hexdigest() for image in row.pop("images")]
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


def digest_build(folder: Path, report: dict) -> dict:
    out = {"configs": {}, "quality": {}}
    for config, splits in report["configs"].items():
        for split, rows in splits.items():
            data = datasets.load_dataset(str(folder), config, split=split)
            data = data.cast_column("images", datasets.List(datasets.Image(decode=False)))
            out["configs"][f"{config}/{split}"] = {"rows": rows, "sha256": digest_rows(data)}
    for task, by_split in report["quality"].items():
        for split, rep in by_split.items():
            out["quality"][f"{task}/{split}"] = {
                "seen": rep["seen"],
                "kept": rep["kept"],
                "dropped": rep["dropped"],
            }
    return out


def record(build_hub_dataset, bundled, write_corpus, CorpusSpec) -> dict:
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = build_hub_dataset(
            bundled.RELEASE_DIR, root / "sample", images_dir=bundled.IMAGES_DIR, test_ids=bundled.TEST_IDS
        )
        write_corpus(CorpusSpec(scale=0.005), root / "corpus", workers=1)
        corpus = build_hub_dataset(
            root / "corpus", root / "synthetic", image_data=root / "corpus" / "image_data.json"
        )
        return {
            "bundled": digest_build(root / "sample", sample),
            "synthetic": digest_build(root / "synthetic", corpus),
        }


def main() -> None:
    sys.path.insert(0, str(Path.cwd()))
    from svit_dataset import bundled

    try:
        from svit_dataset.hub_build.engine import build_hub_dataset
    except ImportError:  # versions before svit_dataset/hub_build/ existed
        from svit_dataset.hub_layout import build_hub_dataset

    try:
        from tools.synthetic import CorpusSpec, write_corpus
    except ImportError:  # versions before tools/ existed
        from svit_dataset.synthetic import CorpusSpec, write_corpus
    Path(sys.argv[1]).write_text(
        json.dumps(record(build_hub_dataset, bundled, write_corpus, CorpusSpec), indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
