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
    """One answered request of an output or error file: the reply text and token usage when the request
    succeeded, else `error` (why, in a few words)."""

    custom_id: str
    content: str | None
    finish_reason: str | None
    usage: tuple[int, int]  # (prompt, completion) tokens
    error: str | None


def _parsed(record: dict) -> OutputLine | str:
    """The OutputLine of one output record, or why it is not one."""
    custom_id = record.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "no_custom_id"
    if record.get("error"):
        error = record["error"]
        message = error.get("message") or error.get("code") if isinstance(error, dict) else str(error)
        return OutputLine(custom_id, None, None, (0, 0), f"error: {message}"[:300])
    response = record.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("body"), dict):
        return "no_response"
    status, body = response.get("status_code"), response["body"]
    if status != 200:
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
        return OutputLine(custom_id, None, None, (0, 0), f"HTTP {status}: {message or 'no message'}"[:300])
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
        usage = body.get("usage") or {}
        tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (KeyError, IndexError, TypeError, ValueError):
        return "unreadable_body"
    if not isinstance(content, str):
        return "unreadable_body"
    return OutputLine(custom_id, content, choice.get("finish_reason"), tokens, None)


def read_output_file(path: str | Path, problems: Counter | None = None) -> Iterator[OutputLine]:
    """The answered requests of a batch output or error file, streamed in file order. A line that is no output
    record is counted in `problems` under its reason (`not_json`, `no_custom_id`, `no_response`,
    `unreadable_body`, `cut_line` for a last line without its newline) and skipped."""
    problems = Counter() if problems is None else problems
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                problems["cut_line"] += 1
                logger.warning(
                    "%s:%d: the last line is cut short; its request is answered again", path, number
                )
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                problems["not_json"] += 1
                continue
            parsed = _parsed(record) if isinstance(record, dict) else "not_json"
            if isinstance(parsed, str):
                problems[parsed] += 1
                continue
            yield parsed


__all__ = [
    "BatchLimits",
    "CHAT_COMPLETIONS",
    "OutputLine",
    "RequestFiles",
    "read_output_file",
    "request_line",
    "write_request_files",
]
