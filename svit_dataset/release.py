"""Reader of the released SVIT files (BAAI/SVIT `data/<task>.json`).

A file is one JSON list of records
`{"image_id": int, "conversations": [{"content": [{"from": "user"|"gpt", "value": str}, ...]}, ...]}`
(REFERENCE.md section 1). Files are hundreds of MB, so records are streamed one at a time with
ijson's C backend; no file is ever held in memory as Python objects.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import ijson

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.schema import TASKS

logger = logging.getLogger(__name__)


class MalformedRecord(ValueError):
    """A record whose fields have the wrong types; the message says which field."""


@dataclasses.dataclass(frozen=True)
class ReleaseConversation:
    """One conversation of one record, with its raw (speaker, text) turns."""

    image_id: int
    turns: tuple[tuple[str, str], ...]
    topic: str
    where: str  # "referring_qa.json record 12 conversation 0": how a person finds it in the file


def release_file(release_dir: str | Path, task: str) -> Path:
    """Path of the released file of `task`, with an error that says what is missing."""
    if task not in TASKS:
        raise SvitInputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    path = Path(release_dir) / f"{task}.json"
    if not path.is_file():
        raise SvitInputError(
            f"{path}: not found. --input must be a folder holding the released files "
            f"({', '.join(t + '.json' for t in TASKS)}), unzipped."
        )
    return path


def iter_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(index, record) for every element of the top-level JSON list of `path`, streamed."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:].lstrip()
        if not head.startswith(b"["):
            raise SvitFormatError(
                f"{path}: expected a JSON list of records at byte 0, found {head[:20]!r}. "
                "Pass the released SVIT file (one JSON list per task)."
            )
        f.seek(0)
        index = -1
        try:
            for index, record in enumerate(ijson.items(f, "item", use_float=True)):  # noqa: B007
                yield index, record
        except ijson.JSONError as err:
            raise SvitFormatError(
                f"{path}: invalid or truncated JSON after record {index} (within the first {f.tell()} bytes): {err}. "
                "The file is damaged; download or unzip it again."
            ) from None


def record_image_id(record: Any) -> int:
    """The image id of a record; raises MalformedRecord when there is none."""
    if not isinstance(record, dict):
        raise MalformedRecord(f"record is a {type(record).__name__}, expected an object")
    image_id = record.get("image_id")
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        return image_id
    if isinstance(image_id, str) and image_id.strip().isdigit():
        return int(image_id)
    raise MalformedRecord(f"image_id is {image_id!r}, expected an integer")


def record_conversations(record: dict) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """[(topic, turns), ...] of a record whose image id was read; raises MalformedRecord on wrong types."""
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


def parse_record(record: Any) -> tuple[int, list[tuple[str, tuple[tuple[str, str], ...]]]]:
    """(image_id, [(topic, turns), ...]) of one record; raises MalformedRecord on wrong types."""
    image_id = record_image_id(record)
    return image_id, record_conversations(record)


@dataclasses.dataclass
class MalformedTally:
    """Malformed records of one file: counted, and fatal past `max_fraction` of the records."""

    path: Path
    max_fraction: float
    records: int = 0
    malformed: int = 0
    first: str = ""

    def add(self, index: int, why: str) -> None:
        self.malformed += 1
        if not self.first:
            self.first = f"record {index}: {why}"
        logger.warning("%s: record %d skipped: %s", self.path.name, index, why)

    def check(self) -> None:
        if self.malformed > self.max_fraction * self.records:
            raise SvitFormatError(
                f"{self.path}: {self.malformed} of {self.records} records have wrong types "
                f"(first at {self.first}), over the limit of {self.max_fraction:.2%}. "
                "Fix the file, or raise --max-bad-fraction to skip them."
            )


def iter_conversations(
    path: Path, tally: MalformedTally, wanted_image: Any = None
) -> Iterator[ReleaseConversation | tuple[int, str]]:
    """Conversations of a released file, in file order.

    Malformed records are counted in `tally` and yielded as `(record index, why)` so the caller can
    report them; `wanted_image(image_id) -> bool` skips records early (the other split's images).
    """
    name = path.name
    for index, record in iter_records(path):
        tally.records += 1
        try:
            image_id = record_image_id(record)
            # The image decides the split: skip the other split's records before reading their turns.
            if wanted_image is not None and not wanted_image(image_id):
                continue
            conversations = record_conversations(record)
        except MalformedRecord as err:
            tally.add(index, str(err))
            yield index, str(err)
            continue
        for k, (topic, turns) in enumerate(conversations):
            yield ReleaseConversation(image_id, turns, topic, f"{name} record {index} conversation {k}")
    tally.check()
