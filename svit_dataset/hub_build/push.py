"""Upload a built folder as a Hub dataset repo, in one commit (svit_dataset.hub_push)."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

from svit_dataset.errors import SvitInputError
from svit_dataset.hub_build.report import RECIPES_DIR, REPORT_FILE
from svit_dataset.hub_push import push_files

# The card's usage code names the folder it was built in; pushed, it names the repo, whatever the folder is called.
_LOAD_CALL = re.compile(r'load_dataset\("[^"\n]*",')

# What a push uploads: the card, the report, the shards, the recipe reports and the statistics.
_PUSHED = (REPORT_FILE, "data/*", f"{RECIPES_DIR}/*", "stats/*")


def push_hub_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str = "Upload SVIT dataset built with svit",
) -> str:
    """Upload a built folder as a Hub dataset repo; the token comes from the argument, HF_TOKEN or the login.

    `private=None` keeps the Hub's default visibility (an organisation may default to private).
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise SvitInputError(f"{folder}: no README.md; pass a folder written by `svit build`")
    # The card was written for local use (`load_dataset("<folder name>", ...)` from its parent);
    # on the Hub its snippet names the repo instead. Everything else goes up as built, in one commit.
    card = _LOAD_CALL.sub(f'load_dataset("{repo_id}",', (folder / "README.md").read_text())
    files = [
        path.relative_to(folder).as_posix()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and any(fnmatch(path.relative_to(folder).as_posix(), p) for p in _PUSHED)
    ]
    return push_files(
        folder,
        files,
        repo_id,
        "dataset",
        readme=card,
        private=private,
        token=token,
        endpoint=endpoint,
        commit_message=commit_message,
    )
