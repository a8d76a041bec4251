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
import signal
import threading
import time
from collections import Counter
from pathlib import Path

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

    async def _handle(self, method: str, path: str, headers: dict, body: bytes, writer) -> bool:
        now = time.time()
        if not path.rstrip("/").endswith("/chat/completions") or method != "POST":
            await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
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
        request = json.loads(body)
        if self.known_models is not None and request.get("model") not in self.known_models:
            self._record({"t": now, "key": headers.get("idempotency-key"), "status": 404})
            await self._send(
                writer, 404, {"error": {"message": f"The model {request.get('model')} does not exist"}}
            )
            return True
        messages = request["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        task = task_of(system)
        seed = request.get("seed") or 0
        scene_hash = hashlib.blake2b(user.encode(), digest_size=8).hexdigest()
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
        if _unit("bad_request", scene_hash, task) < self.rates.get("bad_request", 0.0):
            self._record({**entry, "fault": "bad_request", "status": 400})
            await self._send(
                writer, 400, {"error": {"message": "This model's maximum context length is 10 tokens"}}
            )
            return True
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
        always_bad = _unit("always_bad", scene_hash, task) < self.rates.get("always_bad", 0.0)
        content_fault = (
            "captions" if always_bad else _pick(self.rates, CONTENT_FAULTS, "content", scene_hash, task, seed)
        )
        content, finish = apply_content_fault(content_fault, task, make_answer(task, parse_scene(user), seed))
        prompt_chars = sum(len(m["content"]) for m in messages)
        self._record({**entry, "fault": content_fault, "status": 200})
        await self._send(
            writer,
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
        )
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

    def statuses(self) -> Counter:
        return Counter(str(e.get("status")) for e in self.log)


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
