"""Loading user-named checkpoints with errors a user can act on.

transformers, peft and safetensors report a wrong path, a damaged `config.json`, missing weights or a
checkpoint of the wrong kind (a CLIP model passed as the LLM) as OSError, ValueError, KeyError or
RuntimeError (safetensors: its own SafetensorError) with long texts. Inside `loading(flag, path)` any of them becomes one SvitInputError that
names the flag, the path and what to pass instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError  # a damaged or truncated weights file; not an OSError

from svit_dataset.errors import SvitError, SvitInputError


def _looks_local(path: str | os.PathLike) -> bool:
    """A path rather than a Hub id (`org/name` or `name`): it exists, or it is written like a path."""
    text = os.fspath(path)
    return Path(text).expanduser().exists() or text.startswith(("/", ".", "~")) or text.count("/") > 1


@contextlib.contextmanager
def loading(flag: str, path: str | os.PathLike, expected: str) -> Iterator[None]:
    """Turn any loading error inside the block into `SvitInputError("<flag> <path>: ...")`.

    `expected` says what the flag takes, e.g. "a Llama-family causal LM folder or Hub id".
    """
    if _looks_local(path) and not Path(path).expanduser().exists():
        raise SvitInputError(f"{flag} {path}: not found; pass {expected}")
    try:
        yield
    except SvitError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, SafetensorError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise SvitInputError(
            f"{flag} {path}: cannot be loaded ({type(err).__name__}: {first_line}); pass {expected}"
        ) from err
