"""Files that are one JSON list of records, streamed both ways: the release files, LLaVA training JSON,
generation outputs, `image_data.json`. Nothing here holds a whole file in memory.

    for index, record in iter_json_list(path): ...        # ijson's C backend, a BOM skipped
    with JsonListWriter(path) as out: out.write(record)    # temp file renamed into place at the end
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ijson
import orjson
from ijson.backends import python as python_backend

from svit_dataset.errors import SvitFormatError
from svit_dataset.files import remove_stale_temps, temp_sibling

logger = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"


def iter_json_list(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(index, record) for every element of the top-level JSON list of `path`, streamed.

    A UTF-8 byte-order mark is skipped. Broken JSON (truncated, NaN literals, bytes that are not
    UTF-8) raises SvitFormatError naming the file and the last good record.
    """
    path = Path(path)
    with open(path, "rb") as f:
        start = len(UTF8_BOM) if f.read(len(UTF8_BOM)) == UTF8_BOM else 0
        f.seek(start)
        head = f.read(4096).lstrip()
        if not head.startswith(b"["):
            found = repr(head[:20]) if head else "an empty file"
            raise SvitFormatError(
                f"{path}: expected a JSON list of records at byte 0, found {found}. "
                "Pass the released SVIT file (one JSON list per task)."
            )
        f.seek(start)
        index = -1
        try:
            for index, record in enumerate(ijson.items(f, "item", use_float=True)):  # noqa: B007
                yield index, record
        except ijson.JSONError as err:
            if "integer overflow" not in str(err):
                raise _damaged(path, index, f.tell(), err) from None
            # The C parser stops at an integer beyond 64 bits (an id of 2**70, say); that is one bad
            # record, not a bad file. Python's parser reads big integers: it rereads the file, slower,
            # from the start, and yields what comes after the last record already yielded.
            logger.warning(
                "%s: an integer beyond 64 bits after record %d; reading on with the slower parser",
                path,
                index,
            )
            done = index
            f.seek(start)
            try:
                for index, record in enumerate(python_backend.items(f, "item", use_float=True)):
                    if index > done:
                        yield index, record
            except (ijson.JSONError, UnicodeDecodeError, ValueError) as err2:
                raise _damaged(path, index, f.tell(), err2) from None
        except (UnicodeDecodeError, ValueError) as err:
            raise _damaged(path, index, f.tell(), err) from None


def _damaged(path: Path, index: int, offset: int, err: Exception) -> SvitFormatError:
    after = f"after record {index}" if index >= 0 else "before the first record"
    return SvitFormatError(
        f"{path}: invalid or truncated JSON {after} (within the first {offset} bytes): "
        f"{str(err)[:200]}. The file is damaged; download or unzip it again."
    )


class JsonListWriter:
    """A JSON list written record by record to a temp file, renamed into place by `close`.

    Fragments (records already serialized and comma-separated, e.g. by a worker process) can be
    appended. Used as a context manager, an error leaves `path` as it was and no temp file behind.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self.tmp = temp_sibling(self.path)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.file.write(b"[")
        self.count = 0

    def write(self, record: Any) -> None:
        self.file.write(b",\n" if self.count else b"\n")
        self.file.write(orjson.dumps(record))
        self.count += 1

    def append_fragment(self, path: Path, records: int) -> None:
        if not records:
            return
        self.file.write(b",\n" if self.count else b"\n")
        with open(path, "rb") as f:
            shutil.copyfileobj(f, self.file)
        self.count += records

    def close(self) -> None:
        self.file.write(b"\n]\n")
        self.file.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> JsonListWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_json_list(path: str | Path, records: Iterable[Any]) -> int:
    """Write `records` as one JSON list at `path`, atomically; returns how many were written."""
    with JsonListWriter(path) as out:
        for record in records:
            out.write(record)
    return out.count
