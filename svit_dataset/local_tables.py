"""`datasets.load_dataset` of a local folder or file, cached by what is in it.

`datasets` names the cache of a local folder that has YAML `configs` after the folder's name and the configs'
file patterns, not its contents: two folders named `svit` (two builds, or one rebuilt in place) would share a
cache, and the second would be read as the first one's rows without a word. Every svit command that loads a
local table (training data, benchmarks, the demos) goes through `load_table_fresh`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def local_cache_dir(path: str | os.PathLike) -> str:
    """A `datasets` cache folder of its own for the local table `path`, named by its absolute path and the name,
    size and mtime of every file in it (hidden files aside: work in progress of other commands)."""
    import datasets

    root = Path(path).resolve()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    facts = [str(root)] + [
        [str(p.relative_to(root.parent)), p.stat().st_size, p.stat().st_mtime_ns]
        for p in files
        if not any(part.startswith(".") for part in p.relative_to(root.parent).parts)
    ]
    key = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "svit_local_tables" / key)


def load_table_fresh(
    path_or_name: str | os.PathLike, *args, data_path: str | os.PathLike | None = None, **kwargs
):
    """`datasets.load_dataset(path_or_name, *args, **kwargs)`; when the data lie on this machine (`data_path`,
    else `path_or_name`), with a cache of their current contents (`local_cache_dir`). Hub ids load as usual."""
    import datasets

    local = Path(data_path if data_path is not None else path_or_name)
    if local.exists() and "cache_dir" not in kwargs:
        kwargs["cache_dir"] = local_cache_dir(local)
    return datasets.load_dataset(str(path_or_name), *args, **kwargs)


__all__ = ["load_table_fresh", "local_cache_dir"]
