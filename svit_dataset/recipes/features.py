"""Per-sample features of a task's train split, in one pass: what every recipe selects on.

For each sample (row of the task's `train` split, in row order): its QAs, its informativeness
(concepts.py) and its Yes/No answers (yesno.py); for each "Yes" QA, where it is (sample, QA index),
so the balance recipe can drop it. Inputs are Arrow record batches with a `messages` column (the
canonical list of {role, content}), read from the built Parquet shards or made from builder rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from svit_dataset.recipes.concepts import ConceptMatcher, Informativeness, score_groups
from svit_dataset.recipes.yesno import NO, YES, classify_answers
from svit_dataset.schema import ASSISTANT


@dataclasses.dataclass
class TaskFeatures:
    task: str
    n_qas: np.ndarray  # int32 [n]
    info: Informativeness
    yes: np.ndarray  # int32 [n]: QAs answered "Yes"
    no: np.ndarray  # int32 [n]: QAs answered "No"
    yes_qa_sample: np.ndarray  # int64 [Y]: sample of each "Yes" QA (sorted)
    yes_qa_index: np.ndarray  # int32 [Y]: its QA index within the sample

    @property
    def n(self) -> int:
        return int(self.n_qas.size)


def _batch_features(batch: pa.RecordBatch | pa.Table, matcher: ConceptMatcher) -> dict:
    messages = batch.column("messages")
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    n = len(messages)
    flat = pc.list_flatten(messages)
    owner = pc.list_parent_indices(messages).to_numpy()
    lengths = pc.fill_null(pc.list_value_length(messages), 0).to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(len(flat)) - starts[owner]
    content = pc.struct_field(flat, "content")
    is_answer = pc.equal(pc.struct_field(flat, "role"), ASSISTANT).to_numpy(zero_copy_only=False)
    answer_at = np.flatnonzero(is_answer)
    kinds = classify_answers(content.take(pa.array(answer_at)))
    answer_owner = owner[answer_at]
    yes_at = answer_at[kinds == YES]
    return {
        "n": n,
        "n_qas": np.bincount(answer_owner, minlength=n).astype(np.int32),
        "info": score_groups(matcher, content, owner, n),
        "yes": np.bincount(answer_owner[kinds == YES], minlength=n).astype(np.int32),
        "no": np.bincount(answer_owner[kinds == NO], minlength=n).astype(np.int32),
        "yes_qa_sample": owner[yes_at].astype(np.int64),
        "yes_qa_index": (position[yes_at] // 2).astype(np.int32),
    }


_MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def rows_as_batches(rows: Iterable[dict], batch_rows: int = 2000) -> Iterable[pa.Table]:
    """Canonical rows (dicts) as Arrow tables of their `messages`, for `task_features`."""
    batch: list = []
    for row in rows:
        batch.append(row["messages"])
        if len(batch) >= batch_rows:
            yield pa.table({"messages": pa.array(batch, _MESSAGES_TYPE)})
            batch = []
    if batch:
        yield pa.table({"messages": pa.array(batch, _MESSAGES_TYPE)})


def task_features(
    task: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    matcher: ConceptMatcher,
    threads: int = 2,
) -> TaskFeatures:
    """Features of every sample in `batches` (in order). Batches are scored on `threads` threads:
    the work is in pyarrow and numpy kernels, which release the GIL."""
    parts: list[dict] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending = []
        for batch in batches:
            pending.append(pool.submit(_batch_features, batch, matcher))
            if len(pending) > 2 * threads:  # bounded read-ahead keeps memory flat
                parts.append(pending.pop(0).result())
        parts += [f.result() for f in pending]
    return combine(task, parts, matcher.n_keys)


def combine(task: str, parts: list[dict], n_keys: int) -> TaskFeatures:
    offsets = np.cumsum([0] + [p["n"] for p in parts])

    def cat(name, dtype):
        arrays = [p[name] for p in parts]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    def cat_info(name, dtype):
        arrays = [getattr(p["info"], name) for p in parts]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    yes_sample = (
        np.concatenate([p["yes_qa_sample"] + off for p, off in zip(parts, offsets, strict=False)])
        if parts
        else np.zeros(0, dtype=np.int64)
    )
    key_samples = np.zeros(n_keys, dtype=np.int64)
    for p in parts:
        key_samples += p["info"].key_samples
    info = Informativeness(
        keys=cat_info("keys", np.int32),
        concepts=cat_info("concepts", np.int8),
        concept_mask=cat_info("concept_mask", np.uint32),
        key_samples=key_samples,
    )
    return TaskFeatures(
        task=task,
        n_qas=cat("n_qas", np.int32),
        info=info,
        yes=cat("yes", np.int32),
        no=cat("no", np.int32),
        yes_qa_sample=yes_sample.astype(np.int64),
        yes_qa_index=cat("yes_qa_index", np.int32),
    )
