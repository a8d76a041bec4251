"""Benchmarks as tables: a Parquet file, a folder of Parquet files or a Hub dataset (`lmms-lab/MME`,
`lmms-lab/POPE`, `lmms-lab/RefCOCO`, a built SVIT folder), read with `datasets.load_dataset`."""

from __future__ import annotations

import os
from pathlib import Path

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import JsonDepthScanner
from svit_dataset.local_tables import load_table_fresh
from svit_model.loading import loading

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


def check_json_files(path: Path) -> None:
    """Depth-check every JSON file `datasets` would read from a local `--data` (`MAX_JSON_DEPTH`), streamed:
    its JSON loader crashes the process (a segfault, no message) on a small file of deeply nested brackets."""
    files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
    for file in files:
        if file.suffix.lower() in JSON_SUFFIXES and file.is_file():
            scanner = JsonDepthScanner(file)
            with open(file, "rb") as f:
                while chunk := f.read(1 << 22):
                    scanner.feed(chunk)


def read_text_file(path: Path, encoding: str = "utf-8-sig") -> str:
    """The text of a benchmark file (MME question and results files, POPE question files). They are UTF-8, as
    the official tools read them (Python's default on Linux); another encoding (Latin-1, say) would be read
    differently there, so it is refused in one line, not guessed."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise SvitFormatError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.object[err.start : err.start + 1]!r}); "
            "benchmark files are UTF-8: convert it (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def load_table(data: str | os.PathLike, split: str | None = None, config: str | None = None):
    """One split of `data` as a `datasets.Dataset`.

    `split` None: the only split, else `test`. A file ending in `.parquet` is read as one table. A local file or
    folder gets a cache of its own contents (`svit_dataset.local_tables`).
    """

    path = Path(data)
    check_json_files(path)
    expected = "a Parquet file or folder, or a Hub dataset id"
    with loading("--data", data, expected):
        if path.is_file() and path.suffix == ".parquet":
            splits = load_table_fresh("parquet", data_files=str(path), data_path=path)
        else:
            splits = load_table_fresh(data, config)
    names = list(splits)
    if split is None:
        split = names[0] if len(names) == 1 else "test"
    if split not in splits:
        raise SvitInputError(f"--data {data}: no split {split!r}; it has {', '.join(names)}; pass --split")
    return splits[split]


def require_columns(table, columns: tuple[str, ...], data, shape: str) -> None:
    """Refuse a table that lacks one of `columns`, naming them and the shape expected."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SvitInputError(
            f"--data {data}: no column {', '.join(missing)} (it has {', '.join(table.column_names)}); "
            f"pass a table in the {shape} shape ({', '.join(columns)})"
        )


def row_image(table, index: int, column: str = "image"):
    """A loader of row `index`'s image (decoded only when called); `images` (the sample schema's list): its
    first."""
    if column == "images":
        return lambda: table[index][column][0]
    return lambda: table[index][column]
