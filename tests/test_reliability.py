"""Reliability: inputs never written, every build loads, every record counted, values checked, no leftovers,
no secret in the clear. (The one-line CLI errors are in test_cli_errors.py, linear parsing in
test_linear_parsing.py.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import datasets
import pytest
from PIL import Image

from svit_dataset import bundled
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.export_llava import export_llava
from svit_dataset.generation.client import ClientSettings
from svit_dataset.generation.run import GenerationConfig, SceneSource, generate
from svit_dataset.hub_build.engine import build_hub_dataset
from svit_dataset.quality import QualityReport
from svit_dataset.reader import iter_samples
from svit_dataset.schema import TASKS
from svit_dataset.secrets import RedactingFilter, redact
from svit_dataset.vg import ImageIndex, read_image_data, read_test_ids
from tests.cli_runs import run_svit
from tests.release_factory import conversation, qa, record, write_release

GOOD = qa("Where is the <st>ball<ed> [0.1, 0.2, 0.3, 0.4]?", "On the <st>grass<ed> [0.0, 0.5, 1.0, 1.0].")


def release_of(folder: Path, image_ids) -> Path:
    records = [
        record(i, conversation(qa(f"What is in picture {i}?", f"A ball, number {i}."))) for i in image_ids
    ]
    return write_release(folder, {task: records for task in TASKS})


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. Inputs are read-only ---------------------------------------------------------------------------


def test_build_refuses_an_output_that_is_contains_or_is_inside_the_input(tmp_path):
    release = release_of(tmp_path / "rel", [1, 2, 3])
    before = tree_snapshot(tmp_path)
    for output in (release, tmp_path, release / "svit"):
        with pytest.raises(SvitInputError, match="inputs are never written or replaced"):
            build_hub_dataset(release, output, overwrite=True)
    image_data = tmp_path / "meta" / "image_data.json"
    image_data.parent.mkdir()
    image_data.write_text(json.dumps([{"image_id": 1, "width": 10, "height": 10}]))
    with pytest.raises(SvitInputError, match="--output .* contains --image-data"):
        build_hub_dataset(release, tmp_path / "meta", image_data=image_data, overwrite=True)
    assert tree_snapshot(tmp_path) == before | {"meta/image_data.json": image_data.read_bytes()}


def test_export_refuses_input_paths_and_an_existing_file_without_overwrite(tmp_path):
    release = release_of(tmp_path / "rel", [1, 2])
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 10, "height": 10} for i in (1, 2)]))
    before = tree_snapshot(tmp_path)
    for output in (release / "conversation.json", image_data, release / "sub" / "x.json"):
        with pytest.raises(SvitInputError, match="inputs are never written or replaced"):
            export_llava(release, output, image_data=image_data, overwrite=True)
    assert tree_snapshot(tmp_path) == before
    mine = tmp_path / "someone.json"
    mine.write_text("precious")
    with pytest.raises(SvitInputError, match="already exists; pass --overwrite"):
        export_llava(release, mine, image_data=image_data)
    assert mine.read_text() == "precious"
    assert export_llava(release, mine, image_data=image_data, overwrite=True)["written"] == 8


def test_generate_refuses_its_inputs_and_release_files_it_did_not_write(tmp_path):
    scenes = tmp_path / "scenes.jsonl"
    scenes.write_text("")
    settings = ClientSettings(model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(SvitInputError, match="--output .* is --scenes"):
        generate(SceneSource(scenes=scenes), GenerationConfig(output_dir=scenes, client=settings))
    (tmp_path / "vg").mkdir()
    with pytest.raises(SvitInputError, match="--output .* contains --annotations"):
        generate(
            SceneSource(annotations=tmp_path / "vg"), GenerationConfig(output_dir=tmp_path, client=settings)
        )
    release = release_of(tmp_path / "someone", [1])
    before = tree_snapshot(release)
    with pytest.raises(SvitInputError, match="not written by svit generate .* --overwrite"):
        generate(SceneSource(scenes=scenes), GenerationConfig(output_dir=release, client=settings))
    assert tree_snapshot(release) == before


# --- 2. Every build loads ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("images", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("split", ["seeded", "test-ids"])
def test_small_builds_load_every_declared_config(tmp_path, images, split):
    ids = list(range(1, images + 1))
    release = release_of(tmp_path / "rel", ids)
    kwargs = {}
    if split == "test-ids":
        kwargs["test_ids"] = tmp_path / "test_ids.txt"
        kwargs["test_ids"].write_text("\n".join(str(i) for i in ids[::3]) + "\n")
    llava = {
        "llava_mix": bundled.LLAVA_DIR / "llava_v1_5_mix665k.json",
        "llava_instruct": bundled.LLAVA_DIR / "llava_instruct_150k.json",
    }
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 64, "height": 48} for i in ids]))
    report = build_hub_dataset(
        release, tmp_path / "svit", "all,recipes", image_data=image_data, **kwargs, **llava
    )
    readme = (tmp_path / "svit" / "README.md").read_text()
    for config, splits in report["configs"].items():
        assert splits and all(n > 0 for n in splits.values()), (config, splits)
        # what load_dataset does, plain and streaming, from one resolution of the folder's files and card
        builder = datasets.load_dataset_builder(str(tmp_path / "svit"), config)
        builder.download_and_prepare()
        plain = builder.as_dataset()
        assert {s: plain[s].num_rows for s in plain} == splits
        streamed = builder.as_streaming_dataset()
        assert {name: sum(1 for _ in streamed[name]) for name in streamed} == splits
    for config in report.get("left_out", {}):
        assert f"config_name: {config}\n" not in readme and f"`{config}`" in readme
    assert set(report["configs"]) | set(report.get("left_out", {})) == {
        "conversation", "complex_reasoning", "referring_qa", "detail_description", "full",
        "svit_80k", "svit_80k_d", "svit_80k_b", "core_150k", "mix_665k",
    }  # fmt: skip


def test_a_named_config_with_no_rows_fails_the_build_and_a_grouped_one_is_left_out(tmp_path):
    release = write_release(tmp_path / "rel", {"referring_qa": [record(1, conversation(qa("Q?", "")))]})
    with pytest.raises(SvitInputError, match="config referring_qa would have no rows"):
        build_hub_dataset(release, tmp_path / "a", ["referring_qa"])
    assert not (tmp_path / "a").exists()
    report = build_hub_dataset(release, tmp_path / "b", "all")
    assert "referring_qa" in report["left_out"] and "referring_qa" not in report["configs"]
    assert datasets.load_dataset(str(tmp_path / "b"), "full")["train"].num_rows == 3
    empty = write_release(tmp_path / "empty", {t: [record(1, conversation(qa("Q?", "")))] for t in TASKS})
    with pytest.raises(SvitInputError, match="no config has any rows"):
        build_hub_dataset(empty, tmp_path / "c")  # "all", every one of them empty
    assert not (tmp_path / "c").exists()


# --- 4. Every record accounted for ---------------------------------------------------------------------------


def planted_faults() -> list:
    """One of each fault a release file may hold, good records between them."""
    return [
        record(1, conversation(GOOD), conversation(GOOD)),  # the second is a duplicate
        record(2, conversation(qa("Q?", "   "))),  # empty turn
        [1, 2],  # not an object
        {"image_id": "x", "conversations": []},  # no usable id
        {"image_id": 2**70, "conversations": [conversation(GOOD)]},  # id beyond int64
        {"image_id": "²", "conversations": [conversation(GOOD)]},  # not ASCII digits
        {"image_id": "١٢", "conversations": [conversation(GOOD)]},
        {"image_id": 3, "conversations": "nope"},  # wrong type, id readable
        {"image_id": 4, "conversations": [{"content": [{"from": "user", "value": 7}]}]},
        record(5, conversation(qa("Where?", "<st>ball [0.1, 0.2]"))),  # unbalanced tags
        record(6, conversation(qa("Where?", "The <st>ball<ed> [0.9, 0.2, 0.1, 0.4]."))),  # bad box
        record(7, conversation(qa("Hi", "It seems like your message is empty."))),  # failed generation
        record(8, conversation([{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}])),
        record(9, conversation(qa("Q?", "A."), [{"from": "user", "value": "dangling"}])),  # unpaired
        record(10, conversation(GOOD)),  # held out below (test ids)
        record(11, conversation(qa("Q?", "<st>x<ed> [0.1, 0.1, 0.2, 0.2]")), "broken"),  # held-out, malformed
        record(404, conversation(GOOD)),  # not in image_data.json: kept by a build, dropped by the export
        record(12, conversation(GOOD)),
    ]


def expected_units(records: list) -> int:
    """Conversations of records that parse, plus one per malformed record, counted independently."""
    units = 0
    for rec in records:
        convs = rec.get("conversations") if isinstance(rec, dict) else None
        image_id = rec.get("image_id") if isinstance(rec, dict) else None
        id_ok = isinstance(image_id, int) and 0 <= image_id < 2**63
        good = id_ok and isinstance(convs, list) and all(
            isinstance(c, dict) and isinstance(c.get("content"), list)
            and all(isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str)
                    for t in c["content"])
            for c in convs
        )  # fmt: skip
        units += len(convs) if good else 1
    return units


def test_every_record_is_kept_or_dropped_with_a_reason_per_task_and_split(tmp_path):
    records = planted_faults()
    release = write_release(tmp_path / "rel", {task: records for task in TASKS})
    test_ids = tmp_path / "test_ids.txt"
    test_ids.write_text("10\n11\n")
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 100, "height": 80} for i in range(1, 13)]))
    report = build_hub_dataset(
        release, tmp_path / "svit", image_data=image_data, test_ids=test_ids, max_bad_fraction=1.0
    )
    for task in TASKS:
        by_split = report["quality"][task]
        assert sum(rep["seen"] for rep in by_split.values()) == expected_units(records)
        assert by_split["test"]["kept"] == 1 and by_split["test"]["dropped"] == {"malformed_record": 1}
        assert by_split["train"]["dropped"] == {
            "bad_box": 1, "duplicate_sample": 1, "empty_turn": 1, "failed_generation": 1,
            "malformed_record": 7, "unbalanced_grounding_tags": 1, "unknown_speaker": 1,
            "unpaired_turns": 1,
        }  # fmt: skip
        assert by_split["train"]["kept"] == 3
    # The export counts the same way, with held-out images as `excluded`.
    result = export_llava(
        release, tmp_path / "x.json", image_data=image_data, exclude_ids=test_ids, max_bad_fraction=1.0
    )
    for task in TASKS:
        rep = result["quality"][task]
        assert rep["seen"] + rep["excluded"] == expected_units(records) and rep["excluded"] == 2
        assert rep["dropped"]["missing_image"] == 1 and rep["kept"] == 2


def test_unreadable_images_are_counted_drops_and_the_build_goes_on(tmp_path):
    release = release_of(tmp_path / "rel", [1, 2, 3, 4])
    vg = tmp_path / "vg" / "VG_100K"
    vg.mkdir(parents=True)
    Image.new("RGB", (8, 6), "red").save(vg / "1.jpg")
    (vg / "2.jpg").write_bytes(b"")
    (vg / "3.jpg").write_bytes(b"\x89garbage, not an image")
    (vg / "4.jpg").write_bytes((vg / "1.jpg").read_bytes()[:4])  # truncated to nearly nothing
    report = build_hub_dataset(release, tmp_path / "svit", ["conversation"], images_dir=tmp_path / "vg")
    quality = report["quality"]["conversation"]
    assert sum(rep["kept"] for rep in quality.values()) == 1
    assert sum(rep["dropped"].get("unreadable_image", 0) for rep in quality.values()) == 3
    rows = datasets.load_dataset(str(tmp_path / "svit"), "conversation")
    assert [r["image_id"] for split in rows.values() for r in split] == [1]


# --- 6. Values checked at the boundary ----------------------------------------------------------------------


def test_ids_must_be_ascii_digits_and_a_bom_is_skipped(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbf12\n# comment\n7\n")
    assert read_test_ids(ids) == {12, 7}
    for bad in ("²", "١٢", str(2**64)):
        ids.write_text(f"1\n{bad}\n", encoding="utf-8")
        with pytest.raises(SvitFormatError, match=r"ids\.txt:2: .* is not an image id"):
            read_test_ids(ids)
    release = tmp_path / "rel"
    write_release(release, {})
    path = release / "conversation.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([record(5, conversation(GOOD))]).encode())
    rows = list(iter_samples({"conversation": path}, ImageIndex(), defaultdict(QualityReport)))
    assert [row["image_id"] for _, row in rows] == [5]


def test_image_sizes_of_zero_or_below_are_unknown_not_divided_by(tmp_path):
    image_data = tmp_path / "image_data.json"
    image_data.write_text(
        json.dumps(
            [
                {"image_id": 1, "width": 0, "height": 10},
                {"image_id": 2, "width": -5, "height": -5},
                {"image_id": 3, "width": 20, "height": 10},
            ]
        )
    )
    sizes = {i: (info.width, info.height) for i, info in read_image_data(image_data).items()}
    assert sizes == {1: (None, None), 2: (None, None), 3: (20, 10)}
    release = release_of(tmp_path / "rel", [1, 2, 3])
    result = export_llava(release, tmp_path / "x.json", image_data=image_data, tasks=["conversation"])
    assert result["written"] == 1 and result["quality"]["conversation"]["dropped"] == {"missing_image": 2}


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ({"rpm": 0}, "--rpm"),
        ({"tpm": -1}, "--tpm"),
        ({"timeout": 0}, "--timeout"),
        ({"max_retries": -1}, "--max-retries"),
        ({"max_tokens": 0}, "--max-tokens"),
        ({"temperature": float("nan")}, "--temperature"),
        ({"base_url": "localhost:8000"}, "--base-url"),
        ({"base_url": "ftp://host/v1"}, "--base-url"),
        ({"base_url": "http://host:port/v1"}, "--base-url"),
    ],
)
def test_generation_settings_are_range_checked_before_any_request(setting, flag):
    with pytest.raises(SvitInputError, match=f"^{flag} "):
        ClientSettings(model="m", **setting)


# --- 7. Secrets -------------------------------------------------------------------------------------------


def test_credentials_in_urls_are_redacted_in_messages_and_logs():
    key = "S3cr3t" + "Value42"
    for url in (
        f"https://user:{key}@api.example.com/v1",
        f"https://api.example.com/v1?api-key={key}",
        f"http://h/v1?x=1&token={key}&y=2",
        f"https://h/v1?api_key={key}",
    ):
        assert key not in redact(f"cannot reach {url}")
    assert redact("https://user@host/v1") == "https://user@host/v1"
    record = logging.LogRecord(
        "httpx", logging.DEBUG, __file__, 1, "POST %s", (f"https://u:{key}@h/v1",), None
    )
    RedactingFilter().filter(record)
    assert key not in record.getMessage()


def test_a_key_in_base_url_never_reaches_the_cli_error_or_debug_logs(tmp_path):
    key = "S3cr3t" + "Value42"
    scenes = tmp_path / "scenes.jsonl"
    scenes.write_text(json.dumps({"image_id": 1, "width": 10, "height": 10, "objects": []}) + "\n")
    for url in (
        f"http://user:{key}@127.0.0.1:9/v1",
        f"http://127.0.0.1:9/v1?api-key={key}",
        f"localhost{key}",
    ):
        # The last is not a URL at all: the error does not repeat it.
        done = run_svit(
            ["-v", "generate", "--scenes", str(scenes), "--output", str(tmp_path / "out"), "--model", "m",
             "--base-url", url, "--max-retries", "0", "--timeout", "1"],
        )  # fmt: skip
        if url.startswith("http"):  # tried, its debug log shown: where a key in the URL would leak
            assert "DEBUG openai" in done.stderr
        assert key not in done.stdout + done.stderr
        written = [p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert not any(key in text for text in written)


# --- 8. No leftovers ------------------------------------------------------------------------------------------


def test_temp_files_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    release = release_of(tmp_path / "rel", [1, 2])
    image_data = tmp_path / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 10, "height": 10} for i in (1, 2)]))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".x.json.tmp-{pid}").write_text("[half")
    (out / f".svit.building-{pid}").mkdir()
    (out / f".svit.old-{pid}").mkdir()
    (out / f".x.json.tmp-{os.getpid()}-other").write_text("not ours")  # a live process's name shape differs
    export_llava(release, out / "x.json", image_data=image_data)
    build_hub_dataset(release, out / "svit", ["conversation"])
    assert sorted(p.name for p in out.iterdir()) == [f".x.json.tmp-{os.getpid()}-other", "svit", "x.json"]
