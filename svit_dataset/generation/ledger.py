"""The ledger: an append-only JSONL record of every finished request and item, so a run resumes.

One line is written (one `write` on an `O_APPEND` file) as soon as a response is judged:

    {"t": "attempt", "key": "1/referring_qa", "attempt": 1, "reason": "box_matches_nothing", "detail": "...", "usage": [p, c]}
    {"t": "done",    "key": "1/referring_qa", "attempts": 2, "usage": [p, c], "record": {...release record...}}
    {"t": "failed",  "key": "1/referring_qa", "attempts": 3, "usage": [p, c], "reason": "...", "detail": "..."}

Lines from a batch output (`svit generate --batch`, `--read-batch`) carry `"batch": <batch id or output
file mark>`, so an output read twice (a kill before its batch was closed) is judged once. A request the batch
answered with an error is an `attempt` line with reason `batch_error` that leaves `attempt` as it was (the
same request is sent again) and counts `errors` since the last answer.

The batch path also writes lines about the run rather than an item (no `key`): request files uploaded, batches
created and closed, files written or read (`RUN_LINES`; see batch_run.py). They are written before anything
waits on what they name, so a killed run resumes polling its batches instead of sending their requests again.

`usage` is the key's running total of (prompt, completion) tokens. An `attempt` line's reason and
detail are kept: a run killed after an item's last attempt but before its `failed` line writes that
line on resume with them. A killed process loses at most
the requests in flight, whose answers were never judged: on restart an item goes on at its next
attempt, so a finished request is never sent again. A torn last line (killed mid-write) is cut off
when the ledger is opened. Lines reach the OS at once (a SIGKILL loses nothing written); fsync runs
at most every `fsync_every` seconds and on close, bounding what a power loss could take.

Items that failed with `api_error` (the endpoint kept failing) are not final: a later run retries them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from svit_dataset.errors import SvitFormatError
from svit_dataset.jsonlist import loads_json

logger = logging.getLogger(__name__)

LEDGER_GLOB = "ledger*.jsonl"
RETRY_ON_RESUME = frozenset({"api_error"})
RUN_LINES = frozenset({"upload", "batch", "batch_closed", "written", "read"})


def ledger_name(shard: tuple[int, int] | None) -> str:
    return "ledger.jsonl" if shard is None else f"ledger.shard-{shard[0]}-of-{shard[1]}.jsonl"


def item_key(image_id: int, task: str) -> str:
    return f"{image_id}/{task}"


@dataclasses.dataclass
class KeyState:
    """Where one (image, task) stands: its last line's status, attempts, usage and place in the file."""

    status: str  # "attempt", "done" or "failed"
    attempts: int
    usage: tuple[int, int]
    reason: str = ""
    detail: str = ""
    offset: int = -1  # of the `done` line, to read its record back
    length: int = 0
    batch: str = ""  # the batch (or output file) the line came from, if any
    errors: int = 0  # batch error lines since the last answer

    @classmethod
    def of_line(cls, line: dict) -> KeyState:
        kind = line["t"]
        state = cls(kind, int(line.get("attempts", line.get("attempt", 0))), tuple(line["usage"]))
        if kind in ("failed", "attempt"):
            state.reason, state.detail = line.get("reason", ""), line.get("detail", "")
        state.batch, state.errors = line.get("batch", ""), int(line.get("errors", 0))
        return state

    @property
    def final(self) -> bool:
        return self.status == "done" or (self.status == "failed" and self.reason not in RETRY_ON_RESUME)


def scan(path: Path, repair: bool = False, run_lines: list | None = None) -> dict[str, KeyState]:
    """The state of every key in a ledger file. With `repair`, a torn last line is cut off. The lines about
    the run (`RUN_LINES`) go to `run_lines` when given."""
    states: dict[str, KeyState] = {}
    if not path.exists():
        return states
    with open(path, "rb") as f:
        data_end = 0
        offset = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # torn last line: the process died mid-write; the request was not finished
            try:
                line = loads_json(raw, path)
                if isinstance(line, dict) and line.get("t") in RUN_LINES:
                    if run_lines is not None:
                        run_lines.append(line)
                    offset += len(raw)
                    data_end = offset
                    continue
                key, kind = line["key"], line["t"]
                state = KeyState.of_line(line)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise SvitFormatError(
                    f"{path}: line at byte {offset} is not a ledger line; the file was edited or damaged. "
                    "Move it away to start over (finished work in it would be generated again)."
                ) from None
            if kind == "done":
                state.offset, state.length = offset, len(raw)
            previous = states.get(key)
            if previous is not None and previous.status == "done":
                logger.warning("%s: %s finished twice; the first is kept", path.name, key)
            else:
                states[key] = state
            offset += len(raw)
            data_end = offset
    if repair and data_end < path.stat().st_size:
        logger.warning("%s: cutting a torn last line (%d bytes)", path.name, path.stat().st_size - data_end)
        with open(path, "r+b") as f:
            f.truncate(data_end)
    return states


def read_record(path: Path, state: KeyState) -> dict:
    with open(path, "rb") as f:
        f.seek(state.offset)
        return loads_json(f.read(state.length), path)["record"]


class Ledger:
    """This process's ledger file, opened for appending after a scan of what it already holds."""

    def __init__(self, path: Path, fsync_every: float = 1.0):
        self.path = path
        self.run_lines: list[dict] = []
        self.states = scan(path, repair=True, run_lines=self.run_lines)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()

    def is_final(self, key: str) -> bool:
        state = self.states.get(key)
        return state is not None and state.final

    def resume_point(self, key: str) -> tuple[int, tuple[int, int]]:
        """(finished attempts, usage so far) of a key that is not final."""
        state = self.states.get(key)
        return (state.attempts, state.usage) if state else (0, (0, 0))

    def last_judgement(self, key: str) -> tuple[str, str]:
        """(reason, detail) of the key's last rejected answer (or failure); empty when none."""
        state = self.states.get(key)
        return (state.reason, state.detail) if state else ("", "")

    def state(self, key: str) -> KeyState | None:
        return self.states.get(key)

    def append(self, line: dict) -> None:
        self._write(line)
        self.states[line["key"]] = KeyState.of_line(line)

    def note(self, line: dict) -> None:
        """A line about the run (`RUN_LINES`), made durable at once: what it names is then waited on."""
        if line["t"] not in RUN_LINES:
            raise ValueError(f"not a run line: {line['t']}")
        self._write(line)
        self.run_lines.append(line)
        os.fsync(self._fd)
        self._last_sync = time.monotonic()

    def _write(self, line: dict) -> None:
        os.write(self._fd, orjson.dumps(line) + b"\n")
        now = time.monotonic()
        if now - self._last_sync >= self._fsync_every:
            os.fsync(self._fd)
            self._last_sync = now

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def ledger_files(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob(LEDGER_GLOB))


_STATUS_RANK = {"attempt": 0, "failed": 1, "done": 2}


def _rank(state: KeyState) -> tuple[int, bool]:
    """done > failed > attempt; among failures, a final one over one retried on resume."""
    return _STATUS_RANK.get(state.status, -1), state.final


def merged_states(output_dir: Path) -> Iterator[tuple[Path, str, KeyState]]:
    """(file, key, state) across every ledger of a folder (shards): the highest `_rank` wins, the first
    of equals (so a `done` in one shard's ledger beats a `failed` in another's, in any file order)."""
    best: dict[str, tuple[Path, KeyState]] = {}
    for path in ledger_files(output_dir):
        for key, state in scan(path).items():
            held = best.get(key)
            if held is None or _rank(state) > _rank(held[1]):
                best[key] = (path, state)
            elif held[1].status == "done" and state.status == "done":
                logger.warning(
                    "%s is done in both %s and %s; the first is kept", key, held[0].name, path.name
                )
    for key, (path, state) in best.items():
        yield path, key, state
