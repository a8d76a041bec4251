"""The batch run: `svit generate --batch` through the OpenAI Batch API, and batch files for any engine that
reads and writes the same JSONL (`--write-batch DIR`, then `vllm run-batch`, then `--read-batch FILE...`).

    round r: the selection's unfinished items -> request files (batch_files.py: <= 50,000 lines, <= 200 MB)
      -> files.create(purpose="batch") -> ledger `upload` line -> batches.create -> ledger `batch` line
    poll batches.retrieve (backing off while nothing moves) until a batch ends: completed, expired, failed or
      cancelled -> download its output and error files -> judge every answer as the online run does
      (run.ItemJudge: same parsing, checks and records) -> ledger `batch_closed` line
    round r+1: whatever is still unfinished (rejected answers, error lines, what an expired batch never ran),
      until every item is done or out of attempts

Each request's `custom_id` is `<run id>/<image id>/<task>/<attempt>`: an answer names its item and the attempt it
answers, and an output file of another run (other settings) is recognised by its run id. A request is sent with
the same body and seed as the online run would send it, so both runs write the same release files.

Nothing is sent twice. Every upload and batch is in the ledger before anything waits on it; a killed run,
started again, polls the batches it finds there. A kill between `batches.create` and the `batch` line is
covered too: an uploaded file without a batch is looked up among the server's batches (by its file id)
before a batch is made for it. Lines judged from a batch carry its id, so a batch read twice (killed before
its `batch_closed` line) is judged once.

An error line (the request failed inside the batch) sends the same request again in the next round, up to
`--max-attempts` errors in a row; then the item fails with `api_error`, which a later run retries, as
online. Requests a batch never ran (expired, cancelled) go into the next round without counting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import openai

from svit_dataset.errors import SvitInputError
from svit_dataset.files import temp_sibling
from svit_dataset.generation.batch_files import (
    CHAT_COMPLETIONS,
    NOT_RUN_CODES,
    BatchLimits,
    output_line_at,
    read_output_file,
    write_request_files,
)
from svit_dataset.generation.client import ChatResult, FatalAPIError, chat_body, redact, resolve_api_key
from svit_dataset.generation.ledger import item_key, ledger_name
from svit_dataset.generation.run import (
    GenerationConfig,
    ItemJudge,
    RunFolder,
    SceneSource,
    _public_url,
    run_id,
)
from svit_dataset.settings import check_number, setting

logger = logging.getLogger(__name__)

ENDED = frozenset({"completed", "expired", "failed", "cancelled"})
BATCH_ERROR = "batch_error"
REQUESTS_DIR = "batches"  # in --output: request files of open batches, and outputs being read
# batches that end having answered nothing, in a row, before the run stops (a file the API keeps refusing)
MAX_EMPTY_BATCHES = 3
# error lines that say the whole run is refused (key, access, model): retried, and the run stops
REFUSED = frozenset({401, 403, 404})

T = TypeVar("T")


@dataclasses.dataclass
class BatchSettings:
    """How `svit generate` sends its requests when not online: the Batch API, or batch files."""

    batch: bool = setting(
        False, "send through the OpenAI Batch API (half price, within 24 h); run again to resume or collect"
    )
    write_batch: str | Path | None = setting(
        None, "write the round's requests as Batch API JSONL files into DIR; send nothing", metavar="DIR"
    )
    read_batch: tuple[str | Path, ...] = setting(
        (), "read output files of vllm run-batch (or any engine of that format)", metavar="FILE", many=True
    )
    cancel: bool = setting(False, "with --batch: cancel the run's open batches (answers so far are kept)")
    wait: bool = setting(
        True, "with --batch: poll until every item is finished (--no-wait: look once, return)"
    )
    poll_interval: float = setting(30.0, "seconds between polls at first; x1.5 while nothing moves")
    max_poll_interval: float = setting(600.0, "longest pause between polls, in seconds")
    batch_max_requests: int = setting(50_000, "requests per batch file (the Batch API allows 50,000)")
    batch_max_mb: float = setting(200.0, "MB per batch file (the Batch API allows 200)")
    forget_batch: tuple[str, ...] = setting(
        (),
        "with --batch: a batch the server no longer knows; its unanswered requests are sent again",
        metavar="BATCH_ID",
        repeat=True,
    )

    def __post_init__(self):
        if self.batch and (self.write_batch or self.read_batch):
            raise SvitInputError(
                "--batch sends through the Batch API; --write-batch/--read-batch are for other engines: pass one"
            )
        if (self.cancel or self.forget_batch) and not self.batch:
            raise SvitInputError("--cancel and --forget-batch go with --batch")
        check_number("--poll-interval", self.poll_interval, 0, above=True)
        check_number("--max-poll-interval", self.max_poll_interval, self.poll_interval)
        check_number("--batch-max-requests", self.batch_max_requests, 1, 50_000)
        check_number("--batch-max-mb", self.batch_max_mb, 0, 200, above=True)

    @property
    def active(self) -> bool:
        return bool(self.batch or self.write_batch or self.read_batch)

    @property
    def limits(self) -> BatchLimits:
        return BatchLimits(self.batch_max_requests, int(self.batch_max_mb * 1024 * 1024))


def custom_id(run: str, key: str, attempt: int) -> str:
    return f"{run}/{key}/{attempt}"


def parse_custom_id(text: str) -> tuple[str, str, int] | None:
    """(run id, item key, attempt) of a custom_id, or None when it is not one of ours."""
    parts = text.split("/")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit():
        return None
    return parts[0], f"{parts[1]}/{parts[2]}", int(parts[3])


FILE_MARK = "file:"


def file_mark(path: Path) -> str:
    """An output file's name in the ledger: its content hash (a file read twice is judged once)."""
    digest = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return FILE_MARK + digest.hexdigest()


@dataclasses.dataclass
class _Batch:
    batch_id: str
    file: str  # the request file, relative to --output
    file_id: str
    lines: int
    round: int


class BatchBook:
    """The run's uploads, batches and files read, from the ledger's run lines (ledger.RUN_LINES)."""

    def __init__(self, run_lines: list[dict]):
        self.uploads: dict[str, dict] = {}
        self.batches: dict[str, _Batch] = {}
        self.closed: dict[str, str] = {}  # batch id -> how it ended
        self.read: set[str] = set()
        self.rounds = 0
        for line in run_lines:
            self.add(line)

    def add(self, line: dict) -> None:
        kind = line["t"]
        self.rounds = max(self.rounds, int(line.get("round", 0)))
        if kind == "upload":
            self.uploads[line["file_id"]] = line
        elif kind == "batch":
            self.batches[line["batch_id"]] = _Batch(
                line["batch_id"], line["file"], line["file_id"], line["lines"], line["round"]
            )
        elif kind == "batch_closed":
            self.closed[line["batch_id"]] = line["status"]
        elif kind == "read":
            self.read.add(line["mark"])

    def open_batches(self) -> list[_Batch]:
        return [b for b in self.batches.values() if b.batch_id not in self.closed]

    def uploads_without_batch(self) -> list[dict]:
        batched = {b.file_id for b in self.batches.values()}
        return [u for u in self.uploads.values() if u["file_id"] not in batched]


class BatchRun:
    """Rounds of batch requests for one run folder; the online run's judge writes the answers."""

    def __init__(self, folder: RunFolder, settings: BatchSettings, bar):
        self.folder = folder
        self.config: GenerationConfig = folder.config
        self.settings = settings
        self.ledger = folder.ledger
        self.judge = ItemJudge(self.config, folder.templates, self.ledger, bar)
        self.judge.postfix = lambda: {"batches": len(self.book.open_batches())}
        self.run = run_id(folder.identity)
        self.book = BatchBook(self.ledger.run_lines)
        self.requests_dir = self.config.output_dir / REQUESTS_DIR
        self.counts = Counter()  # what this session did
        self.problems = Counter()  # output lines that answered nothing, by reason
        self.written: list[str] = []
        self._client: openai.OpenAI | None = None
        self._empty_batches = 0
        self.refused: str | None = None  # an error line of REFUSED status seen
        self.gave_up: set[str] = set()  # items this session failed with api_error

    # --- requests --------------------------------------------------------------------------------------

    def _requests(self) -> Iterator[tuple[str, dict]]:
        """(custom_id, body) of every unfinished item's next attempt; items with no attempt left fail here."""
        judge = self.judge
        for item in self.folder.work(lambda key: self.folder.skip(key) or key in self.gave_up):
            key = item_key(item.scene.image_id, item.task)
            if item.prompt is None:
                judge.over_budget(key, item.detail)
                continue
            if judge.out_of_attempts(key):
                continue
            attempt = self.ledger.resume_point(key)[0]
            yield (
                custom_id(self.run, key, attempt),
                chat_body(self.config.client, item.prompt.messages, judge.seed(key)),
            )

    def _write_round(self, folder: Path, prefix: str) -> list[tuple[Path, int]]:
        return write_request_files(self._requests(), folder, prefix, self.settings.limits)

    def write_files(self, folder: str | Path) -> None:
        """`--write-batch DIR`: the round's request files, for an engine of the same format; nothing is sent."""
        round_no = self.book.rounds + 1
        files = self._write_round(Path(folder), f"svit-{self.run}-round-{round_no:03d}")
        for path, lines in files:
            self._note({"t": "written", "round": round_no, "file": str(path.resolve()), "lines": lines})
            self.written.append(str(path))
        requests = sum(lines for _, lines in files)
        self.counts["requests_written"] += requests
        logger.info(
            "wrote %d requests in %d file(s) to %s; run them (vllm run-batch -i FILE -o OUT --model %s), then "
            "svit generate with the same flags and --read-batch OUT...",
            requests,
            len(files),
            folder,
            self.config.client.model,
        )

    # --- answers ---------------------------------------------------------------------------------------

    def judge_outputs(self, outputs: list[tuple[str, Path]]) -> int:
        """Judge the answers of (mark, output file) pairs, marks being batch ids or file marks; returns how
        many lines answered an item of this run. One pass over the scenes judges every file's answers."""
        answers: dict[str, tuple[str, Path, int, int]] = {}
        answered = 0
        for mark, path in outputs:
            lines = ours = 0
            unread = Counter()
            for line in read_output_file(path, unread):
                lines += 1
                parsed = parse_custom_id(line.custom_id)
                if parsed is None or parsed[0] != self.run:
                    self.problems["other_run"] += 1
                    continue
                ours += 1
                _, key, attempt = parsed
                state = self.ledger.state(key)
                if (state is not None and (state.final or state.batch == mark)) or key in answers:
                    self.problems["already_judged"] += 1
                    continue
                if self.ledger.resume_point(key)[0] != attempt:
                    self.problems["stale_attempt"] += 1
                    continue
                if line.error is None:
                    answers[key] = (mark, path, line.offset, line.length)
                elif line.error_code in NOT_RUN_CODES:
                    self.counts["not_run"] += 1
                else:
                    self._batch_error(key, mark, line.error, line.error_code)
            self.problems.update(unread)
            if not lines and unread and mark.startswith(FILE_MARK):  # a file the user named, with no answer
                reasons = ", ".join(f"{n} {why}" for why, n in sorted(unread.items()))
                raise SvitInputError(
                    f"--read-batch {path}: no line of it is a batch output line ({reasons}); pass the output file "
                    "the engine wrote (one JSON object a line, with custom_id and response)"
                )
            if lines and not ours:
                raise SvitInputError(
                    f"{path}: none of its {lines} answers is for this run (their custom_ids do not start with "
                    f"{self.run}/, this run's id): the output of another run, or of other settings? Pass the "
                    "outputs of the requests this run wrote, with the flags that wrote them."
                )
            answered += ours
        self.counts["answers"] += len(answers)
        if answers:
            self._judge_answers(answers)
        return answered

    def _judge_answers(self, answers: dict[str, tuple[str, Path, int, int]]) -> None:
        for item in self.folder.work(skip=lambda key: key not in answers):
            key = item_key(item.scene.image_id, item.task)
            mark, path, offset, length = answers.pop(key)
            if (
                item.prompt is None
            ):  # the same settings render the same prompts: only if the templates changed
                self.judge.over_budget(key, item.detail, {"batch": mark})
                continue
            line = output_line_at(path, offset, length)
            result = ChatResult(
                text=line.content or "",
                finish_reason=line.finish_reason or "",
                prompt_tokens=line.usage[0],
                completion_tokens=line.usage[1],
                response_model=line.model or self.config.client.model,
            )
            self.judge.judge(item, result, {"batch": mark})
        if answers:
            self.problems["not_selected"] += len(answers)
            logger.warning(
                "%d answers are for images outside this selection (e.g. %s); were the requests written with "
                "another --max-images or --shard? They are not used.",
                len(answers),
                next(iter(answers)),
            )

    def _batch_error(self, key: str, mark: str, error: str, code: str | None) -> None:
        """An error line. A 4xx that retrying cannot fix fails the item (`bad_request`, as online); any other
        error sends the same request again in the next round, up to --max-attempts errors in a row."""
        detail = redact(error)
        status = int(code) if code and code.isdigit() else None
        if status in REFUSED:
            self.refused = detail
        elif status is not None and 400 <= status < 500 and status not in (408, 409, 429):
            self.counts["bad_request_lines"] += 1
            self.judge.request_failed(key, "bad_request", detail, {"batch": mark})
            return
        self.counts["error_lines"] += 1
        state = self.ledger.state(key)
        errors = (state.errors if state is not None else 0) + 1
        if errors >= self.config.max_attempts:
            self.gave_up.add(key)  # retried by a later run, as online; not by this one's next round
            self.judge.request_failed(
                key, "api_error", f"{errors} batch errors in a row, the last: {detail}", {"batch": mark}
            )
            return
        attempts, usage = self.ledger.resume_point(key)
        self.ledger.append(
            {
                "t": "attempt",
                "key": key,
                "attempt": attempts,
                "usage": list(usage),
                "reason": BATCH_ERROR,
                "detail": detail,
                "errors": errors,
                "batch": mark,
            }
        )

    def read_files(self, paths: tuple[str | Path, ...]) -> None:
        """`--read-batch FILE...`: output files of any engine, judged into the ledger."""
        outputs = []
        for path in map(Path, paths):
            mark = file_mark(path)
            if mark in self.book.read or mark in {m for m, _ in outputs}:
                logger.info("%s was read before (same content); skipped", path)
                continue
            outputs.append((mark, path))
        self.judge_outputs(outputs)
        for mark, path in outputs:
            self._note({"t": "read", "file": str(path.resolve()), "mark": mark})
        self.counts["files_read"] += len(outputs)

    # --- the Batch API ---------------------------------------------------------------------------------

    def _note(self, line: dict) -> None:
        self.ledger.note(line)
        self.book.add(line)

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            s = self.config.client
            self._client = openai.OpenAI(
                api_key=resolve_api_key(s), base_url=s.base_url, timeout=s.timeout, max_retries=s.max_retries
            )
        return self._client

    def _call(self, what: str, call: Callable[[], T], not_found: str | None = None) -> T:
        """One Batch API call (openai retries 429/5xx itself); errors become one line naming what failed."""
        s = self.config.client
        where = redact(_public_url(s.base_url))
        try:
            return call()
        except openai.NotFoundError as err:
            if not_found is None:
                raise FatalAPIError(
                    f"{where}: {what} answered 404 ({redact(str(err.message))[:200]}). Does the endpoint have "
                    "the Batch API? For vLLM and other engines use --write-batch DIR and --read-batch FILE..."
                ) from None
            raise SvitInputError(not_found) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise FatalAPIError(
                f"{where} refused the key from ${s.api_key_env} ({what}: HTTP {err.status_code}). Set a valid "
                "key and run again; the run's batches and finished work are kept."
            ) from None
        except openai.APIStatusError as err:
            raise FatalAPIError(
                f"{where}: {what} failed: HTTP {err.status_code}: {redact(str(err.message))[:200]}. Run the "
                "same command again to resume."
            ) from None
        except openai.APIConnectionError as err:
            raise FatalAPIError(
                f"{where}: {what}: no connection ({type(err.__cause__ or err).__name__}). Batches keep "
                "running on the server; run the same command again to resume."
            ) from None

    def _create_batch(self, upload: dict, look_first: bool = False) -> None:
        """A batch for an uploaded file. `look_first`: an upload found without its batch (a kill before the
        `batch` line): the server may have made that batch; it is used if so."""
        batch = self._find_batch(upload["file_id"]) if look_first else None
        if batch is None:
            batch = self._call(
                "creating a batch",
                lambda: self.client.batches.create(
                    input_file_id=upload["file_id"],
                    endpoint=CHAT_COMPLETIONS,
                    completion_window="24h",
                    metadata={"svit_run": self.run, "svit_file": Path(upload["file"]).name},
                ),
            )
            self.counts["batches_submitted"] += 1
            self.counts["requests_submitted"] += upload["lines"]
        else:
            logger.info("found batch %s made for %s before the last run stopped", batch.id, upload["file"])
        self._note(
            {
                "t": "batch",
                "batch_id": batch.id,
                "file_id": upload["file_id"],
                "file": upload["file"],
                "lines": upload["lines"],
                "round": upload["round"],
            }
        )
        logger.info("batch %s: %d requests (round %d)", batch.id, upload["lines"], upload["round"])

    def _find_batch(self, file_id: str):
        for batch in self._call("listing batches", lambda: self.client.batches.list(limit=100)):
            if batch.input_file_id == file_id:
                return batch
        return None

    def _submit_round(self) -> int:
        """Write, upload and submit the unfinished items' requests; returns how many were submitted."""
        round_no = self.book.rounds + 1
        for stale in self.requests_dir.glob("round-*.jsonl"):  # a round killed before its upload
            if not any(u["file"] == f"{REQUESTS_DIR}/{stale.name}" for u in self.book.uploads.values()):
                stale.unlink()
        files = self._write_round(self.requests_dir, f"round-{round_no:03d}")
        for path, lines in files:
            with open(path, "rb") as handle:
                uploaded = self._call(
                    f"uploading {path.name}",
                    lambda handle=handle, path=path: self.client.files.create(
                        file=(path.name, handle), purpose="batch"
                    ),
                )
            upload = {
                "t": "upload",
                "round": round_no,
                "file": f"{REQUESTS_DIR}/{path.name}",
                "file_id": uploaded.id,
                "lines": lines,
            }
            self._note(upload)
            self._create_batch(upload)
        return sum(lines for _, lines in files)

    def _poll(self, once: bool) -> list[tuple[_Batch, object]]:
        """(batch, its state) of open batches that ended; waits for one unless `once`."""
        interval = None
        shown: dict[str, str] = {}
        while True:
            ended, moved = [], False
            for batch in self.book.open_batches():
                info = self._call(
                    f"polling batch {batch.batch_id}",
                    lambda batch=batch: self.client.batches.retrieve(batch.batch_id),
                    not_found=(
                        f"batch {batch.batch_id} (in {self.ledger.path}) is unknown to "
                        f"{redact(_public_url(self.config.client.base_url))}: was it submitted with another "
                        "key or --base-url? Run with those; or pass --forget-batch "
                        f"{batch.batch_id} to send its unanswered requests again."
                    ),
                )
                counts = info.request_counts
                progress = (
                    f"{info.status}: {counts.completed} done, {counts.failed} failed, "
                    f"{counts.total - counts.completed - counts.failed} pending of {counts.total}"
                    if counts is not None
                    else info.status
                )
                if shown.get(batch.batch_id) != progress:
                    shown[batch.batch_id], moved = progress, True
                    logger.info("batch %s (round %d) %s", batch.batch_id, batch.round, progress)
                if info.status in ENDED:
                    ended.append((batch, info))
            if ended or once:
                return ended
            if moved or interval is None:
                interval = self.settings.poll_interval
            else:  # nothing moved since the last look: look less often
                interval = min(interval * 1.5, self.settings.max_poll_interval)
            time.sleep(interval)

    def _download(self, file_id: str, path: Path) -> None:
        partial = temp_sibling(path)

        def fetch() -> None:
            with (
                self.client.files.with_streaming_response.content(file_id) as response,
                open(partial, "wb") as f,
            ):
                for chunk in response.iter_bytes(1 << 20):
                    f.write(chunk)

        self._call(f"downloading file {file_id}", fetch)
        partial.replace(path)

    def _collect(self, ended: list[tuple[_Batch, object]]) -> None:
        """Judge what ended batches answered, then close them (their files are deleted)."""
        outputs = []
        for batch, info in ended:
            for kind, file_id in (("output", info.output_file_id), ("errors", info.error_file_id)):
                if file_id:
                    path = self.requests_dir / f"{batch.batch_id}.{kind}.jsonl"
                    self._download(file_id, path)
                    outputs.append((batch.batch_id, path))
            if info.status == "failed":
                errors = getattr(info.errors, "data", None) or []
                reasons = "; ".join(f"{e.code}: {e.message}" for e in errors[:3]) or "no reason given"
                logger.warning(
                    "batch %s failed (%s); its requests go into the next round", batch.batch_id, reasons
                )
            elif info.status != "completed":
                logger.warning(
                    "batch %s %s; requests it did not answer go into the next round",
                    batch.batch_id,
                    info.status,
                )
        self.requests_dir.mkdir(exist_ok=True)
        answered = self.judge_outputs(outputs)
        for batch, info in ended:
            counts = info.request_counts
            self._note(
                {
                    "t": "batch_closed",
                    "batch_id": batch.batch_id,
                    "status": info.status,
                    "completed": counts.completed if counts else None,
                    "failed": counts.failed if counts else None,
                }
            )
            self.counts[f"batches_{info.status}"] += 1
            (self.config.output_dir / batch.file).unlink(missing_ok=True)
        for _, path in outputs:
            path.unlink(missing_ok=True)
        if self.refused:
            raise FatalAPIError(
                f"the batch refused requests ({self.refused}); check --model and the key, then run the same "
                "command again: the refused requests are sent again"
            )
        self._empty_batches = 0 if answered else self._empty_batches + len(ended)
        if self._empty_batches >= MAX_EMPTY_BATCHES:
            raise FatalAPIError(
                f"{self._empty_batches} batches in a row ended with no answer (the last: {ended[-1][0].batch_id}, "
                f"{ended[-1][1].status}); see the warnings above, fix the cause, and run the same command again."
            )

    def forget(self, batch_ids: tuple[str, ...]) -> None:
        for batch_id in batch_ids:
            if batch_id not in self.batches_open_ids():
                raise SvitInputError(f"--forget-batch {batch_id}: no open batch of this run has that id")
            self._note({"t": "batch_closed", "batch_id": batch_id, "status": "forgotten"})
            logger.warning("batch %s forgotten: its unanswered requests go into the next round", batch_id)

    def batches_open_ids(self) -> set[str]:
        return {b.batch_id for b in self.book.open_batches()}

    def cancel(self) -> None:
        for batch in self.book.open_batches():
            self._call(
                f"cancelling batch {batch.batch_id}",
                lambda batch=batch: self.client.batches.cancel(batch.batch_id),
            )
            logger.info("batch %s: cancel requested", batch.batch_id)
            self.counts["batches_cancel_requested"] += 1

    def run_api(self) -> None:
        """`--batch`: submit, poll, judge, resubmit, until every item is final (or once, with --no-wait)."""
        self.requests_dir.mkdir(exist_ok=True)
        for upload in self.book.uploads_without_batch():
            self._create_batch(upload, look_first=True)
        self.forget(self.settings.forget_batch)
        if self.settings.cancel:
            self.cancel()
        once = not self.settings.wait
        while True:
            if self.book.open_batches():
                ended = self._poll(once)
                self._collect(ended)
                if self.book.open_batches() and once:
                    logger.info(
                        "%d batch(es) still running; run the same command again to collect them",
                        len(self.book.open_batches()),
                    )
                    return
                continue
            if self.settings.cancel:
                return  # the cancelled batches are collected; a later run sends what they left
            if not self._submit_round():
                return
            if once:
                logger.info("submitted; run the same command again to collect the answers")
                return

    def session(self) -> dict:
        """The summary's `session` of a batch run."""
        return {
            "path": "batch api" if self.settings.batch else "batch files",
            "items_finished": sum(self.judge.finished.values()),
            **dict(sorted(self.counts.items())),
            "batches_open": sorted(self.batches_open_ids()),
            "output_lines_not_used": dict(sorted(self.problems.items())),
            **({"request_files": self.written} if self.written else {}),
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def check_batch_paths(settings: BatchSettings) -> None:
    """The files and folder the batch flags name, before any work."""
    for path in map(Path, settings.read_batch):
        if not path.is_file():
            what = "a folder; pass the output files in it" if path.is_dir() else "no such file"
            raise SvitInputError(f"--read-batch {path}: {what}")
    folder = settings.write_batch
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise SvitInputError(
            f"--write-batch {folder}: a file, not a folder; pass a folder for the request files"
        )


def generate_batch(source: SceneSource, config: GenerationConfig, settings: BatchSettings) -> dict:
    """`svit generate` with --batch, --write-batch or --read-batch: returns the summary it also writes."""
    started = time.monotonic()
    check_batch_paths(settings)
    ledger_path = config.output_dir / ledger_name(config.shard)
    if settings.read_batch and not ledger_path.exists():
        raise SvitInputError(
            f"--read-batch: {config.output_dir} has no ledger ({ledger_path.name}): pass the --output (and "
            "--shard) of the run whose requests --write-batch wrote; the answers are judged into its ledger"
        )
    folder = RunFolder.open(source, config)
    bar = folder.progress_bar(folder.finished_count(), "batch")
    runner = BatchRun(folder, settings, bar)
    error: BaseException | None = None
    try:
        if settings.read_batch:
            runner.read_files(settings.read_batch)
        if settings.write_batch:
            runner.write_files(settings.write_batch)
        if settings.batch:
            runner.run_api()
    except BaseException as err:  # noqa: BLE001 - the summary is written whatever stopped the run
        error = err
        raise
    finally:
        bar.close()
        runner.close()
        summary = folder.close_and_summarize(started, runner.session(), error)
    return summary
