"""Parquet shards written piece by piece, named `<split>-i-of-n.parquet` once their count is known.

The build writes its task configs with it (svit_dataset/hub_build/task_config.py) and the recipes theirs
(svit_dataset/recipes/shards.py, mix.py): it sits below both, so neither folder imports the other's."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAX_SHARD_SIZE = "500MB"  # Parquet shards are cut past this much (uncompressed) data


class ShardWriter:
    """Parquet shards of one split, started anew past `max_bytes` of (uncompressed) rows; named
    `<split>-i-of-n.parquet<suffix>` once the count is known (`close`)."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, max_bytes: int, suffix: str = ""):
        self.folder, self.split, self.schema, self.max_bytes, self.suffix = (
            folder,
            split,
            schema,
            max_bytes,
            suffix,
        )
        folder.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []
        self.rows_per_file: list[int] = []
        self.writer: pq.ParquetWriter | None = None
        self.bytes = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.writer is None:
            path = self.folder / f".{self.split}-{len(self.paths):05d}.writing"
            self.paths.append(path)
            self.rows_per_file.append(0)
            self.writer = pq.ParquetWriter(path, self.schema)
        self.writer.write_table(
            table.cast(self.schema) if table.schema != self.schema else table, row_group_size=1000
        )
        self.rows += table.num_rows
        self.rows_per_file[-1] += table.num_rows
        self.bytes += table.nbytes
        if self.bytes >= self.max_bytes:
            self._close_current()

    def close_file(self) -> None:
        """Finish the file being written (the next write starts a new one)."""
        self._close_current()

    def _close_current(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.bytes = 0

    def close(self, parts: list[tuple[Path, int]] = ()) -> tuple[int, int]:
        """(rows, bytes on disk); `parts` are (Parquet file, rows) written elsewhere, appended as
        further shards. An empty split still gets one (empty) shard, so it loads."""
        self._close_current()
        for path, rows in parts:
            self.paths.append(path)
            self.rows_per_file.append(rows)
            self.rows += rows
        if not self.paths:
            self.write_empty()
        n = len(self.paths)
        size = 0
        for i, path in enumerate(self.paths):
            final = self.folder / f"{self.split}-{i:05d}-of-{n:05d}.parquet{self.suffix}"
            os.replace(path, final)
            size += final.stat().st_size
        return self.rows, size

    def write_empty(self) -> None:
        path = self.folder / f".{self.split}-00000.writing"
        self.paths.append(path)
        self.rows_per_file.append(0)
        pq.write_table(self.schema.empty_table(), path)

    def abort(self) -> None:
        self._close_current()
        for path in self.paths:
            path.unlink(missing_ok=True)
