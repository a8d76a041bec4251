"""Keeping credentials out of messages and logs.

A key may reach svit from the environment (the usual way) or inside a URL someone typed
(`https://user:KEY@host/v1`, `...?api-key=KEY`). Every error message and log record that could
carry either passes through `redact`; `RedactingFilter` does it for log records of any library
(httpx and openai log request URLs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

# Shapes of API keys (OpenAI sk-..., HF hf_...), wherever they appear.
_KEY_LIKE = re.compile(r"\b(?:(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,})")
# user:password@ in a URL (the password may be a key); a user name alone is kept.
# The lookbehind starts a scheme only at the beginning of a word: a long run of letters is scanned once,
# not once per letter (log records can hold anything a server answered).
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@"
)
# Query parameters that carry credentials: api-key, api_key, key, token, access_token, sig, ...
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:api[-_]?key|key|token|access[-_]?token|auth|sig|signature|secret|password)=)[^&#\s]+",
    re.IGNORECASE,
)

_known_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret (e.g. the key read from the environment) so that `redact` removes it everywhere."""
    if secret and len(secret) >= 4:
        _known_secrets.add(secret)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` without secrets: the ones given or registered, key-shaped strings and URL credentials."""
    for secret in (*secrets, *_known_secrets):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    text = _SECRET_PARAM.sub(r"\g<name>***", text)
    return _KEY_LIKE.sub("***", text)


class RedactingFilter(logging.Filter):
    """Rewrites every record's message through `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach `RedactingFilter` to the handlers of `logger` (default: the root logger), once each.

    Filters on handlers see records propagated from every library's logger, which filters on
    loggers do not.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
