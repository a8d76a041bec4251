"""LLaVA-1.5 export: upstream's format/llava-v1.5 form, boxes moved exactly as upstream does."""

import json
import random

import pytest

from svit_dataset.errors import SvitInputError
from svit_dataset.export_llava import REFERRING_SUFFIXES, export_llava, to_llava_record
from tests.release_factory import conversation, qa, record, write_release


def write_image_data(path, sizes):
    path.write_text(
        json.dumps([{"image_id": i, "width": w, "height": h, "url": ""} for i, (w, h) in sizes.items()])
    )
    return path


def test_export_record_form_and_boxes(tmp_path):
    referring = record(
        7,
        conversation(
            qa(
                "Where are the <st>men<ed> [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.7]?",
                "At <st>left<ed> [0.0, 0.0, 1.0, 1.0].",
            ),
            qa("And the <st>dog<ed> [0.25, 0.5, 0.75, 1.0]?", "Next to them."),
        ),
    )
    plain = record(8, conversation(qa("What is this?", "A red ball.")))
    write_release(
        tmp_path / "rel", {"referring_qa": [referring], "conversation": [plain]}, fill_missing=False
    )
    sizes = write_image_data(tmp_path / "image_data.json", {7: (640, 480), 8: (100, 137)})
    out = tmp_path / "llava.json"
    result = export_llava(
        tmp_path / "rel", out, image_data=sizes, tasks=["conversation", "referring_qa"], seed=3
    )
    data = json.loads(out.read_text())
    assert result["written"] == 2
    assert data[0] == {
        "id": "8-conversation-0",
        "image": "VG_100K/8.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is this?"},
            {"from": "gpt", "value": "A red ball."},
        ],
    }
    turns = data[1]["conversations"]
    assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt"]
    # 640x480: shift 80 on y, hand-computed in tests/test_boxes.py
    q1, suffix1 = turns[0]["value"].rsplit("? ", 1)
    assert q1 == "<image>\nWhere are the men [0.1, 0.275, 0.3, 0.425], [0.5, 0.5, 0.6, 0.65]"
    assert suffix1 in REFERRING_SUFFIXES
    assert turns[1]["value"] == "At left [0.0, 0.125, 1.0, 0.875]."
    # 0.5 * 480 = 240 + 80 = 320 -> 0.5; 480 + 80 = 560 -> 0.875
    q2, suffix2 = turns[2]["value"].rsplit("? ", 1)
    assert q2 == "And the dog [0.25, 0.5, 0.75, 0.875]" and suffix2 in REFERRING_SUFFIXES
    assert "<st>" not in out.read_text() and "<ed>" not in out.read_text()


def test_suffixes_are_seeded():
    sample = {
        "id": "1-referring_qa-0",
        "image_path": "VG_100K/1.jpg",
        "task": "referring_qa",
        "width": 10,
        "height": 10,
        "messages": [
            {"role": "user", "content": f"Q{i}?"} if i % 2 == 0 else {"role": "assistant", "content": "A."}
            for i in range(40)
        ],
    }

    def picks(seed):
        return [t["value"] for t in to_llava_record(sample, random.Random(seed))["conversations"][::2]]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)
    assert len({p.split("? ", 1)[1] for p in picks(1)}) == 3  # all three suffixes are used


def test_export_without_sizes_is_refused(tmp_path):
    write_release(tmp_path / "rel", {})
    with pytest.raises(SvitInputError, match="--images VG_DIR or --image-data"):
        export_llava(tmp_path / "rel", tmp_path / "x.json")


def test_export_counts_images_without_size_and_excludes_test_ids(tmp_path):
    records = [record(i, conversation(qa("Q?", "A."))) for i in (1, 2, 3)]
    write_release(tmp_path / "rel", {"conversation": records}, fill_missing=False)
    sizes = write_image_data(tmp_path / "image_data.json", {1: (10, 20), 2: (30, 30)})
    test_ids = tmp_path / "test.txt"
    test_ids.write_text("2\n")
    result = export_llava(
        tmp_path / "rel", tmp_path / "x.json", image_data=sizes, tasks=["conversation"], exclude_ids=test_ids
    )
    assert [r["id"] for r in json.loads((tmp_path / "x.json").read_text())] == ["1-conversation-0"]
    assert result["quality"]["conversation"]["dropped"] == {"missing_image": 1}


def test_export_counts_malformed_records(tmp_path):
    records = [
        record(1, conversation(qa("Q?", "A."))),
        {"image_id": "x"},
        record(2, conversation(qa("Q?", "A."))),
    ]
    write_release(tmp_path / "rel", {"conversation": records}, fill_missing=False)
    sizes = write_image_data(tmp_path / "image_data.json", {1: (10, 20), 2: (30, 30)})
    result = export_llava(
        tmp_path / "rel", tmp_path / "x.json", image_data=sizes, tasks=["conversation"], max_bad_fraction=0.5
    )
    assert result["written"] == 2
    assert result["quality"]["conversation"]["dropped"] == {"malformed_record": 1}
