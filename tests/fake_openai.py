"""A local OpenAI-compatible chat server for tests and benches: real HTTP/1.1 on 127.0.0.1.

It reads the scene from the user message (the paper's input blocks) and answers in the paper's
formats, citing the scene's own boxes, so a clean answer passes every check. Faults are injected
by rate, decided by a hash, never by chance:

- transport faults (`rate_limit` 429 + Retry-After, `server_error` 500, `timeout` (answers after the
  client gave up), `drop` (closes the connection unanswered), `garbled` (200 with a body that is
  not JSON), `odd_shape` (200 with JSON of another shape: a choice or message that is no object,
  content that is a list, in turn)) hit only the first delivery of a request (by its
  Idempotency-Key), so retries pass;
- content faults (`truncated` (finish_reason "length"), `malformed` (no labels), `too_few` (a pair
  missing), `captions` (an answer names its source), `bad_box` (a referring box matching nothing),
  `failed_generation`) are a function of (scene, task, seed): the same request always gets the same
  answer, and a regeneration (a new seed) rolls again. `always_bad` picks items whose every answer
  mentions "captions", so they end in the failure report; `bad_request` items always get a 400.

`/v1/files` and `/v1/batches` run the Batch API over the same answers (`FakeBatches`, `batches=` its
settings): statuses from validating to completed, failed, expired and cancelled batches, shuffled output,
error lines, slow polling; it counts each request's submissions.

With `api_key` set, other keys get a 401 whose message echoes the key it got (as a careless proxy
would), to prove the client never repeats it.

Every request is logged (`log`): time, Idempotency-Key, delivery number, fault, status. In a thread:
`with FakeOpenAI(...) as server: server.base_url`. As a process (benches):
`python -m tests.fake_openai --port-file F --log FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TRANSPORT_FAULTS = ("rate_limit", "server_error", "timeout", "drop", "garbled", "odd_shape")
# 200s that parse as JSON but are not a chat.completion a client can read
ODD_SHAPES = (
    {"choices": ["a choice that is a string"]},
    {"choices": [{"message": ["a message that is a list"], "finish_reason": "stop"}]},
    {"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}}]},
)
PERMANENT_FAULTS = ("bad_request",)
CONTENT_FAULTS = ("truncated", "malformed", "too_few", "captions", "bad_box", "failed_generation")


def _unit(*parts) -> float:
    """A number in [0, 1) fixed by `parts`."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _pick(rates: dict[str, float], names: tuple[str, ...], *key) -> str | None:
    """At most one fault of `names`, each with its rate, fixed by `key`."""
    u = _unit(*key)
    edge = 0.0
    for name in names:
        edge += rates.get(name, 0.0)
        if u < edge:
            return name
    return None


# --- answers in the paper's formats ---------------------------------------------------------------


def parse_scene(user: str) -> dict:
    """The fake's reading of the prompt's input blocks: captions, (label, box text) objects and regions."""
    scene: dict = {"captions": [], "objects": [], "regions": []}
    section = None
    for line in user.splitlines():
        stripped = line.strip()
        if stripped.startswith("(1) captions"):
            section = "captions"
        elif stripped.startswith("(2) objects"):
            section = "objects"
        elif stripped.startswith("(3) regions"):
            section = "regions"
        elif stripped and section == "captions":
            scene["captions"].append(stripped)
        elif stripped and section:
            label, sep, box = stripped.rpartition(": [")
            scene[section].append((label, "[" + box) if sep else (stripped, ""))
    return scene


def task_of(system: str) -> str:
    if "Design three conversations" in system:
        return "conversation"
    if "creating 10 question and answer pairs" in system:
        return "referring_qa"
    if "Create 15 plausible" in system:
        return "complex_reasoning"
    return "detail_description"


def _things(scene: dict, seed: int) -> list[tuple[str, str]]:
    things = [o for o in scene["objects"] if o[1]] or [r for r in scene["regions"] if r[1]]
    if not things:
        return [("scene", "")]
    shift = seed % len(things)
    return things[shift:] + things[:shift]


def make_answer(task: str, scene: dict, seed: int) -> str:
    things = _things(scene, seed)
    names = [name for name, _ in things]

    def thing(k: int) -> tuple[str, str]:
        return things[k % len(things)]

    if task == "conversation":
        lines = []
        for c in range(3):
            lines += [f"Conversation {c + 1}:", f"Topic: The {thing(c)[0]} and its surroundings"]
            for q in range(5):
                name, other = thing(c + q)[0], thing(c + q + 1)[0]
                lines += [
                    f"User: What can you tell me about the {name} (seed {seed}, turn {q})?",
                    f"GPT: The {name} is clearly visible, and it stands near the {other}.",
                ]
            lines.append("")
        return "\n".join(lines)
    if task == "complex_reasoning":
        return "\n\n".join(
            f"Question: Why might the {thing(q)[0]} be placed close to the {thing(q + 1)[0]} (variant {seed % 97}, {q})?\n"
            f"Answer: Looking at the arrangement, the {thing(q)[0]} sits near the {thing(q + 1)[0]}, "
            "which suggests they are used together."
            for q in range(15)
        )
    if task == "referring_qa":
        return "\n\n".join(
            f"Question: Where is the <st>{thing(q)[0]}<ed> {thing(q)[1]} (variant {seed % 89}, {q})?\n"
            f"Answer: The <st>{thing(q)[0]}<ed> {thing(q)[1]} is next to the <st>{thing(q + 1)[0]}<ed> {thing(q + 1)[1]}."
            for q in range(10)
        )
    return (
        f"In the image I see {len(names)} things, among them a {', a '.join(names[:6])}. "
        f"The {names[0]} stands out (variant {seed % 83}), and the rest of the scene surrounds it."
    )


def apply_content_fault(fault: str | None, task: str, answer: str) -> tuple[str, str]:
    """(content, finish_reason) after a content fault."""
    if fault == "truncated":
        return answer[: len(answer) // 2], "length"
    if fault == "malformed":
        return answer.replace("Question:", "").replace("Answer:", "").replace("User:", "").replace(
            "GPT:", ""
        ), "stop"
    if fault == "too_few" and task != "detail_description":
        marker = "Question:" if task != "conversation" else "User:"
        return answer[: answer.rfind(marker)], "stop"
    if fault == "captions":
        for label in ("Answer: ", "GPT: "):
            if label in answer:
                return answer.replace(label, label + "According to the captions, ", 1), "stop"
        return "Based on the captions, " + answer, "stop"
    if fault == "bad_box" and task == "referring_qa":
        start = answer.find("<ed> [")
        if start >= 0:
            end = answer.find("]", start)
            return answer[: start + 5] + "[0.001, 0.001, 0.004, 0.003]" + answer[end + 1 :], "stop"
    if fault == "failed_generation":
        return "It seems like your message is empty. Please provide the information about the image.", "stop"
    return answer, "stop"


def _request_facts(request: dict) -> tuple[str, int, str, str]:
    """(task, seed, scene hash, user message) of a chat request body."""
    messages = request["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    scene_hash = hashlib.blake2b(user.encode(), digest_size=8).hexdigest()
    return task_of(system), request.get("seed") or 0, scene_hash, user


# --- the server -----------------------------------------------------------------------------------


class FakeOpenAI:
    def __init__(
        self,
        rates: dict[str, float] | None = None,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        retry_after: float = 0.2,
        hang: float = 3.0,
        model_name: str | None = None,
        known_models: tuple[str, ...] | None = None,
        log_path: str | Path | None = None,
        batches: dict | None = None,
    ):
        self.rates = dict(rates or {})
        unknown = (
            set(self.rates)
            - set(TRANSPORT_FAULTS)
            - set(CONTENT_FAULTS)
            - set(PERMANENT_FAULTS)
            - {"always_bad"}
        )
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        self.api_key = api_key
        self.delay = delay
        self.retry_after = retry_after
        self.hang = hang
        self.model_name = model_name
        self.known_models = known_models
        self.log: list[dict] = []
        self._log_file = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115
        self._deliveries: Counter = Counter()
        self._odd_shapes = 0
        self.batches = FakeBatches(self, **(batches or {}))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- HTTP plumbing ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                        body += await reader.readexactly(size)
                        await reader.readexactly(2)
                    await reader.readexactly(2)
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._handle(method, path, headers, body, writer)
                if not keep:
                    break
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _send(writer, status: int, payload, extra: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reason = {
            200: "OK",
            401: "Unauthorized",
            404: "Not Found",
            429: "Too Many Requests",
            500: "Internal Server Error",
        }
        head = [
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    def _record(self, entry: dict) -> None:
        self.log.append(entry)
        if self._log_file:
            self._log_file.write(json.dumps(entry) + "\n")

    async def _handle(self, method: str, target: str, headers: dict, body: bytes, writer) -> bool:
        now = time.time()
        parts = urlsplit(target)
        path, query = parts.path.rstrip("/"), parse_qs(parts.query)
        auth = headers.get("authorization", "")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            got = auth.removeprefix("Bearer ")
            self._record({"t": now, "key": headers.get("idempotency-key"), "status": 401})
            await self._send(
                writer,
                401,
                {"error": {"message": f"Incorrect API key provided: {got}", "type": "invalid_request_error"}},
            )
            return True
        if path.endswith("/chat/completions") and method == "POST":
            return await self._chat(json.loads(body), headers, writer, now)
        if path.startswith(("/v1/files", "/v1/batches")):
            status, payload = self.batches.route(method, path, query, headers, body)
            if status == 200 and self.batches.poll_delay and method == "GET" and "/batches/" in path:
                await asyncio.sleep(self.batches.poll_delay)  # slow polling
            await self._send(writer, status, payload)
            return True
        await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        return True

    def completion(self, request: dict, request_key: str, now: float) -> tuple[int, dict, str | None]:
        """(status, body, fault) of one chat completion with the content faults (no transport faults): what
        the chat route answers past its transport faults, and what a batch answers for one request line."""
        if self.known_models is not None and request.get("model") not in self.known_models:
            return 404, {"error": {"message": f"The model {request.get('model')} does not exist"}}, None
        messages = request["messages"]
        task, seed, scene_hash, user = _request_facts(request)
        if _unit("bad_request", scene_hash, task) < self.rates.get("bad_request", 0.0):
            return (
                400,
                {"error": {"message": "This model's maximum context length is 10 tokens"}},
                "bad_request",
            )
        always_bad = _unit("always_bad", scene_hash, task) < self.rates.get("always_bad", 0.0)
        content_fault = (
            "captions" if always_bad else _pick(self.rates, CONTENT_FAULTS, "content", scene_hash, task, seed)
        )
        content, finish = apply_content_fault(content_fault, task, make_answer(task, parse_scene(user), seed))
        prompt_chars = sum(len(m["content"]) for m in messages)
        return (
            200,
            {
                "id": f"chatcmpl-{request_key}",
                "object": "chat.completion",
                "created": int(now),
                "model": self.model_name or request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_chars // 4 + len(content) // 4,
                },
            },
            content_fault,
        )

    async def _chat(self, request: dict, headers: dict, writer, now: float) -> bool:
        task, seed, scene_hash, _ = _request_facts(request)
        request_key = headers.get("idempotency-key") or f"{scene_hash}-{task}-{seed}"
        delivery = self._deliveries[request_key]
        self._deliveries[request_key] += 1
        transport = _pick(self.rates, TRANSPORT_FAULTS, "transport", request_key) if delivery == 0 else None
        entry = {
            "t": now,
            "key": request_key,
            "delivery": delivery,
            "task": task,
            "seed": seed,
            "fault": transport,
        }
        if self.delay:
            await asyncio.sleep(self.delay)
        if transport == "rate_limit":
            self._record({**entry, "status": 429})
            await self._send(
                writer,
                429,
                {"error": {"message": "Rate limit reached"}},
                {"Retry-After": f"{self.retry_after:g}"},
            )
            return True
        if transport == "server_error":
            self._record({**entry, "status": 500})
            await self._send(writer, 500, {"error": {"message": "The server had an error"}})
            return True
        if transport == "drop":
            self._record({**entry, "status": "dropped"})
            return False
        if transport == "timeout":
            self._record({**entry, "status": "hung"})
            await asyncio.sleep(self.hang)
            return False
        if transport == "garbled":
            self._record({**entry, "status": "garbled"})
            await self._send(writer, 200, b'{"id": "chatcmpl-x", "choices": [{"mess')
            return True
        if transport == "odd_shape":
            shape = ODD_SHAPES[self._odd_shapes % len(ODD_SHAPES)]
            self._odd_shapes += 1
            self._record({**entry, "status": "odd_shape"})
            await self._send(
                writer, 200, {"id": f"chatcmpl-{request_key}", "model": request["model"], **shape}
            )
            return True
        status, payload, fault = self.completion(request, request_key, now)
        self._record({**entry, "fault": fault, "status": status})
        await self._send(writer, status, payload)
        return True

    # --- running it ---

    async def start_async(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> FakeOpenAI:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        loop = self._loop
        if loop is not None:

            async def shutdown():
                self._server.close()
                for task in asyncio.all_tasks(loop):
                    if task is not asyncio.current_task():
                        task.cancel()

            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(5)
        if self._log_file:
            self._log_file.close()

    def run_batch_file(self, requests: str | Path, output: str | Path) -> int:
        """Answer a batch request file into an output file, in a shuffled order: what `vllm run-batch -i
        requests -o output` does. Returns the number of lines answered."""
        lines = [json.loads(line) for line in Path(requests).read_bytes().splitlines() if line.strip()]
        records = []
        for k, line in enumerate(lines):
            status, body, _ = self.completion(line["body"], line["custom_id"], time.time())
            records.append(
                {
                    "id": f"vllm-{k}",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": status, "request_id": f"vllm-batch-{k}", "body": body},
                    "error": None,
                }
            )
        random.Random(str(requests)).shuffle(records)
        Path(output).write_text("".join(json.dumps(r) + "\n" for r in records))
        return len(records)

    def statuses(self) -> Counter:
        return Counter(str(e.get("status")) for e in self.log)


# --- the Batch API: /v1/files and /v1/batches ------------------------------------------------------


class FakeBatches:
    """Files and batches of the Batch API, over the chat answers of `server.completion`.

    A batch moves one status per `steps` retrieves: validating -> in_progress -> finalizing -> completed. Batches
    are numbered from 1 in creation order; those in `fail` fail validation, those in `expire` expire after
    running half their requests (the rest in the error file as `batch_expired`), `cancel` makes a batch
    cancelling, then cancelled after running a third. Output lines come in a shuffled order. A request line
    whose first submission draws under `error_rate` is answered in the error file with a 500 (a second
    submission passes, unless `persistent_errors`). `garble` and `cut` batches get one output line that is not JSON, or a last line cut
    short. `submitted` counts each custom_id's submissions, `created` the batches made.
    """

    def __init__(
        self,
        server: FakeOpenAI,
        *,
        steps: int = 1,
        poll_delay: float = 0.0,
        expire: tuple[int, ...] = (),
        fail: tuple[int, ...] = (),
        garble: tuple[int, ...] = (),
        cut: tuple[int, ...] = (),
        error_rate: float = 0.0,
        persistent_errors: bool = False,
    ):
        self.server = server
        self.persistent_errors = persistent_errors
        self.steps, self.poll_delay, self.error_rate = steps, poll_delay, error_rate
        self.expire, self.fail, self.garble, self.cut = set(expire), set(fail), set(garble), set(cut)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.submitted: Counter = Counter()
        self.created = 0
        self.retrieves = 0
        self._lock = threading.Lock()

    def configure(self, **settings) -> None:
        for name, value in settings.items():
            setattr(self, name, set(value) if name in ("expire", "fail", "garble", "cut") else value)

    def _file(self, content: bytes, purpose: str, filename: str) -> dict:
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "content": content,
        }
        return self.files[file_id]

    @staticmethod
    def _public(file: dict) -> dict:
        return {k: v for k, v in file.items() if k != "content"}

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, object]:
        with self._lock:
            return self._route(method, path, query, headers, body)

    def _route(self, method, path, query, headers, body):
        parts = path.split("/")[2:]  # after /v1
        if parts == ["files"] and method == "POST":
            form = _multipart(headers.get("content-type", ""), body)
            if form.get("purpose", (b"",))[0] != b"batch" or "file" not in form:
                return 400, {"error": {"message": "purpose must be batch, with a file"}}
            return 200, self._public(self._file(form["file"][0], "batch", form["file"][1]))
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            file = self.files.get(parts[1])
            if file is None:
                return 404, {"error": {"message": f"No such File object: {parts[1]}"}}
            return 200, file["content"]
        if parts == ["batches"] and method == "POST":
            return self._create(json.loads(body))
        if parts == ["batches"] and method == "GET":
            listed = sorted(self.batches.values(), key=lambda b: b["number"], reverse=True)
            after = query.get("after", [None])[0]
            if after:
                ids = [b["id"] for b in listed]
                listed = listed[ids.index(after) + 1 :] if after in ids else []
            limit = int(query.get("limit", ["20"])[0])
            page = [self._shown(b) for b in listed[:limit]]
            return 200, {"object": "list", "data": page, "has_more": len(listed) > limit}
        if len(parts) >= 2 and parts[0] == "batches":
            batch = self.batches.get(parts[1])
            if batch is None:
                return 404, {"error": {"message": f"No batch found with id '{parts[1]}'."}}
            if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                    batch["status"] = "cancelling"
                return 200, self._shown(batch)
            if len(parts) == 2 and method == "GET":
                self.retrieves += 1
                self._advance(batch)
                return 200, self._shown(batch)
        return 404, {"error": {"message": f"no route {method} {path}"}}

    def _create(self, request: dict) -> tuple[int, object]:
        file = self.files.get(request.get("input_file_id"))
        if file is None:
            return 404, {"error": {"message": f"No such File object: {request.get('input_file_id')}"}}
        if request.get("endpoint") != "/v1/chat/completions" or request.get("completion_window") != "24h":
            return 400, {"error": {"message": "endpoint or completion_window not supported"}}
        lines = [json.loads(line) for line in file["content"].splitlines() if line.strip()]
        self.created += 1
        first = {}
        for line in lines:
            first[line["custom_id"]] = self.submitted[line["custom_id"]] == 0
            self.submitted[line["custom_id"]] += 1
        batch_id = f"batch_{self.created:04d}"
        self.batches[batch_id] = {
            "id": batch_id,
            "number": self.created,
            "object": "batch",
            "endpoint": request["endpoint"],
            "input_file_id": file["id"],
            "completion_window": "24h",
            "status": "validating",
            "created_at": int(time.time()),
            "metadata": request.get("metadata"),
            "lines": lines,
            "first": first,
            "polls": 0,
            "done": 0,
        }
        return 200, self._shown(self.batches[batch_id])

    @staticmethod
    def _shown(batch: dict) -> dict:
        shown = {k: v for k, v in batch.items() if k not in ("lines", "first", "polls", "number", "done")}
        total = len(batch["lines"])
        failed = batch.get("failed_count", 0)
        shown["request_counts"] = {"total": total, "completed": batch["done"], "failed": failed}
        return shown

    def _advance(self, batch: dict) -> None:
        batch["polls"] += 1
        if batch["status"] == "cancelling":
            self._finish(batch, "cancelled", len(batch["lines"]) // 3)
            return
        if batch["polls"] % self.steps:
            return
        status, number, n = batch["status"], batch["number"], len(batch["lines"])
        if status == "validating":
            if number in self.fail:
                batch["status"] = "failed"
                batch["errors"] = {
                    "object": "list",
                    "data": [{"code": "invalid_request", "message": "line 1: the model is not available"}],
                }
            else:
                batch["status"] = "in_progress"
                batch["done"] = n // 2
        elif status == "in_progress":
            if number in self.expire:
                self._finish(batch, "expired", n // 2)
            else:
                batch["status"] = "finalizing"
        elif status == "finalizing":
            self._finish(batch, "completed", n)

    def _finish(self, batch: dict, status: str, ran: int) -> None:
        """Write the batch's output and error files for its first `ran` requests (in file order); the others
        are in the error file as expired, or nowhere (cancelled)."""
        now = time.time()
        outputs, errors = [], []
        for k, line in enumerate(batch["lines"]):
            custom_id = line["custom_id"]
            if k >= ran:
                if status == "expired":
                    errors.append(
                        {
                            "id": f"batch_req_{batch['number']}_{k}",
                            "custom_id": custom_id,
                            "response": None,
                            "error": {
                                "code": "batch_expired",
                                "message": "This request could not be executed "
                                "before the completion window expired.",
                            },
                        }
                    )
                continue
            first = batch["first"][custom_id] or self.persistent_errors
            if first and _unit("batch_error", custom_id) < self.error_rate:
                code, body = 500, {"error": {"message": "The server had an error", "type": "server_error"}}
            else:
                code, body, _ = self.server.completion(line["body"], custom_id, now)
            record = {
                "id": f"batch_req_{batch['number']}_{k}",
                "custom_id": custom_id,
                "response": {"status_code": code, "request_id": f"req_{k}", "body": body},
                "error": None,
            }
            (outputs if code == 200 else errors).append(record)
        random.Random(batch["id"]).shuffle(outputs)
        out = [json.dumps(r).encode() + b"\n" for r in outputs]
        if batch["number"] in self.garble and out:
            out[0] = b'{"id": "batch_req_x", "custom_id": \n'
        if batch["number"] in self.cut and out:
            out[-1] = out[-1][: len(out[-1]) // 2]
        batch["status"] = status
        batch["done"] = len(outputs)
        batch["failed_count"] = len(errors)
        batch[f"{status}_at"] = int(now)
        if out:
            batch["output_file_id"] = self._file(b"".join(out), "batch_output", "output.jsonl")["id"]
        if errors:
            content = b"".join(json.dumps(r).encode() + b"\n" for r in errors)
            batch["error_file_id"] = self._file(content, "batch_output", "errors.jsonl")["id"]


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str]]:
    """The fields of a multipart/form-data body: name -> (bytes, filename)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_payload(decode=True) or b"", part.get_filename() or "")
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description="a local OpenAI-compatible chat server (tests, benches)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--log", help="append one JSON line per request")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--rate", action="append", default=[], metavar="FAULT=P")
    args = parser.parse_args()
    rates = {k: float(v) for k, v in (r.split("=", 1) for r in args.rate)}
    server = FakeOpenAI(rates, delay=args.delay, log_path=args.log)

    async def serve():
        await server.start_async(args.port)
        if args.port_file:
            tmp = args.port_file + ".tmp"
            Path(tmp).write_text(str(server.port))
            os.replace(tmp, args.port_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server._server.close()

    asyncio.run(serve())
    if server._log_file:
        server._log_file.close()


if __name__ == "__main__":
    main()
