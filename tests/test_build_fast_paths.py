"""The build's fast paths give what the plain code gives, case by case (bench/build.py times them):

- `iter_json_list` decodes chunks with orjson and hands over to ijson: the same records and the same
  errors as ijson alone, with chunks small enough that every record boundary is a chunk boundary;
- `record_conversations` and `check_conversation` (C-level maps and sets) against the versions they
  replaced (commit 98b8be8), copied below as the reference, on randomized records;
- released-form boxes are checked without float(): the same verdict as `all_boxes_valid`;
- `samples_table` builds the Arrow table `from_pylist` builds from the rows.
"""

import io
import json
import random
import sys
from collections import defaultdict
from itertools import chain
from pathlib import Path

import ijson
import pyarrow as pa
import pytest

from svit_dataset import bundled, jsonlist
from svit_dataset.boxes import BOX_PATTERN, all_boxes_valid
from svit_dataset.grounded_text import END_TAG, START_TAG, find_tags, tag_sequence_alternates
from svit_dataset.quality import (
    BAD_BOX,
    EMPTY_TURN,
    FAILED_GENERATION,
    FAILED_GENERATION_PATTERN,
    SPEAKER_ROLES,
    UNBALANCED_GROUNDING_TAGS,
    UNKNOWN_SPEAKER,
    UNPAIRED_TURNS,
    QualityReport,
    _boxes_valid,
    check_conversation,
    check_turns,
)
from svit_dataset.reader import iter_sample_tuples, samples_table
from svit_dataset.release import MalformedRecord, record_conversations
from svit_dataset.schema import ASSISTANT, SAMPLE_FEATURES, TASKS, USER
from svit_dataset.vg import ImageIndex

# --- the reference: the code before the fast paths (commit 98b8be8) --------------------------------------

_HINTS = ("empty", "provide", "include", "share", "as an ai", "sorry")


def reference_check_turns(turns) -> str | None:
    roles = [SPEAKER_ROLES.get(speaker) for speaker, _ in turns]
    if None in roles:
        return UNKNOWN_SPEAKER
    texts = [text for _, text in turns]
    if not all(map(str.strip, texts)):
        return EMPTY_TURN
    half = len(roles) // 2
    if not roles or len(roles) % 2 or roles[0::2].count(USER) != half or roles[1::2].count(ASSISTANT) != half:
        return UNPAIRED_TURNS
    answers = " ".join(texts[1::2]).lower()
    if any(hint in answers for hint in _HINTS) and FAILED_GENERATION_PATTERN.search(answers):
        return FAILED_GENERATION
    joined = "\n\n".join(texts)
    if ("<st>" in joined or "<ed>" in joined) and not (
        tag_sequence_alternates(find_tags(joined))
        and all(text.count(START_TAG) == text.count(END_TAG) for text in texts)
    ):
        return UNBALANCED_GROUNDING_TAGS
    if "[" in joined and not reference_boxes_valid(joined):
        return BAD_BOX
    return None


def reference_boxes_valid(text: str) -> bool:
    numbers = iter(list(map(float, chain.from_iterable(BOX_PATTERN.findall(text)))))
    return all(
        0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0
        for x1, y1, x2, y2 in zip(*[numbers] * 4, strict=False)
    )


def reference_record_conversations(record: dict):
    conversations = record.get("conversations")
    if not isinstance(conversations, list):
        raise MalformedRecord(f"conversations is {type(conversations).__name__}, expected a list")
    parsed = []
    for k, conversation in enumerate(conversations):
        try:
            content = conversation["content"]
            turns = tuple([(turn["from"], turn["value"]) for turn in content])
        except (KeyError, TypeError):
            raise MalformedRecord(
                f"conversations[{k}] needs a 'content' list of {{'from', 'value'}} turns"
            ) from None
        if not isinstance(content, list) or not set(map(type, chain.from_iterable(turns))) <= {str}:
            raise MalformedRecord(
                f"conversations[{k}].content needs a list of turns with string 'from' and 'value'"
            )
        topic = conversation.get("topic") or ""
        if not isinstance(topic, str):
            raise MalformedRecord(f"conversations[{k}].topic is not a string")
        parsed.append((topic, turns))
    return parsed


# --- random material ------------------------------------------------------------------------------------

SPEAKERS = ["user", "gpt", "human", "assistant", "system", "User", ""]
PIECES = [
    "A red car.", " ", "\t", "\x1c", "Yes", "<st>", "<ed>", "<st>cup<ed>", "[0.100, 0.200, 0.300, 0.400]",
    "[0.300, 0.200, 0.100, 0.400]", "[1.000, 1.000, 1.000, 1.000]", "[0.999, 0.000, 1.001, 0.5]",
    "[0.1, 0.2, 0.3, 0.4]", "[-0.000, 0.100, 0.200, 0.300]", "[1e-3, 0.1, 0.2, 0.3]", "[0.100,0.200,0.300,0.400]",
    "[ 0.100, 0.200, 0.300, 0.400 ]", "[1.500, 0.100, 1.600, 0.200]", "[note]", "[[0.100, 0.200, 0.300, 0.400]",
    "[٠.١٠٠, 0.200, 0.300, 0.400]", "It seems like your message is empty", "I'm sorry, but I cannot",
    "As an AI model", "EMPTY", "sorry", "ſorry", "as an aİ", "\n\n", "]",
]  # fmt: skip


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))


def random_turns(rng: random.Random) -> list[tuple[str, str]]:
    n = rng.choice([0, 1, 2, 2, 4, 4, 6, 3])
    if rng.random() < 0.7:
        speakers = [
            rng.choice(["user", "human"]) if i % 2 == 0 else rng.choice(["gpt", "assistant"])
            for i in range(n)
        ]
    else:
        speakers = [rng.choice(SPEAKERS) for _ in range(n)]
    return [(s, random_text(rng)) for s in speakers]


ODD = [None, 1, 1.5, True, [], {}, "x", {"from": "user"}, {"value": "v"}, ["user", "v"]]


def random_record(rng: random.Random) -> dict:
    conversations = []
    for _ in range(rng.randint(0, 3)):
        content = [{"from": s, "value": v} for s, v in random_turns(rng)]
        if content and rng.random() < 0.15:
            content[rng.randrange(len(content))] = rng.choice(ODD)
        conversation = {"content": content}
        if rng.random() < 0.1:
            conversation = {"content": rng.choice(ODD)}
        if rng.random() < 0.1:
            conversation["topic"] = rng.choice(["", "Topic: cars", None, 3])
        if rng.random() < 0.05:
            conversation = rng.choice(ODD)
        conversations.append(conversation)
    if rng.random() < 0.05:
        return {"image_id": 1, "conversations": rng.choice(ODD)}
    return {"image_id": 1, "conversations": conversations}


# --- the tests ------------------------------------------------------------------------------------------


def test_gates_give_the_reference_verdicts():
    rng = random.Random(0)
    verdicts = defaultdict(int)
    for _ in range(30_000):
        turns = random_turns(rng)
        expected = reference_check_turns(turns)
        texts = [t for _, t in turns]
        assert check_turns(turns) == expected, turns
        assert check_conversation([s for s, _ in turns], texts, [t.strip() for t in texts]) == expected
        verdicts[expected] += 1
    assert len(verdicts) == 7, verdicts  # each of the six gates fired, and some passed


def test_released_boxes_give_the_reference_verdicts():
    rng = random.Random(1)
    for _ in range(50_000):
        text = random_text(rng)
        assert _boxes_valid(text) == reference_boxes_valid(text) == all_boxes_valid(text), text
    for _ in range(20_000):  # boxes written as released, valid or not
        numbers = [
            rng.choice([f"0.{rng.randint(0, 999):03d}", "1.000", f"1.{rng.randint(0, 999):03d}"])
            for _ in range(4)
        ]
        text = "a [" + ", ".join(numbers) + "] b"
        assert _boxes_valid(text) == reference_boxes_valid(text), text


def test_record_conversations_as_the_reference():
    rng = random.Random(2)
    malformed = 0
    for _ in range(20_000):
        record = random_record(rng)
        try:
            expected = [
                (topic, [s for s, _ in turns], [t for _, t in turns])
                for topic, turns in reference_record_conversations(record)
            ]
        except MalformedRecord as err:
            with pytest.raises(MalformedRecord) as got:
                record_conversations(record)
            assert str(got.value) == str(err)
            malformed += 1
            continue
        assert record_conversations(record) == expected
    assert 1000 < malformed < 19_000


def ijson_only(path: Path) -> list:
    """What iter_json_list gave before: ijson from the start (and its own big-integer fallback)."""
    out = []
    try:
        with open(path, "rb") as f:
            start = len(jsonlist.UTF8_BOM) if f.read(3) == jsonlist.UTF8_BOM else 0
            f.seek(start)
            out.extend(jsonlist._ijson_records(f, path, start, after=-1))
    except Exception as err:  # noqa: BLE001 - compared as they come
        out.append((type(err).__name__, str(err)))
    return out


def fast(path: Path) -> list:
    out = []
    try:
        out.extend(jsonlist.iter_json_list(path))
    except Exception as err:  # noqa: BLE001
        out.append((type(err).__name__, str(err)))
    return out


FILES = {
    "plain": b'[{"a":1},{"b":"},{\\"a\\""},{"a":[1,2]}]',
    "spaces": b'  \n[ {"a":1} ,\n {"b":2}\n]\n',
    "many spaces first": b" " * 3000 + b'[{"a":1},{"a":2}]',
    "empty": b"[]",
    "empty spaced": b"[ \n ]",
    "not objects": b'[1,2,{"x":3}]',
    "first key escaped": b'[{"a\\"b":1},{"a\\"b":2}]',
    "truncated": b'[{"a":1},{"a":2},{"a":',
    "trailing garbage": b'[{"a":1},{"a":2}] x',
    "big integer": b'[{"image_id":1},{"image_id":1180591620717411303424},{"image_id":3}]',
    "below int64": b'[{"image_id":-9223372036854775809},{"image_id":1}]',
    "above int64": b'[{"image_id":9223372036854775808},{"image_id":1}]',
    "NaN": b'[{"a":1},{"a":NaN}]',
    "infinity": b'[{"a":1},{"a":1e400}]',
    "lone surrogate": b'[{"a":"\\ud800"},{"a":1}]',
    "BOM": b'\xef\xbb\xbf[{"a":1},{"a":2}]',
    "form feed": b'\x0c[{"a":1}]',
    "form feed between": b'[{"a":1},\x0c{"a":2}]',
    "invalid UTF-8": b'[{"a":1},{"a":"\xff"}]',
    "duplicate keys": b'[{"a":1,"a":2},{"a":3}]',
    "deeper than orjson reads": b'[{"a":' + b"[" * 1100 + b"]" * 1100 + b'},{"a":1}]',
}


@pytest.mark.parametrize("chunk_bytes", [8, 64, 1 << 22])
def test_json_list_reader_as_ijson_alone(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(jsonlist, "_CHUNK_BYTES", chunk_bytes)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)  # to compare the 1100-deep lists
    try:
        for name, data in FILES.items():
            path = tmp_path / name.replace(" ", "_")
            path.write_bytes(data)
            assert fast(path) == ijson_only(path), name
    finally:
        sys.setrecursionlimit(limit)
    # records whose strings hold what a boundary looks like, in files cut in every way
    rng = random.Random(3)
    values = ['a},{"image_id":1', "x", '}, {"image_id', '"},{"q', "\\", "é", " " * 50]
    records = [
        {
            "image_id": i,
            "conversations": [
                {"content": [{"from": "user", "value": rng.choice(values) * rng.randint(0, 4)}]}
            ],
        }
        for i in range(400)
    ]
    for indent in (None, 1, 4):  # compact, and as json.dump(..., indent=N) writes (issue 21: both layouts)
        path = tmp_path / f"records-{indent}.json"
        data = json.dumps(records, indent=indent, ensure_ascii=rng.random() < 0.5).encode()
        path.write_bytes(data)
        assert fast(path) == list(enumerate(records))
        for cut in sorted(rng.sample(range(1, len(data)), 30)):
            path.write_bytes(data[:cut])
            assert fast(path) == ijson_only(path), cut


@pytest.mark.parametrize("indent", [None, 4])
def test_json_list_reader_decodes_the_release_with_orjson(tmp_path, indent):
    """The fast path is taken: a release-shaped file, compact or indented, is read without a hand-over to
    ijson."""
    path = tmp_path / "conversation.json"
    records = [
        {"image_id": i, "conversations": [{"content": [{"from": "user", "value": "v"}]}]} for i in range(50)
    ]
    path.write_text(json.dumps(records, indent=indent))
    with open(path, "rb") as f:
        reader = jsonlist._fast_records(f)
        assert list(reader) == records
        assert reader.finished
    assert list(ijson.items(io.BytesIO(path.read_bytes()), "item")) == records


@pytest.mark.parametrize("images", [True, False])
def test_samples_table_is_the_table_of_the_rows(images):
    files = {task: bundled.RELEASE_DIR / f"{task}.json" for task in TASKS}
    index = ImageIndex(bundled.IMAGES_DIR) if images else ImageIndex()
    samples = [
        s for _, s in iter_sample_tuples(files, index, defaultdict(QualityReport), embed_images=images)
    ]
    schema = SAMPLE_FEATURES.arrow_schema
    for batch in (samples, samples[5:6], samples[7:40], []):
        table = samples_table(batch)
        assert table.equals(pa.Table.from_pylist([s.row() for s in batch], schema=schema))
        assert table.schema.equals(schema, check_metadata=True)


@pytest.mark.parametrize("broken", ["conversation", "detail_description"])
def test_an_error_in_either_process_fails_the_build_and_leaves_nothing(tmp_path, broken):
    """With worker processes, this process builds tasks too: an error in a task of either one stops
    the handing out of tasks, fails the build with its message and leaves no output folder."""
    from svit_dataset.errors import SvitFormatError
    from svit_dataset.hub_build.engine import build_hub_dataset
    from tests.release_factory import conversation, qa, record, write_release

    good = [record(i, conversation(qa("What is this?", "A red ball."))) for i in range(1, 30)]
    release = write_release(tmp_path / "rel", {t: good for t in TASKS} | {broken: json.dumps(good)[:-40]})
    with pytest.raises(SvitFormatError, match=f"{broken}.json: invalid or truncated JSON"):
        build_hub_dataset(release, tmp_path / "out", "all", num_proc=2)
    assert [p.name for p in tmp_path.iterdir()] == ["rel"]  # no output, no staging folder left
