"""Batch files: the JSONL format of the OpenAI Batch API, which `vllm run-batch` and other engines read and
write too. Streaming, pure of any network: the request files a round sends, and the output and error files read
back.

A request line is one `/v1/chat/completions` body, as the online path posts it, under the item's `custom_id`:

    {"custom_id": "1/referring_qa/2", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

Files hold at most 50,000 lines and 200 MB (the Batch API's limits; `BatchLimits`), so a round's requests are
split over as many files as they need. An output line carries the response (or an error) of one `custom_id`:

    {"id": "...", "custom_id": "...", "response": {"status_code": 200, "body": {chat completion}}, "error": null}

`read_output_file` reads an output or error file line by line, in any order: a line that is not such a record
(another format, a cut last line) is counted under its reason and the reading goes on; nothing is lost
silently, nothing stops the run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from svit_dataset.files import temp_sibling

logger = logging.getLogger(__name__)

CHAT_COMPLETIONS = "/v1/chat/completions"


@dataclasses.dataclass(frozen=True)
class BatchLimits:
    """The most lines and bytes of one request file (the OpenAI Batch API's limits by default)."""

    max_lines: int = 50_000
    max_bytes: int = 200 * 1024 * 1024


def request_line(custom_id: str, body: dict) -> bytes:
    """One request line (with its newline) of a batch file."""
    return (
        orjson.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT_COMPLETIONS, "body": body})
        + b"\n"
    )


class RequestFiles:
    """Writes request lines into `folder/<prefix>-00001.jsonl`, `-00002`, ..., a new file whenever the next line
    would pass `limits`. Each file appears under its name only once complete (written aside, then renamed), so a
    killed process leaves no half file under a name a later run would trust. Use as `with`; `files` lists
    (path, lines) of the files written."""

    def __init__(self, folder: str | Path, prefix: str, limits: BatchLimits = BatchLimits()):
        self.folder, self.prefix, self.limits = Path(folder), prefix, limits
        self.files: list[tuple[Path, int]] = []
        self._handle = None
        self._path: Path | None = None
        self._lines = self._bytes = 0

    def __enter__(self) -> RequestFiles:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, custom_id: str, body: dict) -> None:
        line = request_line(custom_id, body)
        if len(line) > self.limits.max_bytes:
            raise ValueError(f"request {custom_id}: {len(line)} bytes, more than a batch file may hold")
        full = self._lines >= self.limits.max_lines or self._bytes + len(line) > self.limits.max_bytes
        if self._handle is None or full:
            self._finish()
            self._path = self.folder / f"{self.prefix}-{len(self.files) + 1:05d}.jsonl"
            self._handle = open(temp_sibling(self._path), "wb")  # noqa: SIM115 - closed by _finish
        self._handle.write(line)
        self._lines += 1
        self._bytes += len(line)

    def _finish(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        temp_sibling(self._path).replace(self._path)
        self.files.append((self._path, self._lines))
        self._handle, self._lines, self._bytes = None, 0, 0

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self._finish()
        elif self._handle is not None:  # a failed round: its unfinished file is not left behind
            self._handle.close()
            temp_sibling(self._path).unlink(missing_ok=True)


def write_request_files(
    requests: Iterable[tuple[str, dict]], folder: str | Path, prefix: str, limits: BatchLimits = BatchLimits()
) -> list[tuple[Path, int]]:
    """(path, lines) of the request files holding `requests` ((custom_id, body) pairs, streamed)."""
    with RequestFiles(folder, prefix, limits) as files:
        for custom_id, body in requests:
            files.add(custom_id, body)
    return files.files


@dataclasses.dataclass(frozen=True)
class OutputLine:
    """One answered request of an output or error file: the reply text, token usage and answering model when
    the request succeeded, else `error` (why, in a few words) and `error_code` (the HTTP status or the error
    object's code, e.g. `batch_expired`). `offset` and `length` place the line in its file (`output_line_at`)."""

    custom_id: str
    content: str | None
    finish_reason: str | None
    usage: tuple[int, int]  # (prompt, completion) tokens
    error: str | None
    error_code: str | None = None
    model: str | None = None
    offset: int = dataclasses.field(default=0, compare=False)
    length: int = dataclasses.field(default=0, compare=False)


# Error codes of requests the batch never ran (its window ran out, it was cancelled): not the request's fault.
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})


def _parsed(record: dict, offset: int = 0, length: int = 0) -> OutputLine | str:
    """The OutputLine of one output record (at `offset`, `length` bytes), or why it is not one."""
    custom_id = record.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "no_custom_id"
    if record.get("error"):
        error = record["error"]
        code = str(error.get("code") or "") or None if isinstance(error, dict) else None
        message = error.get("message") or code if isinstance(error, dict) else str(error)
        return OutputLine(
            custom_id, None, None, (0, 0), f"error: {message}"[:300], code, None, offset, length
        )
    response = record.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("body"), dict):
        return "no_response"
    status, body = response.get("status_code"), response["body"]
    if status != 200:
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
        error = f"HTTP {status}: {message or 'no message'}"[:300]
        return OutputLine(custom_id, None, None, (0, 0), error, str(status), None, offset, length)
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
        usage = body.get("usage") or {}
        tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (KeyError, IndexError, TypeError, ValueError):
        return "unreadable_body"
    if not isinstance(content, str):
        return "unreadable_body"
    model = body.get("model")
    model = model if isinstance(model, str) and model else None
    return OutputLine(
        custom_id, content, choice.get("finish_reason"), tokens, None, None, model, offset, length
    )


def _parsed_line(line: bytes, offset: int = 0) -> OutputLine | str:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not_json"
    return _parsed(record, offset, len(line)) if isinstance(record, dict) else "not_json"


def read_output_file(path: str | Path, problems: Counter | None = None) -> Iterator[OutputLine]:
    """The answered requests of a batch output or error file, streamed in file order. A line that is no output
    record is counted in `problems` under its reason (`not_json`, `no_custom_id`, `no_response`,
    `unreadable_body`, `cut_line` for a last line without its newline) and skipped."""
    problems = Counter() if problems is None else problems
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                problems["cut_line"] += 1
                logger.warning(
                    "%s:%d: the last line is cut short (%d bytes, no newline); its request is sent again",
                    path,
                    number,
                    len(line),
                )
                continue
            parsed = _parsed_line(line, start)
            if isinstance(parsed, str):
                problems[parsed] += 1
                continue
            yield parsed


def output_line_at(path: str | Path, offset: int, length: int) -> OutputLine:
    """The output line `read_output_file` found at `offset` (read again: an index holds places, not replies)."""
    with open(path, "rb") as f:
        f.seek(offset)
        parsed = _parsed_line(f.read(length), offset)
    if isinstance(parsed, str):
        raise ValueError(f"{path}: the line at byte {offset} changed since it was read ({parsed})")
    return parsed


__all__ = [
    "BatchLimits",
    "CHAT_COMPLETIONS",
    "NOT_RUN_CODES",
    "OutputLine",
    "RequestFiles",
    "output_line_at",
    "read_output_file",
    "request_line",
    "write_request_files",
]
