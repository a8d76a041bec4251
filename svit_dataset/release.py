"""Reader of the released SVIT files (BAAI/SVIT `data/<task>.json`).

A file is one JSON list of records
`{"image_id": int, "conversations": [{"content": [{"from": "user"|"gpt", "value": str}, ...]}, ...]}`
(`RELEASE_SPEAKERS`; `svit_dataset.generation.output.release_record` writes it). Files are hundreds of MB, so
records are streamed one at a time (`svit_dataset.jsonlist.iter_json_list`); no file is ever held in memory
as Python objects.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import iter_json_list
from svit_dataset.schema import ASSISTANT, TASKS, USER
from svit_dataset.settings import check_number

logger = logging.getLogger(__name__)

MAX_IMAGE_ID = 2**63 - 1  # image_id is an int64 column
# A chat role -> a released turn's `from` (upstream's labels).
RELEASE_SPEAKERS = {USER: "user", ASSISTANT: "gpt"}
# Malformed records (wrong types) a file may hold before it is refused as not what it claims to be.
MAX_BAD_FRACTION = 0.001


class MalformedRecord(ValueError):
    """A record whose fields have the wrong types; the message says which field."""


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
    """(index, record) of a released file: the one streaming JSON-list reader (svit_dataset.jsonlist)."""
    return iter_json_list(path)


def record_image_id(record: Any) -> int:
    """The image id of a record; raises MalformedRecord when there is none.

    An id is a non-negative int64, given as a JSON integer or a string of ASCII digits (`"²"` and
    Arabic-Indic digits are not ids, whatever `str.isdigit` says).
    """
    if not isinstance(record, dict):
        raise MalformedRecord(f"record is a {type(record).__name__}, expected an object")
    image_id = record.get("image_id")
    if isinstance(image_id, str) and is_ascii_digits(image_id.strip()):
        image_id = int(image_id.strip())
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        if 0 <= image_id <= MAX_IMAGE_ID:
            return image_id
        raise MalformedRecord(f"image_id {image_id} is out of range (0 to 2**63-1)")
    raise MalformedRecord(f"image_id is {str(image_id)[:40]!r}, expected an integer")


def is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def record_conversations(record: dict) -> list[tuple[str, list[str], list[str]]]:
    """[(topic, speakers, texts), ...] of a record whose image id was read: each conversation's turns as
    two lists of strings (the raw `from` labels, the `value` texts). Raises MalformedRecord on wrong types."""
    conversations = record.get("conversations")
    if not isinstance(conversations, list):
        raise MalformedRecord(f"conversations is {type(conversations).__name__}, expected a list")
    parsed = []
    for k, conversation in enumerate(conversations):
        try:
            content = conversation["content"]
            # map with itemgetter: the per-turn loop runs in C (8.5M turns in the release)
            speakers = list(map(_FROM, content))
            texts = list(map(_VALUE, content))
        except (KeyError, TypeError):
            raise MalformedRecord(
                f"conversations[{k}] needs a 'content' list of {{'from', 'value'}} turns"
            ) from None
        if not isinstance(content, list) or not _STR_ONLY.issuperset(map(type, chain(speakers, texts))):
            raise MalformedRecord(
                f"conversations[{k}].content needs a list of turns with string 'from' and 'value'"
            )
        topic = conversation.get("topic") or ""
        if not isinstance(topic, str):
            raise MalformedRecord(f"conversations[{k}].topic is not a string")
        parsed.append((topic, speakers, texts))
    return parsed


_FROM = operator.itemgetter("from")
_VALUE = operator.itemgetter("value")
_STR_ONLY = frozenset({str})


@dataclasses.dataclass
class MalformedTally:
    """Malformed records of one file: counted, and fatal past `max_fraction` of the records."""

    path: Path
    max_fraction: float
    # what the error tells the user to do: commands with a --max-bad-fraction flag say to raise it
    fix: str = "Fix the file, or raise --max-bad-fraction to skip them."
    records: int = 0
    malformed: int = 0
    first: str = ""

    def __post_init__(self):
        # `malformed > nan * records` is never true: a NaN limit would switch the gate off
        check_number("--max-bad-fraction", self.max_fraction, 0, 1)

    def add(self, index: int, why: str) -> None:
        self.malformed += 1
        if not self.first:
            self.first = f"record {index}: {why}"
        logger.warning("%s: record %d skipped: %s", self.path.name, index, why)

    def check(self) -> None:
        if self.malformed > self.max_fraction * self.records:
            raise SvitFormatError(
                f"{self.path}: {self.malformed} of {self.records} records have wrong types "
                f"(first at {self.first}), over the limit of {self.max_fraction:.2%}. {self.fix}"
            )
