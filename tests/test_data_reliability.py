"""Issue 16, data side: bounded memory on hostile JSON, one box rule, range-checked flags.

- Every JSON reader (release files, LLaVA JSON, image_data, generation inputs and ledgers, small
  objects) refuses nesting deeper than MAX_JSON_DEPTH in one SvitFormatError naming the file, with
  memory flat: a 200 KB file of `[` x 100,000 then `]` x 100,000 grew ijson's memory with the square
  of the depth (24 GB) before.
- Boxes: the gate drops NaN, infinities and wrong arity as `bad_box`; the export moves every spelling.
- Numeric settings: NaN, infinities and out-of-range values refused before any work.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import (
    MAX_JSON_DEPTH,
    JsonDepthScanner,
    check_json_depth,
    iter_json_list,
    loads_json,
    read_json_object,
)
from svit_dataset.schema import REFERRING_QA
from tests.release_factory import conversation, qa, record, write_release

DEEP = b"[" * 100_000 + b"]" * 100_000  # the file: 200 KB


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- the depth check itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (nested(MAX_JSON_DEPTH), True),
        (nested(MAX_JSON_DEPTH + 1), False),
        ('{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH, True),
        ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), False),
        # brackets inside strings are text, whatever quotes and backslashes precede them
        ('["' + "[" * 500 + '", ' + nested(MAX_JSON_DEPTH - 1) + "]", True),
        ('["\\"' + "[" * 500 + '", ' + nested(MAX_JSON_DEPTH - 1) + "]", True),
        ('["\\\\", ' + nested(MAX_JSON_DEPTH) + "]", False),  # `\\` closes nothing: the list is real
        ('["\\\\\\"[[[", ' + nested(MAX_JSON_DEPTH - 1) + "]", True),
        ('["{ [ é ☃ ]", {"k": ' + nested(MAX_JSON_DEPTH - 2) + "}]", True),
        ("", True),
    ],
)
def test_depth_limit_is_exact_and_ignores_strings(text, ok):
    if ok:
        check_json_depth(text, "x.json")
        check_json_depth(text.encode(), "x.json")
    else:
        with pytest.raises(
            SvitFormatError, match=rf"^x\.json: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ):
            check_json_depth(text, "x.json")


def test_depth_scanner_fed_in_pieces_agrees_with_one_piece():
    # Every cut, escapes and strings split across pieces included, gives the same verdict.
    texts = [
        '["a\\\\", "b\\"[[[", {"c": [1, 2, "]]]"]}, ' + nested(MAX_JSON_DEPTH - 1) + "]",
        '["a\\\\", "b\\"[[[", {"c": [1, 2, "]]]"]}, ' + nested(MAX_JSON_DEPTH) + "]",
    ]
    for text, ok in zip(texts, (True, False), strict=True):
        data = text.encode()
        splits = [[data[:cut], data[cut:]] for cut in range(len(data) + 1)]
        splits += [[data[i : i + step] for i in range(0, len(data), step)] for step in (1, 2, 3)]
        for pieces in splits:
            scanner = JsonDepthScanner("x.json")
            try:
                for piece in pieces:
                    scanner.feed(piece)
                verdict = True
            except SvitFormatError:
                verdict = False
            assert verdict is ok, pieces[:3]


def test_depth_error_names_the_byte():
    text = '[{"a": ' + nested(100) + "}]"
    with pytest.raises(SvitFormatError, match=r"at byte 69\)"):  # the 63rd `[` after `[{"a": ` (7 bytes)
        check_json_depth(text, "x.json")


# --- every reader: one clean error, memory flat -----------------------------------------------------


def test_release_reader_refuses_deep_nesting_on_both_paths(tmp_path):
    """The orjson fast path and the ijson fallback refuse the same depth and read the same files."""
    good = [record(i, conversation(qa("What is it?", "A ball."))) for i in range(1, 4)]
    for depth, ok in ((MAX_JSON_DEPTH - 2, True), (MAX_JSON_DEPTH - 1, False)):
        # `extra` sits 2 levels down (the list, the record): the file nests exactly MAX or MAX + 1
        deep_record = {"image_id": 9, "conversations": [], "extra": json.loads(nested(depth))}
        for force_ijson in (False, True):
            records = [*good, deep_record]
            if force_ijson:  # a run of 19 digits sends the file to ijson (see jsonlist._decode)
                records[0] = {**records[0], "note": "1" * 19}
            path = tmp_path / f"r{depth}{force_ijson}.json"
            path.write_bytes(orjson.dumps(records))
            if ok:
                assert [r for _, r in iter_json_list(path)] == records
            else:
                with pytest.raises(SvitFormatError, match=rf"{path.name}: JSON nested deeper than"):
                    list(iter_json_list(path))


def test_small_json_readers_refuse_deep_nesting(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_bytes(DEEP)
    with pytest.raises(SvitFormatError, match="deep.json: JSON nested deeper"):
        read_json_object(deep, "pass a report")
    with pytest.raises(SvitFormatError, match="deep.json: JSON nested deeper"):
        loads_json(DEEP, deep)
    assert loads_json(b'{"a": [1, {"b": 2}]}', deep) == {"a": [1, {"b": 2}]}


def test_generation_inputs_refuse_deep_nesting(tmp_path):
    from svit_dataset.generation.annotations import iter_scenes_jsonl, read_coco_captions
    from svit_dataset.generation.output import load_prices
    from svit_dataset.release import MalformedTally

    scene = {"image_id": 1, "width": 64, "height": 48, "captions": ["a"], "objects": [], "regions": []}
    scenes = tmp_path / "scenes.jsonl"
    scenes.write_bytes(
        json.dumps(scene).encode() + b"\n" + DEEP + b"\n" + json.dumps(scene | {"image_id": 2}).encode()
    )
    tally = MalformedTally(scenes, max_fraction=0.5)
    assert [s.image_id for s in iter_scenes_jsonl(scenes, tally)] == [1, 2]
    assert tally.malformed == 1 and "nested deeper" in tally.first  # a deep line is one bad line, counted
    captions = tmp_path / "captions.json"
    captions.write_bytes(b'{"annotations": ' + DEEP + b"}")
    with pytest.raises(SvitFormatError, match="captions.json: JSON nested deeper"):
        read_coco_captions([captions])
    prices = tmp_path / "prices.json"
    prices.write_bytes(b'{"models": ' + DEEP + b"}")
    with pytest.raises(SvitFormatError, match="--prices .*prices.json: JSON nested deeper"):
        load_prices(prices)


def test_generation_ledger_refuses_deep_nesting(tmp_path):
    from svit_dataset.generation.ledger import scan

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b'{"key": "1", "t": "attempt", "usage": [1, 2], "x": ' + DEEP + b"}\n")
    with pytest.raises(SvitFormatError, match="ledger.jsonl: JSON nested deeper"):
        scan(ledger)


def test_image_data_and_llava_json_refuse_deep_nesting(tmp_path):
    from svit_dataset.jsonlist import iter_json_list
    from svit_dataset.llava_format import LLAVA_JSON
    from svit_dataset.vg import iter_image_data

    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    with pytest.raises(SvitFormatError, match="--image-data: .*deep.json: JSON nested deeper"):
        list(iter_image_data(path))
    with pytest.raises(SvitFormatError, match="deep.json: JSON nested deeper"):
        list(iter_json_list(path, expected=LLAVA_JSON))


READ_DEEP = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails here, not the machine
    from svit_dataset.errors import SvitFormatError
    from svit_dataset.jsonlist import iter_json_list, read_json_object
    path = sys.argv[1]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for read in (lambda: list(iter_json_list(path)), lambda: read_json_object(path, "x")):
        try:
            read()
            sys.exit("read without an error")
        except SvitFormatError as err:
            assert "nested deeper than" in str(err), err
    print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def test_nested_brackets_file_keeps_memory_flat(tmp_path):
    """The issue's 200 KB file: the readers' peak RSS stays within a few MB of the imports' (ijson grew
    it by 24 GB). Growth, not the total: what the imports take depends on the environment."""
    for name, data in (
        ("plain", DEEP),
        ("after_records", b'[{"image_id": 1, "conversations": []}, ' + DEEP + b"]"),
    ):
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-c", READ_DEEP, str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        before_kb, after_kb = map(int, done.stdout.split())
        assert after_kb - before_kb < 64 * 1024, (
            f"{name}: reading grew RSS by {(after_kb - before_kb) / 1024:.0f} MB"
        )


# --- one box rule: gate, export, parser ---------------------------------------------------------------


def _referring(answer: str) -> dict:
    return record(1, conversation(qa("Where is the ball?", answer)))


def test_build_gate_drops_nan_inf_and_wrong_arity_boxes_as_bad_box(tmp_path):
    from svit_dataset.quality import BAD_BOX, QualityReport
    from svit_dataset.reader import iter_samples
    from svit_dataset.vg import ImageIndex

    answers = [
        "The <st>ball<ed> [0.100, 0.200, 0.300, 0.400].",  # kept
        "The <st>ball<ed> [.1, .2, .3, .4].",  # kept: same box, other spelling
        "The <st>ball<ed> [NaN, 0.2, 0.3, 0.4].",
        "The <st>ball<ed> [inf, 0.2, 0.3, 0.4].",
        "The <st>ball<ed> [0.1, 0.2, 0.3].",
        "The <st>ball<ed> [0.1, 0.2, 0.3, 0.4, 0.5].",
    ]
    records = [record(i + 1, conversation(qa("Where is the ball?", a))) for i, a in enumerate(answers)]
    release = write_release(tmp_path / "rel", {REFERRING_QA: records})
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 640, "height": 480} for i in range(1, 7)]))
    reports: dict = {}
    from collections import defaultdict

    reports = defaultdict(QualityReport)
    kept = list(
        iter_samples({REFERRING_QA: release / f"{REFERRING_QA}.json"}, ImageIndex(None, image_data), reports)
    )
    assert [s["image_id"] for _, s in kept] == [1, 2]
    assert reports[(REFERRING_QA, "train")].dropped == {BAD_BOX: 4}


def test_export_moves_every_spelling_of_a_box_alike(tmp_path):
    from svit_dataset.export_llava import export_llava

    spellings = ["[0.1, 0.2, 0.3, 0.4]", "[.1, .2, .3, .4]", "[0.1,0.2,0.3,0.4]", "[1e-1, 2e-1, 3e-1, 4e-1]"]
    records = [
        record(i + 1, conversation(qa("Where?", f"The <st>ball<ed> {b}."))) for i, b in enumerate(spellings)
    ]
    release = write_release(tmp_path / "rel", {REFERRING_QA: records})
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 640, "height": 480} for i in range(1, 5)]))
    out = tmp_path / "llava.json"
    export_llava(release, out, image_data=image_data, tasks=(REFERRING_QA,))
    answers = [r["conversations"][1]["value"] for r in json.loads(out.read_text())]
    assert answers == ["The ball [0.1, 0.275, 0.3, 0.425]."] * 4  # y moved by (640 - 480) / 2 pixels


# --- numeric settings: NaN, infinities, bounds --------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: _tally(float("nan")), "--max-bad-fraction must be from 0 to 1, got nan"),
        (lambda: _tally(float("inf")), "--max-bad-fraction must be from 0 to 1 and finite, got inf"),
        (
            lambda: _export_options(max_bad_fraction=float("nan")),
            "--max-bad-fraction must be from 0 to 1, got nan",
        ),
        (
            lambda: _generation(iou_threshold=float("nan")),
            "--iou-threshold must be above 0 and at most 1, got nan",
        ),
        (lambda: _generation(concurrency=0), "--concurrency must be from 1 to 1048576, got 0"),
        (
            lambda: _generation(max_consecutive_api_failures=0),
            "--max-consecutive-api-failures must be 1 or more, got 0",
        ),
        (
            lambda: _generation(price_input=float("nan"), price_output=1.0),
            "--price-input must be 0 or more, got nan",
        ),
        (lambda: _client(rpm=float("inf")), "--rpm must be above 0 and finite, got inf"),
        (lambda: _client(timeout=float("nan")), "--timeout must be above 0, got nan"),
        (lambda: _client(backoff_base=float("nan")), "--backoff-base must be 0 or more, got nan"),
        (lambda: _client(max_retry_after=-1.0), "--max-retry-after must be 0 or more, got -1.0"),
        (lambda: _client(temperature=float("nan")), "--temperature must be from 0 to 2, got nan"),
        (lambda: _recipe(yes_per_no=float("inf")), "--yes-per-no must be > 0 and finite"),
        (lambda: _recipe(seed=-1), "--recipe-seed must be 0 or more"),
        (lambda: _recipe(core_split=(("conversation", float("nan")),)), "--core-split"),
        (lambda: _recipe(core_split=(("conversation", float("inf")), ("referring_qa", 1.0))), "--core-split"),
        (lambda: _build(max_shard_size="0GB"), "--max-shard-size 0GB: pass a size of at least 1MB"),
        (lambda: _build(max_shard_size="lots"), "--max-shard-size lots"),
    ],
)
def test_numeric_settings_refuse_nan_infinities_and_out_of_range(make, expected):
    with pytest.raises(SvitInputError) as err:
        make()
    assert expected in str(err.value)


def test_check_number_bounds():
    from svit_dataset.settings import check_number

    check_number("--f", 0, 0, 1)
    check_number("--f", 1.0, 0, 1)
    check_number("--f", None, 0, 1, optional=True)
    check_number("--n", 10**400, 1)  # a big int has no float, and is still a number >= 1
    for value in (float("nan"), float("inf"), -float("inf"), -0.001, 1.001, None, True, "0.5"):
        with pytest.raises(SvitInputError, match="^--f must be from 0 to 1"):
            check_number("--f", value, 0, 1)
    with pytest.raises(SvitInputError, match="--f must be above 0 and at most 1, got 0$"):
        check_number("--f", 0, 0, 1, above=True)
    with pytest.raises(SvitInputError, match="--n must be from 1 to 4, got 5$"):
        check_number("--n", 5, 1, 4)


def test_a_nan_gate_would_have_let_everything_through(tmp_path):
    """Before, `malformed > nan * records` was never true: every record could be malformed."""
    from svit_dataset.reader import iter_samples
    from svit_dataset.vg import ImageIndex

    release = write_release(tmp_path / "rel", {"conversation": [{"image_id": "x"}] * 5})
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": 1, "width": 64, "height": 48}]))
    with pytest.raises(SvitInputError, match="--max-bad-fraction must be from 0 to 1, got nan"):
        list(
            iter_samples(
                {"conversation": release / "conversation.json"},
                ImageIndex(None, image_data),
                {},
                max_bad_fraction=float("nan"),
            )
        )


def test_shard_flag_errors_are_argparse_errors():
    from svit_cli.main import build_parser

    parser = build_parser()
    for bad in ("3/2", "0/0", "a/b", "1/2/3"):
        with pytest.raises(SystemExit) as done:
            parser.parse_args(["generate", "--scenes", "s.jsonl", "--output", "o", "--shard", bad])
        assert done.value.code == 2
    args = parser.parse_args(["generate", "--scenes", "s.jsonl", "--output", "o", "--shard", "1/2"])
    assert args.shard == (1, 2)


def _tally(fraction):
    from svit_dataset.release import MalformedTally

    return MalformedTally(Path("x.json"), fraction)


def _export_options(**kw):
    from svit_dataset.export_llava import ExportOptions

    return ExportOptions("in", "out.json", **kw)


def _generation(**kw):
    from svit_dataset.generation.run import GenerationConfig

    return GenerationConfig("out", **kw)


def _client(**kw):
    from svit_dataset.generation.client import ClientSettings

    return ClientSettings(**kw)


def _recipe(**kw):
    from svit_dataset.recipes.select import RecipeParams

    return RecipeParams(**kw)


def _build(**kw):
    from svit_dataset.hub_build.options import BuildOptions

    return BuildOptions("in", "out", **kw)


def test_random_json_depth_matches_a_reference_parser():
    """Random JSON-ish texts (strings with brackets, quotes and backslashes): the scanner's depth
    equals the depth Python's own parser sees, by a hand-written reference walk over parsed values."""
    rng = random.Random(7)

    def value(depth: int):
        kind = rng.random()
        if depth > 70 or kind < 0.3:
            return rng.choice(["[x", '"]', "\\", 'a\\"b', "{", "}", 1, 2.5, None, True])
        if kind < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 2))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 2))}

    def measured(v) -> int:
        if isinstance(v, list):
            return 1 + max(map(measured, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(measured, v.values()), default=0)
        return 0

    for _ in range(300):
        v = value(0)
        for _ in range(rng.randint(0, 70)):  # around the limit
            v = [v] if rng.random() < 0.5 else {"w": v}
        text = json.dumps(v, ensure_ascii=rng.random() < 0.5)
        depth = measured(v)
        try:
            check_json_depth(text, "x")
            assert depth <= MAX_JSON_DEPTH, depth
        except SvitFormatError:
            assert depth > MAX_JSON_DEPTH, depth
