"""The bundled format sample: deterministic, self-consistent, and current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from tools import sample_maker
from tools.sample_maker import BAD_BOX, BAD_RECORDS, SAMPLE_DIR, TEST_IMAGE_IDS, write_sample

BOX = re.compile(r"\[(\d+\.\d+), (\d+\.\d+), (\d+\.\d+), (\d+\.\d+)\]")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_sample(out)
    return out


def _load(root: Path, relative: str):
    return json.loads((root / relative).read_text(encoding="utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_runs_are_byte_identical(sample, tmp_path):
    write_sample(tmp_path)
    first, second = _files(sample), _files(tmp_path)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_sample_is_small():
    assert sum(len(b) for b in sample_maker.build_sample().values()) < 1_500_000


def test_shipped_text_files_are_current(sample):
    """Nobody edits the sample by hand. JPEG bytes may differ between Pillow builds: sizes only."""
    shipped = _files(SAMPLE_DIR)
    fresh = _files(sample)
    assert set(fresh) <= set(shipped)
    for name, data in fresh.items():
        if name.endswith(".jpg"):
            continue
        assert shipped[name] == data, f"{name} is stale: run `python -m tools.sample_maker`"


def test_image_sizes_match_image_data(sample):
    image_data = _load(sample, "annotations/image_data.json")
    assert len(image_data) == 36
    for entry in image_data:
        folder = "VG_100K" if entry["image_id"] < 2_000_000 else "VG_100K_2"
        with Image.open(sample / "images" / folder / f"{entry['image_id']}.jpg") as image:
            assert image.size == (entry["width"], entry["height"]), entry["image_id"]


def test_referring_boxes_are_object_boxes(sample):
    sizes = {e["image_id"]: (e["width"], e["height"]) for e in _load(sample, "annotations/image_data.json")}
    objects = {}
    for entry in _load(sample, "annotations/objects.json"):
        w, h = sizes[entry["image_id"]]
        objects[entry["image_id"]] = [
            (o["x"] / w, o["y"] / h, (o["x"] + o["w"]) / w, (o["y"] + o["h"]) / h) for o in entry["objects"]
        ]
    bad_box_image = next(b.image_id for b in BAD_RECORDS if b.reason == "bad_box")
    checked = edge_boxes = 0
    for record in _load(sample, "release/referring_qa.json"):
        for conversation in record["conversations"]:
            for turn in conversation["content"]:
                for match in BOX.finditer(turn["value"]):
                    if record["image_id"] == bad_box_image and match.group(0) == BAD_BOX:
                        continue
                    box = tuple(float(v) for v in match.groups())
                    assert any(
                        all(abs(a - b) <= 0.0005 + 1e-9 for a, b in zip(box, ref, strict=True))
                        for ref in objects[record["image_id"]]
                    ), (record["image_id"], match.group(0))
                    edge_boxes += 0.0 in box or 1.0 in box
                    checked += 1
    assert checked > 500
    assert edge_boxes > 0


def test_bad_records_are_planted_once_each(sample):
    assert len({b.image_id for b in BAD_RECORDS}) == len(BAD_RECORDS)
    assert not {b.image_id for b in BAD_RECORDS} & set(TEST_IMAGE_IDS)
    referring = _load(sample, "release/referring_qa.json")
    duplicate = next(b.image_id for b in BAD_RECORDS if b.reason == "duplicate_sample")
    assert [r["image_id"] for r in referring].count(duplicate) == 2
    details = _load(sample, "release/detail_description.json")
    failed = [
        r["image_id"]
        for r in details
        if "your message is empty" in r["conversations"][0]["content"][1]["value"]
    ]
    assert failed == [next(b.image_id for b in BAD_RECORDS if b.reason == "failed_generation")]
    readme = (sample / "README.md").read_text()
    assert "not SVIT data" in readme
    for bad in BAD_RECORDS:
        assert f"| `{bad.file}` | {bad.image_id} | `{bad.reason}` |" in readme


def test_task_shapes_and_yes_no_balance(sample):
    stats = sample_maker.sample_stats(
        {name: _load(sample, f"release/{name}") for name in sample_maker.RELEASE_FILES}
    )
    assert stats["conversation.json"]["samples"] == 3 * 36
    assert stats["referring_qa.json"]["records"] == 37  # one verbatim duplicate
    assert stats["detail_description.json"]["qas"] == 36
    yes = stats["conversation.json"]["yes"] + stats["complex_reasoning.json"]["yes"]
    no = stats["conversation.json"]["no"] + stats["complex_reasoning.json"]["no"]
    assert 8 <= yes / no <= 10
    text = "".join((sample / "release" / name).read_text() for name in sample_maker.RELEASE_FILES)
    assert "<image>" not in text
    assert [int(line) for line in (sample / "test_image_ids.txt").read_text().split()] == list(TEST_IMAGE_IDS)


def test_llava_pair_shares_the_instruct_samples(sample):
    instruct = _load(sample, "llava/llava_instruct_150k.json")
    mix = {s["id"]: s for s in _load(sample, "llava/llava_v1_5_mix665k.json")}
    for item in instruct:
        assert mix[item["id"]]["image"] == f"coco/train2017/{item['image']}"
        assert mix[item["id"]]["conversations"] == item["conversations"]
    assert any("image" not in s for s in mix.values())
