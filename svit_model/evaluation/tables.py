"""Benchmarks as tables: a Parquet file, a folder of Parquet files or a Hub dataset (`lmms-lab/MME`,
`lmms-lab/POPE`, `lmms-lab/RefCOCO`, a built SVIT folder), read with `datasets.load_dataset`."""

from __future__ import annotations

import os
from pathlib import Path

from svit_dataset.errors import SvitInputError
from svit_model.loading import loading


def load_table(data: str | os.PathLike, split: str | None = None, config: str | None = None):
    """One split of `data` as a `datasets.Dataset`.

    `split` None: the only split, else `test`. A file ending in `.parquet` is read as one table.
    """
    import datasets

    path = Path(data)
    expected = "a Parquet file or folder, or a Hub dataset id"
    with loading("--data", data, expected):
        if path.is_file() and path.suffix == ".parquet":
            splits = datasets.load_dataset("parquet", data_files=str(path))
        else:
            splits = datasets.load_dataset(str(data), config)
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
