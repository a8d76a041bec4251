"""A resilient client for any OpenAI-compatible chat endpoint (OpenAI, Azure, vLLM, SGLang, Ollama...).

`openai.AsyncOpenAI` does the HTTP (connection pool, auth, error types); this module adds what a
400K-request job needs:

- requests go through the client's generic `post` with the body as JSON and the answer as bytes
  read by orjson: `chat.completions.create` validates and converts every request and response
  through typed models, which cost more CPU than the rest of the pipeline together (bench/generate.py);

- bounded concurrency is the caller's (the runner's worker count); here, every attempt, retries
  included, first passes a requests-per-minute and a tokens-per-minute limiter. openai's own
  retries are off (`max_retries=0`) because they would bypass both limiters;
- retries with exponential backoff and jitter on 429, 408, 409, 5xx, timeouts, dropped
  connections and unreadable bodies. A `Retry-After` (or `retry-after-ms`) is honoured, and a 429
  pauses every worker, not only the one that met it;
- errors that retrying cannot fix stop the run (`FatalAPIError`): 401/403 (bad key, no access) and
  404 (unknown model or wrong base URL). Other 4xx fail the one request (`RequestFailed`);
- the key comes from the environment and is removed from every message this module makes
  (`redact`). openai logs no header values; nothing here logs a request body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

import openai
import orjson

from svit_dataset.errors import SvitError, SvitInputError
from svit_dataset.secrets import redact, register_secret
from svit_dataset.settings import check_number, setting

logger = logging.getLogger(__name__)

# Recent openai releases attach the key only to requests that ask for it (`security`); older ones
# always attach it and know no such option.
try:
    from openai._types import RequestOptions as _RequestOptions

    _PER_REQUEST_AUTH = "security" in _RequestOptions.__annotations__
except ImportError:  # pragma: no cover - layout of other openai versions
    _PER_REQUEST_AUTH = False
LOCAL_PLACEHOLDER_KEY = "not-needed"  # vLLM, Ollama... accept any key; openai's client wants one


class FatalAPIError(SvitError):
    """The endpoint refuses every request (bad key, unknown model, wrong URL): the run stops."""


class RequestFailed(Exception):
    """One request failed for good: `kind` is `bad_request` (a 4xx) or `api_error` (retries used up)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclasses.dataclass
class ClientSettings:
    """How to reach the endpoint and how hard to push it (the client flags of `svit generate`)."""

    model: str = setting("gpt-4o-mini", "model name at the endpoint")
    base_url: str | None = setting(None, "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM)")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the key")
    rpm: float | None = setting(None, "requests-per-minute cap (retries included)")
    tpm: float | None = setting(None, "tokens-per-minute cap (estimated, corrected by usage)")
    timeout: float = setting(120.0, "seconds per request before a retry")
    max_retries: int = setting(6, "retries per request on 429/5xx/timeouts")
    backoff_base: float = setting(0.5, "first retry pause in seconds (doubles, with jitter)")
    backoff_max: float = setting(30.0, "longest retry pause in seconds")
    max_retry_after: float = setting(600.0, "longest Retry-After honoured, in seconds")
    temperature: float | None = setting(None, "sampling temperature (default: the endpoint's)")
    max_tokens: int | None = setting(2048, "completion token limit per request")
    max_tokens_field: str = setting(
        "max_tokens",
        "request field of that limit (newer OpenAI models want max_completion_tokens)",
        choices=("max_tokens", "max_completion_tokens"),
    )

    def __post_init__(self):
        """Range checks before any request: a bad setting would otherwise fail every item, slowly."""
        positive = {"rpm": self.rpm, "tpm": self.tpm, "timeout": self.timeout, "max_tokens": self.max_tokens}
        for name, value in positive.items():  # finite too: an infinite timeout hangs on a dead endpoint
            check_number(f"--{name.replace('_', '-')}", value, 0, above=True, optional=True)
        check_number("--max-retries", self.max_retries, 0)
        for name in ("backoff_base", "backoff_max", "max_retry_after"):  # pauses: NaN breaks the sleep
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), 0)
        check_number("--temperature", self.temperature, 0, 2, optional=True)
        if self.max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise SvitInputError("--max-tokens-field must be max_tokens or max_completion_tokens")
        if self.base_url is not None:
            check_base_url(self.base_url)

    def request_params(self) -> dict:
        """Sampling parameters sent with every request (and recorded in provenance)."""
        params: dict = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params[self.max_tokens_field] = self.max_tokens
        return params


def chat_body(settings: ClientSettings, messages: Sequence[dict], seed: int | None) -> dict:
    """The `/v1/chat/completions` body of one request: posted online, or written to a batch file."""
    return {"model": settings.model, "messages": list(messages), "seed": seed, **settings.request_params()}


def check_base_url(url: str) -> None:
    """An http(s) URL with a host; the message never repeats a credential the URL may carry."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a port that is not a number, brackets that do not close...
        valid = False
    if not valid:
        raise SvitInputError(
            "--base-url is not an http(s) URL with a host (not repeated here: it may hold a key); pass e.g. "
            "http://localhost:8000/v1 or https://api.openai.com/v1"
        )


def resolve_api_key(settings: ClientSettings) -> str:
    key = os.environ.get(settings.api_key_env, "")
    register_secret(key)  # kept out of every message and log record from here on
    if key:
        return key
    if settings.base_url:
        return LOCAL_PLACEHOLDER_KEY
    raise SvitInputError(
        f"no API key: set the environment variable {settings.api_key_env} (or name another with "
        "--api-key-env), or pass --base-url for a local server that needs none"
    )


class RateLimiter:
    """At most `per_minute` units a minute, paced evenly (GCRA), FIFO among waiters.

    `tolerance` seconds of early admission absorb event-loop wake-up lag, so the long-run rate is
    the cap itself, not a little under it. `adjust` corrects a reservation once the true amount is
    known (tokens of a finished request).
    """

    def __init__(self, per_minute: float, tolerance: float | None = None):
        if per_minute <= 0:
            raise SvitInputError(f"rate limit must be positive, got {per_minute}")
        self.seconds_per_unit = 60.0 / per_minute
        self.tolerance = self.seconds_per_unit if tolerance is None else tolerance
        self._tat = 0.0  # theoretical arrival time of the next unit
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        async with self._lock:
            now = time.monotonic()
            tat = max(self._tat, now)
            wait = tat - self.tolerance - now
            if wait > 0:
                await asyncio.sleep(wait)
            self._tat = tat + amount * self.seconds_per_unit

    def adjust(self, amount: float) -> None:
        self._tat += amount * self.seconds_per_unit


@dataclasses.dataclass
class ChatResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    response_model: str


@dataclasses.dataclass
class ClientStats:
    requests: int = 0  # HTTP attempts sent, retries included
    ok: int = 0
    retries: Counter = dataclasses.field(default_factory=Counter)  # by cause
    prompt_tokens: int = 0
    completion_tokens: int = 0


def retry_after_seconds(headers) -> float | None:
    """Seconds asked by `retry-after-ms` or `Retry-After` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """`await client.complete(messages, ...)` with limits and retries; use as `async with`."""

    def __init__(self, settings: ClientSettings, stats: ClientStats | None = None):
        self.settings = settings
        self.stats = stats or ClientStats()
        self._key = resolve_api_key(settings)
        self._rpm = RateLimiter(settings.rpm) if settings.rpm else None
        self._tpm = RateLimiter(settings.tpm, tolerance=1.0) if settings.tpm else None
        self._resume_at = 0.0  # a 429's Retry-After holds every worker until then
        self._client = openai.AsyncOpenAI(
            api_key=self._key, base_url=settings.base_url, timeout=settings.timeout, max_retries=0
        )

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self._client.close()

    def _safe(self, text: str) -> str:
        return redact(text, [self._key])

    async def _wait_turn(self, estimated_tokens: int) -> None:
        pause = self._resume_at - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        if self._rpm:
            await self._rpm.acquire(1)
        if self._tpm:
            await self._tpm.acquire(estimated_tokens)

    def _backoff(self, retry: int) -> float:
        s = self.settings
        return min(s.backoff_max, s.backoff_base * 2**retry) * (0.5 + random.random() / 2)

    async def complete(
        self, messages: Sequence[dict], *, seed: int | None, request_id: str, estimated_tokens: int
    ) -> ChatResult:
        """One chat completion. Raises RequestFailed (this request) or FatalAPIError (the run)."""
        s = self.settings
        last = ""
        for retry in range(s.max_retries + 1):
            await self._wait_turn(estimated_tokens)
            self.stats.requests += 1
            delay: float | None = None
            try:
                raw = await self._client.post(
                    "/chat/completions",
                    cast_to=bytes,
                    body=chat_body(s, messages, seed),
                    options=self._options(request_id),
                )
                result = self._result(orjson.loads(raw), estimated_tokens)
            except openai.APIStatusError as err:
                status = err.status_code
                detail = self._safe(f"HTTP {status}: {_error_message(err)}")
                if status in (401, 403):
                    raise FatalAPIError(
                        f"{redact(s.base_url or 'the OpenAI API')} refused the key from ${s.api_key_env} "
                        f"({detail}). Set a valid key and run again; finished work is kept."
                    ) from None
                if status == 404:
                    raise FatalAPIError(
                        f"{redact(s.base_url or 'the OpenAI API')} does not know model {s.model!r} or the URL "
                        f"({detail}). Check --model and --base-url (it usually ends in /v1)."
                    ) from None
                if status == 429:
                    delay = retry_after_seconds(err.response.headers)
                    if delay is not None:
                        delay = min(delay, s.max_retry_after)
                        self._resume_at = max(self._resume_at, time.monotonic() + delay)
                    self.stats.retries["rate_limited"] += 1
                elif status in (408, 409) or status >= 500:
                    delay = retry_after_seconds(err.response.headers)
                    self.stats.retries[f"http_{status}"] += 1
                else:
                    raise RequestFailed("bad_request", detail) from None
                last = detail
            except openai.APITimeoutError:
                self.stats.retries["timeout"] += 1
                last = f"no answer within {s.timeout}s"
            except openai.APIConnectionError as err:
                self.stats.retries["connection"] += 1
                last = self._safe(f"connection failed: {type(err.__cause__ or err).__name__}")
            except (openai.APIResponseValidationError, ValueError, KeyError, TypeError, IndexError) as err:
                self.stats.retries["unreadable_response"] += 1
                last = self._safe(f"unreadable response: {type(err).__name__}")
            else:
                return result
            if retry < s.max_retries:
                wait = delay if delay is not None else self._backoff(retry)
                logger.debug("request %s: %s; retry %d in %.2fs", request_id, last, retry + 1, wait)
                await asyncio.sleep(wait)
        raise RequestFailed("api_error", f"{last} (after {s.max_retries} retries)")

    def _options(self, request_id: str) -> dict:
        options: dict = {"headers": {"Idempotency-Key": request_id}}
        if _PER_REQUEST_AUTH:
            options["security"] = {"bearer_auth": True}
        return options

    def _result(self, data: object, estimated_tokens: int) -> ChatResult:
        """The parts of a chat.completion body we use; a body without them, or of other shapes, raises
        TypeError/KeyError/IndexError/ValueError (an unreadable response: a retry)."""
        choice = _expect_dict(_expect_dict(data, "body")["choices"][0], "choices[0]")
        message = _expect_dict(choice.get("message") or {}, "choices[0].message")
        text = message.get("content")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"choices[0].message.content is a {type(text).__name__}, not text")
        usage = _expect_dict(data.get("usage") or {}, "usage")
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        finish_reason = choice.get("finish_reason")
        response_model = data.get("model")
        self.stats.ok += 1
        self.stats.prompt_tokens += prompt
        self.stats.completion_tokens += completion
        if self._tpm and usage:
            self._tpm.adjust(prompt + completion - estimated_tokens)
        return ChatResult(
            text=text or "",  # None (a refusal, a tool call): judged like an empty answer, regenerated
            finish_reason=finish_reason if isinstance(finish_reason, str) else "",
            prompt_tokens=prompt,
            completion_tokens=completion,
            response_model=response_model
            if isinstance(response_model, str) and response_model
            else self.settings.model,
        )


def _expect_dict(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is a {type(value).__name__}, not an object")
    return value


def _error_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(err.message)[:300]
