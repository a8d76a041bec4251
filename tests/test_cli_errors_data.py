"""The data commands (`svit build`, `export`, `generate`, `stats`) on the hostile inputs of issue 16: each
ends as one line `svit <command>: error: ...`, exit 2, no traceback (the table runner: tests/cli_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from svit_dataset.schema import TASKS
from tests.cli_runs import assert_one_clean_line_each
from tests.release_factory import conversation, qa, record, write_release

# Deep enough to pass orjson's own limit (1024) and reach the ijson fallback; shallow enough that a
# regression costs ijson ~60 MB, not the machine (tests/test_data_reliability.py runs the issue's
# 100,000 levels under a memory limit).
DEEP = "[" * 5_000 + "]" * 5_000


def _cases(root: Path) -> list[tuple]:
    good = [record(i, conversation(qa("What is it?", f"A ball {i}."))) for i in range(1, 30)]
    release = write_release(root / "rel", {t: good for t in TASKS})
    deep_release = write_release(root / "deep_rel", {t: good for t in TASKS})
    (deep_release / "conversation.json").write_text(DEEP)
    deep_record = write_release(root / "deep_record", {t: good for t in TASKS})
    (deep_record / "referring_qa.json").write_text(
        json.dumps(good)[:-1] + ', {"image_id": 3, "x": ' + DEEP + "}]"
    )
    image_data = root / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 64, "height": 48} for i in range(1, 30)]))
    deep = root / "deep.json"
    deep.write_text(DEEP)
    llava = root / "llava.json"
    llava.write_text("[]")
    scenes = root / "scenes.jsonl"
    scenes.write_text(DEEP + "\n")
    good_scenes = root / "good_scenes.jsonl"
    good_scenes.write_text(
        '{"image_id": 1, "width": 64, "height": 48, "captions": ["a"], "objects": [], "regions": []}\n'
    )
    prices = root / "prices.json"
    prices.write_text('{"models": ' + DEEP + "}")
    built = root / "built"

    build = ["build", "--output", str(root / "out"), "--image-data", str(image_data)]
    export = ["export", "llava", "--output", str(root / "e.json"), "--image-data", str(image_data)]
    generate = ["generate", "--scenes", str(good_scenes), "--output", str(root / "gen"), "--dry-run"]
    deep_error = "JSON nested deeper than 64 levels"
    return [
        # hostile JSON: one line naming the file, memory flat
        ("build: nested-bracket release file", [*build, "--input", str(deep_release)], f"conversation.json: {deep_error}"),
        ("build: a record nested deep", [*build, "--input", str(deep_record)], f"referring_qa.json: {deep_error}"),
        ("build: nested image_data", ["build", "--input", str(release), "--output", str(root / "o2"),
                                      "--image-data", str(deep)], f"deep.json: {deep_error}"),
        ("build: nested LLaVA mix JSON", [*build, "--input", str(release), "--configs", "mix_665k",
                                          "--llava-mix", str(deep), "--llava-instruct", str(llava)],
         f"deep.json: {deep_error}"),
        ("export: nested-bracket release file", [*export, "--input", str(deep_release)], f"conversation.json: {deep_error}"),
        ("export: nested image_data", ["export", "llava", "--input", str(release), "--output", str(root / "e2.json"),
                                       "--image-data", str(deep)], f"deep.json: {deep_error}"),
        ("generate: nested scenes line", ["generate", "--scenes", str(scenes), "--output", str(root / "g2"),
                                          "--dry-run"], "scenes.jsonl"),
        ("generate: nested price table", [*generate, "--prices", str(prices)], f"prices.json: {deep_error}"),
        # flags: shard, NaN gates, bounds
        ("generate --shard 3/2", [*generate, "--shard", "3/2"], "--shard '3/2': need n >= 1 and 0 <= i < n"),
        ("generate --shard a/b", [*generate, "--shard", "a/b"], "--shard 'a/b': expected i/n"),
        ("generate --iou-threshold nan", [*generate, "--iou-threshold", "nan"], "--iou-threshold must be above 0 and at most 1, got nan"),
        ("generate --concurrency huge", [*generate, "--concurrency", "99999999"], "--concurrency must be from 1 to 1048576, got 99999999"),
        ("generate --max-consecutive-api-failures 0", [*generate, "--max-consecutive-api-failures", "0"],
         "--max-consecutive-api-failures must be 1 or more, got 0"),
        ("generate --price-input nan", [*generate, "--price-input", "nan", "--price-output", "1"], "--price-input must be 0 or more, got nan"),
        ("generate --rpm inf", [*generate, "--rpm", "inf"], "--rpm must be above 0 and finite, got inf"),
        ("generate --timeout nan", [*generate, "--timeout", "nan"], "--timeout must be above 0, got nan"),
        ("generate --backoff-base nan", [*generate, "--backoff-base", "nan"], "--backoff-base must be 0 or more, got nan"),
        ("build --max-bad-fraction nan", [*build, "--input", str(release), "--max-bad-fraction", "nan"],
         "--max-bad-fraction"),
        ("build --max-shard-size abc", [*build, "--input", str(release), "--max-shard-size", "abc"],
         "--max-shard-size abc: pass a size of at least 1MB"),
        ("build --max-shard-size 0GB", [*build, "--input", str(release), "--max-shard-size", "0GB"], "--max-shard-size 0GB"),
        ("build --yes-per-no inf", [*build, "--input", str(release), "--yes-per-no", "inf"], "--yes-per-no"),
        ("build --core-split inf", [*build, "--input", str(release), "--core-split", "conversation=inf,referring_qa=1"],
         "--core-split"),
        ("build --recipe-seed -1", [*build, "--input", str(release), "--recipe-seed", "-1"], "--recipe-seed"),
        ("export --max-bad-fraction nan", [*export, "--input", str(release), "--max-bad-fraction", "nan"],
         "--max-bad-fraction must be from 0 to 1, got nan"),
        ("export --max-bad-fraction inf", [*export, "--input", str(release), "--max-bad-fraction", "inf"],
         "--max-bad-fraction must be from 0 to 1 and finite, got inf"),
        ("stats --top 0", ["stats", str(built), "--top", "0"], "--top must be 1 or more, got 0"),
    ]  # fmt: skip


@pytest.mark.slow
def test_data_commands_end_in_one_clean_line(tmp_path):
    assert_one_clean_line_each(_cases(tmp_path))
    assert not (tmp_path / "out").exists() and not (tmp_path / "e.json").exists()
