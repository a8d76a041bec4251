"""One commit of a folder's files to a Hub repo (dataset or model), with the Hub's refusals and an unreachable
Hub turned into one clean line. The token comes from the argument, HF_TOKEN or the login, and is never
repeated in a message."""

from __future__ import annotations

import os
import re
from pathlib import Path

from svit_dataset.errors import SvitInputError

# `name` or `org/name`: letters, digits, `-`, `_`, `.` (huggingface_hub's own rule, without its length limit)
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")

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
    return text if _REPO_ID.fullmatch(text) else None


def _is_transport_error(err: BaseException) -> bool:
    """A connection that failed (refused, reset, timed out), whichever HTTP client huggingface_hub uses
    (httpx, its httpx2 fork, requests): they all name their base class so."""
    return isinstance(err, ConnectionError | TimeoutError) or any(
        cls.__name__ in ("TransportError", "ConnectionError", "Timeout") for cls in type(err).__mro__
    )


__all__ = ["hub_repo_id", "push_files"]
