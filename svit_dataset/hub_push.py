"""One commit of a folder's files to a Hub repo (dataset or model), with the Hub's refusals and an unreachable
Hub turned into one clean line. The token comes from the argument, HF_TOKEN or the login, and is never
repeated in a message."""

from __future__ import annotations

import os
import re
from pathlib import Path

from svit_dataset.errors import SvitInputError

# One part of `org/name`: ASCII letters, digits, `-`, `_`, `.`, starting with a letter or digit, at most 96
# characters (huggingface_hub's `validate_repo_id`, whose `\w` would also let non-ASCII letters through, which
# the Hub refuses); `_bad_repo_part` adds the rest of its rules.
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
REPO_ID_RULE = (
    "ORG/NAME: ASCII letters, digits, '-', '_' and '.', each part starting with a letter or digit, at most 96 "
    "characters, no '--' or '..', not ending with '-', '.' or '.git'"
)

# What to do when the Hub refuses a push.
_PUSH_ADVICE = {
    401: "the token was refused: set HF_TOKEN or run `hf auth login` with a token that may write",
    403: "the token may not write to this repo or organisation: use a write token, or another ORG/NAME",
    404: "no such organisation or repo: check ORG/NAME",
}


def push_files(
    folder: Path,
    files: list[str],
    repo_id: str,
    repo_type: str,
    *,
    readme: str,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str,
) -> str:
    """Upload `files` (paths relative to `folder`) and `readme` as README.md to `repo_id` in one commit (the repo
    is made when missing); returns the commit URL. `private=None` keeps the Hub's default visibility."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    require_hub_repo_id(repo_id, "ORG/NAME")
    operations = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode())]
    operations += [
        CommitOperationAdd(path_in_repo=relative, path_or_fileobj=str(folder / relative))
        for relative in files
        if relative != "README.md"
    ]
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.create_commit(
            repo_id=repo_id, repo_type=repo_type, operations=operations, commit_message=commit_message
        )
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        advice = _PUSH_ADVICE.get(status, "check the repo id and your connection, then push again")
        raise SvitInputError(f"push to {repo_id}: the Hub answered HTTP {status}; {advice}") from err
    except Exception as err:
        if not (isinstance(err, OfflineModeIsEnabled) or _is_transport_error(err)):
            raise
        raise SvitInputError(
            f"push to {repo_id}: cannot reach {api.endpoint} ({type(err).__name__}); check the network, "
            "HF_HUB_OFFLINE (unset it to push) and HF_ENDPOINT"
        ) from err
    return str(getattr(info, "commit_url", info))


def hub_repo_id(value: str | os.PathLike | None) -> str | None:
    """`value` when it names a Hub repo (`org/name`), None when it is a local path (absolute, relative, existing
    here) or no repo id at all: what card metadata and a pushed model may refer to."""
    text = os.fspath(value) if value is not None else ""
    if not text or text.count("/") != 1 or text.startswith(".") or os.path.exists(text):
        return None
    return None if any(_bad_repo_part(part) for part in text.split("/")) else text


def shown_name(value: str | os.PathLike | None) -> str | None:
    """How a card or a results file names a model or dataset: a Hub id as it is, a local path by its folder's
    name only (never an absolute path: cards go to the Hub)."""
    if not value:
        return None
    text = os.fspath(value)
    return hub_repo_id(text) or Path(text.rstrip("/\\")).name or text


def _bad_repo_part(part: str) -> bool:
    return not _REPO_PART.fullmatch(part) or "--" in part or ".." in part or part.endswith(("-", ".", ".git"))


def require_hub_repo_id(value: str | os.PathLike | None, flag: str) -> str:
    """`value` when `hub_repo_id` accepts it, else one line naming `flag` and the rule: every Hub id a command
    is given (push targets, `--model-id` of cards and Spaces) is checked here before any work, so that a quote,
    a third part or a local path never reaches a card's usage code or the Hub."""
    repo_id = hub_repo_id(value)
    if repo_id is not None:
        return repo_id
    text = os.fspath(value) if value is not None else ""
    if text and os.path.exists(text):
        raise SvitInputError(f"{flag} {text!r}: a local path, not a Hub repo id; pass {REPO_ID_RULE}")
    raise SvitInputError(f"{flag} {text!r}: not a Hub repo id; pass {REPO_ID_RULE}")


def _is_transport_error(err: BaseException) -> bool:
    """A connection that failed (refused, reset, timed out), whichever HTTP client huggingface_hub uses
    (httpx, its httpx2 fork, requests): they all name their base class so."""
    return isinstance(err, ConnectionError | TimeoutError) or any(
        cls.__name__ in ("TransportError", "ConnectionError", "Timeout") for cls in type(err).__mro__
    )


__all__ = ["REPO_ID_RULE", "hub_repo_id", "push_files", "require_hub_repo_id"]
