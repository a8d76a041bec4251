"""One home each: the LLaVA conversation format, JSON-list reading, run facts and standalone-module vendoring,
and every former home agreeing with (or reading through) the one that stays."""

from __future__ import annotations

import inspect
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from svit_dataset import jsonlist
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.export_llava import to_llava_record
from svit_dataset.facts import RUN_FACTS_FILE, holds_run_facts, read_run_facts, recorded_run_facts
from svit_dataset.jsonlist import MAX_JSON_DEPTH, iter_json_list, json_object_or_empty
from svit_dataset.llava_format import (
    IMAGE_TOKEN,
    LLAVA_JSON,
    LLAVA_ROLES,
    LLAVA_SPEAKERS,
    llava_messages,
    llava_turn,
    strip_image_token,
    with_image_token,
)
from svit_dataset.quality import SPEAKER_ROLES
from svit_dataset.recipes.mix import kept_llava_records, read_instruct_index, svit_row, turn_text
from svit_dataset.release import RELEASE_SPEAKERS
from svit_dataset.schema import ASSISTANT, REFERRING_QA, USER

DEEP = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)

# --- the LLaVA conversation format -------------------------------------------------------------------------


def _sample(task="conversation") -> dict:
    return {
        "id": "7-conversation-0",
        "image_id": 7,
        "task": task,
        "image_path": "VG_100K/7.jpg",
        "width": 640,
        "height": 480,
        "topic": "",
        "messages": [
            {"role": USER, "content": "Where is the <st>ball<ed> [0.1, 0.2, 0.3, 0.4]?"},
            {"role": ASSISTANT, "content": "On the left."},
            {"role": USER, "content": "And then?"},
            {"role": ASSISTANT, "content": "Nothing."},
        ],
    }


def test_speakers_map_both_ways_and_every_reader_agrees():
    assert LLAVA_ROLES == {"human": USER, "gpt": ASSISTANT}
    assert {role: speaker for speaker, role in LLAVA_ROLES.items()} == LLAVA_SPEAKERS
    # the quality gate knows the release's speakers, LLaVA's and chat's, each with its own role
    assert SPEAKER_ROLES == {"user": USER, "human": USER, "gpt": ASSISTANT, "assistant": ASSISTANT}
    assert RELEASE_SPEAKERS == {USER: "user", ASSISTANT: "gpt"}


def test_a_record_written_by_the_export_reads_back_as_its_messages():
    sample = _sample()
    record = to_llava_record(sample, random.Random(0))
    turns = record["conversations"]
    assert turns[0] == llava_turn(USER, with_image_token("Where is the ball [0.1, 0.275, 0.3, 0.425]?"))
    assert [t["value"].count(IMAGE_TOKEN) for t in turns] == [1, 0, 0, 0]
    messages = llava_messages(record)
    assert [m["role"] for m in messages] == [m["role"] for m in sample["messages"]]
    assert messages[0]["content"] == "Where is the ball [0.1, 0.275, 0.3, 0.425]?"
    assert messages[1:] == sample["messages"][1:]
    # the mix's row of a core sample: the same messages through the mix's own text rule
    assert svit_row(sample, record)["messages"] == messages


@pytest.mark.parametrize(
    "text, stripped, mix_text",
    [
        ("<image>\nWhat is it?", "What is it?", "What is it?"),
        ("What is it?\n<image>", "What is it?", "What is it?"),
        ("  <image>What is it? ", "What is it?", "What is it?"),
        ("A\n<image>\nB", "A\nB", "A\n\nB"),  # only a token inside the text tells the two rules apart
    ],
)
def test_image_token_removal(text, stripped, mix_text):
    assert strip_image_token(text) == stripped
    assert turn_text(text) == mix_text


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "1"}, "no 'conversations' list"),
        ({"conversations": []}, "no 'conversations' list"),
        ([1, 2], "no 'conversations' list"),
        ({"conversations": [{"from": "user", "value": "hi"}]}, "a turn is not {'from': 'human'|'gpt'"),
        ({"conversations": [{"from": "gpt", "value": 3}]}, "a turn is not {'from': 'human'|'gpt'"),
        ({"conversations": ["hi"]}, "a turn is not"),
    ],
)
def test_llava_messages_says_what_is_wrong(record, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        llava_messages(record)


def test_referring_records_keep_the_format():
    record = to_llava_record(_sample(REFERRING_QA), random.Random(1))
    assert record["conversations"][0]["value"].startswith(with_image_token("Where is the ball"))
    assert [t["from"] for t in record["conversations"]] == ["human", "gpt", "human", "gpt"]


def test_model_side_image_tokens_are_the_formats():
    from svit_model import building, tiny
    from svit_model.processing_svit_llava import PLAIN_TEMPLATE, SvitLlavaProcessor

    assert building.IMAGE_TOKEN == tiny.IMAGE_TOKEN == IMAGE_TOKEN
    # the processor runs as remote code without svit: its literal must be the format's
    assert inspect.signature(SvitLlavaProcessor).parameters["image_token"].default == IMAGE_TOKEN
    assert f"'{IMAGE_TOKEN}'" in PLAIN_TEMPLATE


# --- JSON-list reading ---------------------------------------------------------------------------------------


def _llava_records(n: int) -> list[dict]:
    return [
        {
            "id": f"{i:012d}",
            "image": f"coco/train2017/{i:012d}.jpg",
            "conversations": [
                {"from": "human", "value": with_image_token("q" * (i % 17))},
                {"from": "gpt", "value": "a [0.1, 0.2, 0.3, 0.4]" * (i % 5), "n": [i, {"k": None}]},
            ],
        }
        for i in range(n)
    ]


def test_one_reader_streams_llava_json_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonlist, "_CHUNK_BYTES", 64)  # records straddle many chunk boundaries
    records = _llava_records(300)
    path = tmp_path / "a.json"
    path.write_text("\ufeff [\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n", encoding="utf-8")
    assert list(iter_json_list(path, expected=LLAVA_JSON)) == list(enumerate(records))


def test_one_reader_names_the_file_and_what_to_pass(tmp_path):
    records = _llava_records(20)
    truncated = tmp_path / "b.json"
    truncated.write_text(json.dumps(records)[:-30])
    with pytest.raises(SvitFormatError, match=r"b\.json: invalid or truncated JSON after record 18"):
        list(iter_json_list(truncated))
    not_a_list = tmp_path / "c.json"
    not_a_list.write_text('{"not": "a list"}')
    with pytest.raises(
        SvitFormatError, match=r"c\.json: expected a JSON list .* Pass the released SVIT file"
    ):
        list(iter_json_list(not_a_list))
    # the mix's two LLaVA inputs ask for LLaVA training JSON, not a release file
    with pytest.raises(SvitFormatError, match=r"c\.json: expected a JSON list .* Pass LLaVA training JSON"):
        read_instruct_index(not_a_list)
    instruct = tmp_path / "instruct.json"
    instruct.write_text(json.dumps(records[:2]))
    with pytest.raises(SvitFormatError, match=r"c\.json: expected a JSON list .* Pass LLaVA training JSON"):
        list(kept_llava_records(not_a_list, instruct, {}))


def test_the_mix_reads_its_inputs_with_the_one_reader(tmp_path):
    records = _llava_records(6)
    mix, instruct = tmp_path / "mix.json", tmp_path / "instruct.json"
    mix.write_text(json.dumps(records))
    instruct.write_text(json.dumps(records[:2]))
    counts: dict = {}
    kept = list(kept_llava_records(mix, instruct, counts))
    assert [row_id for _, row_id in kept] == [r["id"] for r in records[2:]]
    assert counts["replaced"] == 2 and counts["llava_mix_records"] == 6
    deep = tmp_path / "deep.json"
    deep.write_bytes(DEEP)
    with pytest.raises(SvitFormatError, match=r"deep\.json: JSON nested deeper"):
        list(kept_llava_records(deep, instruct, {}))


# --- run facts -----------------------------------------------------------------------------------------------


def test_run_facts_read_strictly_with_one_line_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert not holds_run_facts(run)
    with pytest.raises(
        SvitInputError, match=rf"{RUN_FACTS_FILE}: not found; pass a folder written by `svit train`"
    ):
        read_run_facts(run)
    facts = run / RUN_FACTS_FILE
    facts.write_text('{"stage": "finetune", "hub_model_id": "org/m"}')
    assert holds_run_facts(run)
    assert read_run_facts(run) == recorded_run_facts(run) == {"stage": "finetune", "hub_model_id": "org/m"}
    for text, error in (
        ("{broken", SvitInputError),
        ("[1, 2]", SvitInputError),
        (DEEP.decode(), SvitFormatError),
    ):
        facts.write_text(text)
        with pytest.raises(error) as raised:
            read_run_facts(run, fix="pass the run folder")
        message = str(raised.value)
        assert str(facts) in message and "\n" not in message
        assert message.endswith("pass the run folder") or "nested deeper" in message
        assert recorded_run_facts(run) == {}  # the lenient reader: unknown, not an error
    facts.write_bytes(b"\xff\xfe")
    assert recorded_run_facts(run) == {} and json_object_or_empty(tmp_path / "missing.json") == {}
    assert recorded_run_facts(tmp_path / "no-such-run") == {}


# --- standalone-module vendoring -----------------------------------------------------------------------------


def test_remote_code_and_space_copies_come_from_one_home():
    from svit_model.vendoring import (
        BOXES,
        DRAW,
        GROUNDED_TEXT,
        REMOTE_CODE_MODULES,
        SPACE_MODULES,
        svit_imports,
        vendored_sources,
    )

    remote = vendored_sources(REMOTE_CODE_MODULES, relative=True)
    space = vendored_sources(SPACE_MODULES, relative=False)
    assert set(remote) == {"svit_boxes.py", "svit_grounding.py"}
    assert set(space) == {"svit_draw.py", "svit_boxes.py"}
    assert "from .svit_boxes import BOX_PATTERN" in remote[GROUNDED_TEXT.file_name]
    assert "from svit_boxes import to_pixels" in space[DRAW.file_name]
    assert remote[BOXES.file_name] == space[BOXES.file_name] == Path(BOXES_SOURCE).read_text(encoding="utf-8")
    for source in [*remote.values(), *space.values()]:
        assert svit_imports(source) == []


BOXES_SOURCE = Path(__file__).resolve().parents[1] / "svit_dataset" / "boxes.py"


def test_vendoring_refuses_a_copy_that_still_imports_svit():
    from svit_model.vendoring import GROUNDED_TEXT, vendored_sources

    # the grounded-text module alone: its import of the box module has no copy to point at
    with pytest.raises(
        RuntimeError, match=r"svit_dataset\.grounded_text imports svit .*from svit_dataset\.boxes import"
    ):
        vendored_sources([GROUNDED_TEXT], relative=True)


def test_the_processor_imports_the_copies_the_checkpoint_gets(tmp_path):
    from svit_model import processing_svit_llava
    from svit_model.vendoring import REMOTE_CODE_MODULES, vendored_sources

    source = Path(processing_svit_llava.__file__).read_text(encoding="utf-8")
    for vendored in REMOTE_CODE_MODULES:
        assert f"from .{vendored.copy} import" in source
    written = processing_svit_llava.write_processor_code(tmp_path)
    assert sorted(Path(p).name for p in written) == sorted(
        ["processing_svit_llava.py", *(m.file_name for m in REMOTE_CODE_MODULES)]
    )
    for name, text in vendored_sources(REMOTE_CODE_MODULES, relative=True).items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text


RESAVE_WITHOUT_SVIT = textwrap.dedent(
    """
    import sys
    from transformers import AutoProcessor
    try:
        import svit_model
    except ImportError:
        pass
    else:
        raise SystemExit("svit is importable: the test would prove nothing")
    processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
    assert type(processor).__name__ == "SvitLlavaProcessor"
    processor.save_pretrained(sys.argv[2])
    """
)


@pytest.mark.slow
def test_a_processor_loaded_as_remote_code_saves_the_same_code(tiny_processor, tmp_path):
    """Saved again where svit is missing, the processor writes the copies it was loaded with."""
    first, second = tmp_path / "first", tmp_path / "second"
    tiny_processor.save_pretrained(first)
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {
        **os.environ,
        "PYTHONPATH": site_packages,  # `-S` skips site: svit's editable-install hook never runs
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", RESAVE_WITHOUT_SVIT, str(first), str(second)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("processing_svit_llava.py", "svit_boxes.py", "svit_grounding.py"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
