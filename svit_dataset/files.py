"""Safe file-system edges of every command: atomic writes, stale temp files, outputs kept apart from inputs.

One naming scheme for work in progress: `.<name>.tmp-<pid>` beside the file or folder it will become.
A rerun of any command removes the ones whose process is gone (`remove_stale_temps`), so a killed run
leaves nothing behind for long, and a live run elsewhere is never disturbed.

    with atomic_path("out/svit_llava.json") as tmp:   # tmp: out/.svit_llava.json.tmp-<pid>
        write_everything_to(tmp)                       # renamed into place only when this block succeeds
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from svit_dataset.errors import SvitInputError

logger = logging.getLogger(__name__)


def temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """The work-in-progress name of `path` for this process: `.<name>.<kind>-<pid>` in the same folder."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(path: Path, kinds: tuple[str, ...] = ("tmp",)) -> list[Path]:
    """Remove `.<name>.<kind>-<pid>` siblings of `path` whose process is gone; returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for kind in kinds:
        for leftover in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isascii() and pid.isdigit() and not pid_alive(int(pid)):
                logger.info("removing %s, left by an interrupted run", leftover)
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling path to write a file to; renamed to `path` when the block succeeds.

    Stale temp files of killed runs are removed first; on any error the temp file is removed and
    `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, indent: int = 1) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def save_figure_atomic(fig, path: str | Path, **savefig_kwargs) -> Path:
    """A matplotlib figure saved atomically; the format comes from `path`'s suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    return path


def replace_folder(new: Path, target: Path) -> None:
    """Rename the finished folder `new` to `target`, replacing an older `target` only once `new` is whole.

    The old folder is renamed aside first (`.<name>.old-<pid>`, removed by the next run if this one
    dies) and deleted last; if the final rename fails, the old folder is put back.
    """
    old = None
    if target.exists():
        old = temp_sibling(target, "old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:  # a file replaced by a folder: rmtree would leave `.<name>.old-<pid>` behind
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path, kind: str = "tmp") -> Iterator[Path]:
    """A hidden staging folder (`.<name>.<kind>-<pid>`) that replaces `path` when the block succeeds.

    Stale staging and replaced folders of killed runs are removed first; on any error the staging
    folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, kinds=(kind, "old"))
    staging = temp_sibling(path, kind)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        replace_folder(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- Inputs are read-only ---------------------------------------------------------------------------------


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def check_output_apart(output: str | Path, output_flag: str, inputs: Mapping[str, Any]) -> None:
    """Refuse an output that equals, contains or lies inside one of the inputs, or whose parent is a
    file, before any work.

    `inputs` maps a flag name (`--input`) to a path, or to a list of paths, or None. Replacing the
    output must never delete an input, and writing it must never change one.
    """
    out = _resolved(output)
    for ancestor in out.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise SvitInputError(
                    f"{output_flag} {output}: {ancestor} is a file, not a folder; choose another {output_flag}"
                )
            break
    for flag, value in inputs.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or not Path(item).expanduser().exists():
                continue  # nothing on disk to harm (a Hub id, say)
            source = _resolved(item)
            if out == source:
                relation = "is"
            elif source.is_relative_to(out):
                relation = "contains"
            elif out.is_relative_to(source) and source.is_dir():
                relation = "is inside"
            else:
                continue
            raise SvitInputError(
                f"{output_flag} {output} {relation} {flag} {item}: inputs are never written or replaced. "
                f"Choose an {output_flag} outside the input paths."
            )


# --- --overwrite replaces only what the same command writes -----------------------------------------------


def check_replaceable(
    output: str | Path,
    output_flag: str,
    overwrite: bool,
    kind: str,
    is_own_kind: Callable[[Path], bool],
    overwrite_flag: str = "--overwrite",
) -> None:
    """Refuse to replace an existing `output` unless `overwrite`, and even with it unless it is what this command
    writes (`is_own_kind(output)`: a checkpoint for `svit model ...`, a Space folder for `svit space`...) or an
    empty folder. `--overwrite` then deletes only a folder the command itself could have written, never a user's
    unrelated folder passed by mistake. Called before any work; `kind` names what the command writes."""
    output = Path(output)
    if not output.exists() and not output.is_symlink():
        return
    if not overwrite:
        raise SvitInputError(
            f"{output_flag} {output}: already exists; pass {overwrite_flag} to replace it, or choose another "
            f"{output_flag}"
        )
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return
    if not is_own_kind(output):
        raise SvitInputError(
            f"{output_flag} {output}: exists and is not {kind}, so {overwrite_flag} does not replace it (it only "
            f"replaces what this command writes); choose another {output_flag} or remove it yourself"
        )
