"""Files that are one JSON list of records, streamed both ways: the release files, LLaVA training JSON,
generation outputs, `image_data.json`. Nothing here holds a whole file in memory.

    for index, record in iter_json_list(path): ...        # orjson a chunk at a time, else ijson; a BOM skipped
    with JsonListWriter(path) as out: out.write(record)    # temp file renamed into place at the end
    check_json_depth(text, source)                         # before any other parser sees untrusted JSON

Every JSON reader of svit refuses nesting deeper than `MAX_JSON_DEPTH`: ijson keeps one prefix string
per open level ("item.item.item..."), so a 200 KB file of nested brackets costs memory with the square
of its depth, and the stdlib decoder recurses; our files nest 6 levels at most.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ijson
import numpy as np
import orjson
from ijson.backends import python as python_backend

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import remove_stale_temps, temp_sibling

logger = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"

MAX_JSON_DEPTH = 64
"""The deepest nesting (open lists and objects) any JSON input may have. A release record nests 5 levels
(list, record, conversations, a conversation, its turns); 64 leaves room for any real file."""

# Only quotes and brackets decide the depth: `bytes.translate` keeps just those (C speed, ~1 GB/s), and
# every escape pair becomes two plain bytes first so that an escaped quote does not flip string state.
_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


class JsonDepthScanner:
    """Checks JSON text fed in consecutive pieces (as a file is read) against `limit` levels of
    nesting, in a linear vectorized scan that skips brackets inside strings (~4 ms per 4 MB).

    Raises SvitFormatError naming `source` at the first piece that goes deeper, before any parser
    has seen it. Text that is not valid JSON is the parser's to reject: on every prefix a parser
    accepts, the depth counted here is exact.
    """

    def __init__(self, source: str | Path, limit: int = MAX_JSON_DEPTH):
        self.source = source
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.pending_escape = False  # the last piece ended with a backslash: the next byte is escaped
        self.seen = 0

    def feed(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        offset = self.seen  # of data[0] in the whole text
        self.seen += len(data)
        if self.pending_escape:
            data = data[1:]
            offset += 1
            self.pending_escape = False
        if data.find(b"\\") >= 0:
            data = _ESCAPE.sub(b"__", data)
            if data.endswith(b"\\"):  # an escape pair cut by the piece boundary
                self.pending_escape = True
        marks = np.frombuffer(data.translate(None, _NOT_STRUCTURE), np.uint8)
        if not len(marks):
            return
        quotes = np.cumsum(marks == ord('"'), dtype=np.int64)
        inside = (quotes & 1).astype(bool) ^ self.in_string
        # `[` (91) and `{` (123) are equal with bit 5 set, as are `]` and `}`
        folded = marks | 32
        step = (folded == ord("{")).view(np.int8) - (folded == ord("}")).view(np.int8)
        step[inside] = 0
        depths = np.cumsum(step, dtype=np.int64)
        if self.depth + int(depths.max()) > self.limit:
            # `\x` became two bytes, so positions in `data` are the text's
            first = int(np.argmax(depths > self.limit - self.depth))
            structural = np.frombuffer(data, np.uint8)[:, None] == np.frombuffer(_STRUCTURE, np.uint8)
            at = offset + int(np.flatnonzero(structural.any(axis=1))[first])
            raise SvitFormatError(
                f"{self.source}: JSON nested deeper than {self.limit} levels (at byte {at}); no svit "
                "input nests that deep: the file is damaged or not the expected one; pass the right file."
            )
        self.depth += int(depths[-1])
        self.in_string ^= bool(quotes[-1] & 1)


def check_json_depth(data: bytes | str, source: str | Path, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise SvitFormatError naming `source` when the JSON text `data` nests deeper than `limit`
    lists/objects. Call it before `json.loads`/`orjson.loads`/ijson on any text a user handed in:
    linear time, memory of the order of `data`."""
    JsonDepthScanner(source, limit).feed(data)


def loads_json(data: bytes | str, source: str | Path) -> Any:
    """`orjson.loads(data)` after the depth check: for one JSONL line or a small file. Raises
    orjson.JSONDecodeError for broken JSON and SvitFormatError (naming `source`) for nesting deeper
    than `MAX_JSON_DEPTH`; a text with fewer brackets than that skips the scan."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        check_json_depth(raw, source)
    return orjson.loads(raw)


class DepthCheckedFile:
    """A file (binary or text) whose every `read` is depth-checked before the parser gets it:
    wrap a file handed to a streaming parser (ijson, a chunked `raw_decode` loop) in it."""

    def __init__(self, f, source: str | Path):
        self.file = f
        self.scanner = JsonDepthScanner(source)

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.scanner.feed(data)
        return data

    def tell(self) -> int:
        return self.file.tell()


def iter_json_file_items(f, prefix: str, source: str | Path) -> Iterator[Any]:
    """`ijson.items(f, prefix, use_float=True)` on a binary file `f`, read through the depth check:
    any JSON a user hands in that ijson reads goes through here."""
    return ijson.items(DepthCheckedFile(f, source), prefix, use_float=True)


RELEASE_JSON = "the released SVIT file (one JSON list per task)"


def iter_json_list(path: str | Path, expected: str = RELEASE_JSON) -> Iterator[tuple[int, Any]]:
    """(index, record) for every element of the top-level JSON list of `path`, streamed: the one reader of
    JSON-list files (release files, LLaVA training JSON).

    A UTF-8 byte-order mark is skipped. A file that is no list raises SvitFormatError asking for `expected`
    (what the caller reads, in words). Broken JSON (truncated, NaN literals, bytes that are not UTF-8)
    raises SvitFormatError naming the file and the last good record.

    Records are decoded by orjson a few MB at a time (`_fast_records`): ~20% less CPU than ijson on
    the release (bench/build.py). The first chunk it cannot vouch for hands the file over to ijson
    (`_ijson_records`), which yields the records after the last one already yielded and owns every
    error message.
    """
    path = Path(path)
    with open(path, "rb") as f:
        start = len(UTF8_BOM) if f.read(len(UTF8_BOM)) == UTF8_BOM else 0
        f.seek(start)
        head = f.read(4096).lstrip()
        if not head.startswith(b"["):
            found = repr(head[:20]) if head else "an empty file"
            raise SvitFormatError(
                f"{path}: expected a JSON list of records at byte 0, found {found}. Pass {expected}."
            )
        f.seek(start)
        done = -1
        fast = _fast_records(f, JsonDepthScanner(path))
        for done, record in enumerate(fast):  # noqa: B007
            yield done, record
        if fast.finished:
            return
        f.seek(start)
        yield from _ijson_records(f, path, start, after=done)


# A chunk is cut after a `}` that a comma and a `{` follow, the `{` opening with the first key of the
# file's first record: a record boundary, unless it lies inside a string or a nested object; then the
# chunk does not decode and is extended to the next candidate.
_FIRST_KEY = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*("[^"\\]*")')
_BOUNDARY = rb"\}[ \t\r\n]*,[ \t\r\n]*(\{)[ \t\r\n]*"
_CHUNK_BYTES = 1 << 22
_MAX_EXTENSIONS = 8
_MAX_BUFFER = 1 << 26
# orjson reads integers beyond 64 bits as floats where ijson reads ints (or fails): a chunk with a run
# of 19 digits (anywhere, strings included: a cheap, conservative test) is left to ijson.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


class _fast_records:  # noqa: N801 - used as a generator
    """Records of the list whose `[` comes first at the file position, decoded by orjson a chunk at a
    time. Stops at the first chunk orjson rejects or might decode differently from ijson, with
    `finished` left False; every record it yields is the one ijson yields at that index.

    A chunk runs from a record's `{` to a candidate boundary (`_BOUNDARY`) or the end of the
    file. When it decodes as a list, the cut is a real boundary: JSON's grammar reads the same bytes
    the same way from a list's first value, so the `]` appended at the cut closes the list only where
    the file's own list is between two records.
    """

    def __init__(self, f, depth: JsonDepthScanner | None = None):
        self.file = f
        self.depth = depth or JsonDepthScanner(
            getattr(f, "name", "JSON input")
        )  # sees every byte read, before orjson
        self.finished = False

    def __iter__(self) -> Iterator[Any]:
        self.eof = False
        first = self.file.read(max(_CHUNK_BYTES, 8192))  # the `[` is in the first 4 KB (iter_json_list)
        self.depth.feed(first)
        opening = first.find(b"[")
        if opening < 0 or first[:opening].strip(b" \t\r\n"):  # whitespace JSON does not know: ijson's
            return
        self.buf = first[opening + 1 :]
        first_key = _FIRST_KEY.match(self.buf)
        if first_key is None:  # not a list of objects with a plain first key (or empty): ijson's
            return
        self.boundary = re.compile(_BOUNDARY + re.escape(first_key.group(1)))
        while True:
            if len(self.buf) < _CHUNK_BYTES:
                self._read_more()
            match = self._next_boundary(_CHUNK_BYTES // 2)
            for _ in range(_MAX_EXTENSIONS):
                chunk = self.buf if match is None else self.buf[: match.start() + 1] + b"]"
                records = _decode(chunk)
                if records is not None or match is None:
                    break
                match = self._next_boundary(match.end())
            if records is None or (match is None and not self.eof):  # or no boundary in _MAX_BUFFER
                return
            yield from records
            if match is None:
                self.finished = True
                return
            self.buf = self.buf[match.start(1) :]

    def _next_boundary(self, start: int) -> re.Match | None:
        """The first candidate boundary from `start`, reading on until one is found, the file ends or
        `_MAX_BUFFER` is held."""
        while (match := self.boundary.search(self.buf, start)) is None and not self.eof:
            if len(self.buf) > _MAX_BUFFER:  # records that are not objects, or huge ones: streamed by ijson
                return None
            start = max(start, len(self.buf) - 4096)  # a boundary may span the end of what was read
            self._read_more()
        return match

    def _read_more(self) -> None:
        more = self.file.read(_CHUNK_BYTES)
        self.depth.feed(more)
        self.eof = not more
        self.buf += more


def _decode(chunk: bytes) -> list | None:
    """The records of `[` + chunk (which ends with the list's `]`), or None to leave them to ijson."""
    if chunk.translate(_DIGITS_TO_ZERO).find(_LONG_DIGIT_RUN) >= 0:
        return None
    try:
        return orjson.loads(b"[" + chunk)
    except orjson.JSONDecodeError:
        return None


def _ijson_records(f, path: Path, start: int, after: int) -> Iterator[tuple[int, Any]]:
    """(index, record) past index `after`, by ijson from the file position `start`."""
    index = -1
    try:
        for index, record in enumerate(iter_json_file_items(f, "item", path)):  # noqa: B007
            if index > after:
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
        done = max(index, after)
        f.seek(start)
        try:
            checked = DepthCheckedFile(f, path)
            for index, record in enumerate(python_backend.items(checked, "item", use_float=True)):
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


def json_kind(value) -> str:
    """`value`'s JSON type in words ("a list", "a string", ...), for errors about files that hold the wrong one."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def read_json_object(path: str | Path, fix: str) -> dict:
    """A small JSON file that must hold an object (a report, run facts, results); `fix` ends each error (what
    to pass or do instead)."""
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"{path}: not found; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
        check_json_depth(text, path)
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" ({err.msg}, line {err.lineno})" if isinstance(err, json.JSONDecodeError) else ""
        raise SvitInputError(f"{path}: not valid JSON{where}; {fix}") from err
    if not isinstance(value, dict):
        raise SvitInputError(f"{path}: holds {json_kind(value)}, not a JSON object; {fix}")
    return value


def json_object_or_empty(path: str | Path) -> dict:
    """The JSON object in `path`, or {} for a file that is missing, unreadable, damaged, nested too deep or not
    an object: for files whose absence only means "not known" (a half-written checkpoint's, a hint's)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        check_json_depth(text, path)
        value = json.loads(text)
    except (OSError, ValueError, SvitFormatError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return {}
    return value if isinstance(value, dict) else {}
