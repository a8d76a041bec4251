"""Reading released files: format errors name the file and position; bad conversations are counted."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.quality import QualityReport, check_turns
from svit_dataset.reader import iter_samples
from svit_dataset.release import release_file
from svit_dataset.vg import ImageIndex
from tests.release_factory import conversation, qa, record, write_release

GOOD = qa("What color is the ball?", "The ball is red.")


def read_all(path: Path, max_bad_fraction: float = 0.001):
    reports = defaultdict(QualityReport)
    rows = [
        row
        for _, row in iter_samples(
            {"conversation": path}, ImageIndex(), reports, max_bad_fraction=max_bad_fraction
        )
    ]
    return rows, reports[("conversation", "train")]


def test_truncated_json_names_file_and_position(tmp_path):
    text = json.dumps([record(1, conversation(GOOD)), record(2, conversation(GOOD))])
    write_release(tmp_path, {"conversation": text[: len(text) - 30]})
    with pytest.raises(
        SvitFormatError,
        match=r"conversation\.json: invalid or truncated JSON after record 0 \(within the first",
    ):
        read_all(tmp_path / "conversation.json")


def test_top_level_not_a_list(tmp_path):
    write_release(tmp_path, {"conversation": json.dumps({"image_id": 1})})
    with pytest.raises(
        SvitFormatError, match=r"conversation\.json: expected a JSON list of records at byte 0"
    ):
        read_all(tmp_path / "conversation.json")


def test_wrong_types_fail_past_threshold_naming_record(tmp_path):
    records = [
        record(1, conversation(GOOD)),
        {"image_id": "abc", "conversations": []},
        record(3, conversation(GOOD)),
    ]
    write_release(tmp_path, {"conversation": records})
    with pytest.raises(
        SvitFormatError,
        match=r"conversation\.json: 1 of 3 records have wrong types \(first at record 1: image_id is 'abc'",
    ):
        read_all(tmp_path / "conversation.json")


def test_wrong_types_are_counted_under_a_raised_threshold(tmp_path):
    records = [
        record(1, conversation(GOOD)),
        {"image_id": 2, "conversations": [{"content": [{"from": "user", "value": 7}]}]},
        [1, 2, 3],
        record(4, conversation(GOOD)),
    ]
    write_release(tmp_path, {"conversation": records})
    rows, report = read_all(tmp_path / "conversation.json", max_bad_fraction=0.5)
    assert [r["image_id"] for r in rows] == [1, 4]
    assert report.dropped == {"malformed_record": 2}
    assert (
        "record 1: conversations[0].content needs a list of turns with string 'from' and 'value'"
        in report.examples["malformed_record"][0]
    )


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        (qa("What is it?", ""), "empty_turn"),
        (qa("What is it?", "   "), "empty_turn"),
        (qa("What is it?", "A ball.", gpt="bot"), "unknown_speaker"),
        (qa("What is it?", "A ball.", user="system"), "unknown_speaker"),
        ([{"from": "user", "value": "What is it?"}], "unpaired_turns"),
        ([{"from": "gpt", "value": "A ball."}, {"from": "user", "value": "What?"}], "unpaired_turns"),
        (GOOD + [{"from": "user", "value": "And?"}], "unpaired_turns"),
        ([], "unpaired_turns"),
        ([{"from": "user", "value": "Q?"}, {"from": "human", "value": "Q2?"}], "unpaired_turns"),
        (GOOD + qa("Q?", "A.")[::-1], "unpaired_turns"),
        (
            qa("Describe.", "It seems like your message is empty. Could you please provide the captions?"),
            "failed_generation",
        ),
        (qa("Describe.", "As an AI language model, I cannot see images."), "failed_generation"),
        (qa("Where is it?", "The <st>cup [0.1, 0.1, 0.2, 0.2] is here."), "unbalanced_grounding_tags"),
        (qa("Where is it?", "The <st>cup<ed> <ed> [0.1, 0.1, 0.2, 0.2]."), "unbalanced_grounding_tags"),
        (qa("Where is it?", "The <st>cup<ed> [0.7, 0.1, 0.2, 0.5]."), "bad_box"),
        (qa("Where is it?", "The <st>cup<ed> [0.1, 0.1, 1.2, 0.5]."), "bad_box"),
        (qa("Where is [0.1, -0.1, 0.2, 0.5]?", "There."), "bad_box"),
        (qa("Describe.", "I'm sorry, but I can't see any image here."), "failed_generation"),
        (qa("Is there a cat?", "I'm sorry, but there is no cat in the image."), None),
        (GOOD, None),
        (qa("Where?", "The <st>men<ed> [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.7]."), None),
        (qa("Hi", "Hello", user="human"), None),
    ],
)
def test_check_turns_reason_codes(turns, reason):
    assert check_turns([(t["from"], t["value"]) for t in turns]) == reason


def test_every_conversation_is_kept_or_counted(tmp_path):
    bad_box = qa("Where?", "The <st>cup<ed> [0.7, 0.1, 0.2, 0.5].")
    records = [
        record(1, conversation(GOOD, topic="Colors"), conversation(qa("Hi", "")), conversation(GOOD, GOOD)),
        record(2, conversation(bad_box), conversation(qa("Q?", "A.", gpt="bot"))),
        record(1, conversation(GOOD, topic="Colors")),  # the same image again, same content: duplicate
        record(1, conversation(qa("Is it big?", "Yes, it is."))),  # the same image again, new content: kept
    ]
    write_release(tmp_path, {"conversation": records})
    rows, report = read_all(tmp_path / "conversation.json")
    assert [r["id"] for r in rows] == ["1-conversation-0", "1-conversation-1", "1-conversation-2"]
    assert rows[0]["topic"] == "Colors" and rows[1]["topic"] == ""
    assert rows[0]["messages"] == [
        {"role": "user", "content": "What color is the ball?"},
        {"role": "assistant", "content": "The ball is red."},
    ]
    assert report.dropped == {"empty_turn": 1, "bad_box": 1, "unknown_speaker": 1, "duplicate_sample": 1}
    assert report.seen == 7 and report.kept == 3
    assert report.examples["bad_box"] == ["conversation.json record 1 conversation 0 (image 2)"]


def test_missing_release_file_says_what_to_pass(tmp_path):
    with pytest.raises(SvitInputError, match=r"referring_qa\.json: not found\. --input must be a folder"):
        release_file(tmp_path, "referring_qa")


def test_stream_reader_skips_unwanted_images_before_parsing_turns(tmp_path):
    write_release(tmp_path, {"conversation": [record(i, conversation(GOOD)) for i in range(10)]})
    path = tmp_path / "conversation.json"
    # Odd images are left out; their conversations are broken, but they are never read, only counted.
    records = [record(i, conversation(GOOD) if i % 2 == 0 else "not a conversation") for i in range(10)]
    write_release(tmp_path, {"conversation": records})
    reports = defaultdict(QualityReport)
    split_of = lambda i: "train" if i % 2 == 0 else None  # noqa: E731
    got = [
        row["image_id"]
        for _, row in iter_samples(
            {"conversation": path}, ImageIndex(), reports, split_of=split_of, max_bad_fraction=0.0
        )
    ]
    assert got == [0, 2, 4, 6, 8]
    assert reports[("conversation", "train")].excluded == 5 and not reports[("conversation", "train")].dropped
