"""The recipe configs from the built task shards: how `svit build` makes them.

1. One pass over the `train` shards of the four tasks, reading only `messages`: per-sample features
   (features.py).
2. The selections (select.py), pure functions of the features and the parameters.
3. One pass over the same shards, all columns: each selected row is taken (pyarrow `take`), the QAs
   the balance step dropped are removed, and the rows go to the Parquet shards of every requested
   recipe at once; core_150k rows also go, in LLaVA-1.5 form, to the mix, which then streams the
   LLaVA-v1.5-mix-665K file (mix.py).

Row order in a recipe: task by task (conversation, complex reasoning, referring QAs, detail
descriptions), then the train split's order. The `test` split of the four SVIT recipes is the
held-out split of the four tasks: the card points at the task folders' test shards, no copy. The mix
has a `train` split only (LLaVA's mix has no held-out part).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import resource
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils.py_utils import convert_file_size_to_int
from tqdm import tqdm

from svit_dataset.errors import SvitInputError
from svit_dataset.jsonlist import JsonListWriter
from svit_dataset.parquet_shards import MAX_SHARD_SIZE, ShardWriter
from svit_dataset.recipes import report as recipe_report
from svit_dataset.recipes.concepts import ConceptSet
from svit_dataset.recipes.features import TaskFeatures, task_features
from svit_dataset.recipes.mix import MIX_FEATURES, convert_core_part, write_llava_part
from svit_dataset.recipes.select import (
    CORE_150K,
    MIX_665K,
    RECIPE_NAMES,
    RecipeParams,
    Selection,
    drop_qa_pairs,
    select,
)
from svit_dataset.release import MAX_BAD_FRACTION
from svit_dataset.schema import TASKS

logger = logging.getLogger(__name__)

BATCH_ROWS = 8000  # rows per Arrow batch: ~8 MB of text, enough to amortise the numpy kernels
CORE_PART_ROWS = 20_000  # core_150k rows per worker job (and per extra shard of mix_665k)
# Below this much input (the two LLaVA files and SVIT-train's shards), a worker's start-up (a spawned interpreter
# importing datasets, ~2 s) costs more than the conversion it takes off this process.
SMALL_MIX_BYTES = 50 * 2**20


def concept_set_of(params: RecipeParams) -> ConceptSet:
    return ConceptSet.from_file(params.concepts) if params.concepts else ConceptSet.paper()


def split_shards(root: Path, task: str, split: str = "train") -> list[Path]:
    """The Parquet shards of one split of a built task config (also while still `.partial`)."""
    folder = Path(root) / "data" / task
    shards = sorted(folder.glob(f"{split}-*.parquet")) + sorted(folder.glob(f"{split}-*.parquet.partial"))
    if not shards:
        raise SvitInputError(
            f"{folder}: no {split} shards. Recipes are computed from the task configs: build them "
            "in the same folder (`svit build` does this when a recipe is asked for)."
        )
    return shards


def mix_worker_count(root: Path, llava_files: tuple[str, str]) -> int:
    """Worker processes for the mix: cores - 1 (at least 1), or none when the input is small."""
    train = [path for task in TASKS for path in split_shards(root, task)]
    size = sum(Path(path).stat().st_size for path in [*llava_files, *train])
    return max(1, (os.cpu_count() or 2) - 1) if size > SMALL_MIX_BYTES else 0


def iter_batches(paths: list[Path], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    for path in paths:
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def read_features(root: Path, concept_set: ConceptSet, threads: int = 2) -> dict[str, TaskFeatures]:
    """Features of every train sample of the four tasks (the first pass)."""
    matcher = concept_set.matcher()
    out = {}
    for task in TASKS:
        batches = iter_batches(split_shards(root, task), columns=["messages"])
        out[task] = task_features(
            task,
            tqdm(batches, desc=f"score {task}", unit=" batches", mininterval=2, disable=None),
            matcher,
            threads,
        )
        logger.info("%s: %d train samples scored", task, out[task].n)
    return out


def apply_drops(table: pa.Table, rows: list[int], dropped: dict[int, tuple[int, ...]]) -> pa.Table:
    """`table` (the rows `rows` of a task's train split) without the QAs the balance step dropped."""
    if not dropped or not any(r in dropped for r in rows):
        return table
    messages = table.column("messages").to_pylist()
    for i, r in enumerate(rows):
        if r in dropped:
            messages[i] = drop_qa_pairs(messages[i], dropped[r])
    index = table.schema.get_field_index("messages")
    column = pa.array(messages, type=table.schema.field("messages").type)
    return table.set_column(index, table.schema.field("messages"), column)


class MixOutput:
    """The mix_665k config being written, by a worker process: first the kept LLaVA records (they
    do not depend on the selection, so the worker streams the LLaVA file while this process scores
    SVIT-train), then core_150k in LLaVA-1.5 form (pure-Python box arithmetic, the slowest step), in
    parts of CORE_PART_ROWS rows. Each part is one more shard (and JSON fragment), in order."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        suffix: str,
        llava_json,
        params: RecipeParams,
        workers: int,
        llava_files: tuple,
        max_bad_fraction: float,
    ):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.shards = ShardWriter(folder, "train", MIX_FEATURES.arrow_schema, max_bytes, suffix)
        self.json = JsonListWriter(llava_json) if llava_json else None
        self.params = params
        self.core_rows = 0
        self.parts: list[tuple[Path | None, object]] = []  # (JSON fragment, rows or future)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pool = None
        if workers > 0:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self.llava_job = (*llava_files, str(folder), max_bytes, self._fragment("llava"), max_bad_fraction)
        self.llava = self._run(write_llava_part, self.llava_job)

    def _fragment(self, name: str) -> str | None:
        return str(self.folder / f".{name}.json") if self.json else None

    def _run(self, function, job):
        if self.pool is not None:
            try:
                return self.pool.submit(function, *job)
            except BrokenProcessPool as err:
                self._fall_back(err)
        return function(*job)

    def _fall_back(self, err) -> None:
        """Workers that could not start (e.g. a script without `if __name__ == "__main__":`, which
        spawned processes need): the work is done in this process, slower, the same rows."""
        logger.warning("mix_665k: worker processes unavailable (%s); writing the mix in this process", err)
        self._shutdown()

    def _result(self, value, function, job):
        if not isinstance(value, Future):
            return value
        try:
            return value.result()
        except BrokenProcessPool as err:
            self._fall_back(err)
            return function(*job)

    def add_core(self, table: pa.Table) -> None:
        """Queue core_150k rows; every CORE_PART_ROWS rows go to the worker as one part."""
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= CORE_PART_ROWS:
            self.flush_core()

    def flush_core(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.pending_rows = [], 0
        k = len(self.parts)
        job = (
            table,
            self.params.seed,
            self.params.mix_image_prefix,
            str(self.folder / f".core-{k:05d}.parquet"),
            self._fragment(f"core-{k:05d}"),
        )
        self.parts.append((job, self._run(convert_core_part, job)))

    def close(self) -> tuple[int, int, dict]:
        """Wait for the worker, name the shards; returns (rows, bytes, LLaVA counts)."""
        self.flush_core()
        counts, llava_parts = self._result(self.llava, write_llava_part, self.llava_job)
        shards = [(Path(path), rows) for path, rows in llava_parts]
        fragments = [(self.llava_job[4], counts["kept_llava"])]
        for job, result in self.parts:
            if isinstance(result, Future) and result.cancel():
                result = convert_core_part(*job)  # not started yet: this process is free, do it here
            rows = self._result(result, convert_core_part, job)
            self.core_rows += rows
            shards.append((Path(job[3]), rows))
            fragments.append((job[4], rows))
        rows, size = self.shards.close(shards)
        if self.json:
            for fragment, n in fragments:
                self.json.append_fragment(Path(fragment), n)
                Path(fragment).unlink(missing_ok=True)
            self.json.close()
        self._shutdown()
        return rows, size, counts

    def abort(self) -> None:
        self._shutdown()
        self.shards.abort()
        for path in self.folder.glob(".*"):
            path.unlink(missing_ok=True)
        if self.json:
            self.json.abort()

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


@dataclasses.dataclass
class RecipeBuild:
    """What `build_recipes` made: rows and bytes per config, and the reports."""

    rows: dict[str, int]
    bytes: dict[str, int]
    reports: dict[str, dict]
    train: dict  # SVIT-train as the recipes saw it (train_analysis)
    seconds: float
    timings: dict  # seconds per phase


def build_recipes(
    root: str | Path,
    names: list[str],
    params: RecipeParams = RecipeParams(),  # noqa: B008 - frozen dataclass
    *,
    llava_mix: str | Path | None = None,
    llava_instruct: str | Path | None = None,
    mix_llava_json: str | Path | None = None,
    max_shard_size: str | int = MAX_SHARD_SIZE,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    suffix: str = "",
    threads: int = 2,
    workers: int | None = None,
) -> RecipeBuild:
    """Write `data/<recipe>/train-*.parquet<suffix>` for each recipe in `names` from the task shards
    in `root` (a built folder, or the staging folder of a build). `threads` score batches in the
    first pass; `workers` processes convert core_150k for the mix (default: `mix_worker_count`; 0 converts
    in this process)."""
    unknown = [n for n in names if n not in RECIPE_NAMES]
    if unknown:
        raise SvitInputError(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPE_NAMES)}")
    if MIX_665K in names and not (llava_mix and llava_instruct):
        raise SvitInputError(
            "mix_665k needs --llava-mix (llava_v1_5_mix665k.json) and --llava-instruct "
            "(llava_instruct_150k.json)"
        )
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_started = time.process_time(), children.ru_utime + children.ru_stime
    root = Path(root)
    concept_set = concept_set_of(params)
    max_bytes = convert_file_size_to_int(max_shard_size)
    mix = None
    if MIX_665K in names:
        llava_files = (str(llava_mix), str(llava_instruct))
        if workers is None:
            workers = mix_worker_count(root, llava_files)
        mix = MixOutput(
            root / "data" / MIX_665K,
            max_bytes,
            suffix,
            mix_llava_json,
            params,
            workers,
            llava_files,
            max_bad_fraction,
        )
    features = read_features(root, concept_set, threads)
    timings = {"features": round(time.perf_counter() - started, 2)}
    needed = [n for n in RECIPE_NAMES if n in names and n != MIX_665K]
    if MIX_665K in names and CORE_150K not in needed:
        needed.append(CORE_150K)
    selections = {n: select(n, features, params) for n in needed}
    for name, sel in selections.items():
        logger.info("%s: %d samples selected", name, sel.size)

    schema = pq.ParquetFile(split_shards(root, TASKS[0])[0]).schema_arrow
    writers = {
        n: ShardWriter(root / "data" / n, "train", schema, max_bytes, suffix)
        for n in selections
        if n in names
    }
    timings["select"] = round(time.perf_counter() - started - sum(timings.values()), 2)
    try:
        _write_pass(root, selections, writers, mix)
        if mix is not None:
            mix.flush_core()
        timings["write"] = round(time.perf_counter() - started - sum(timings.values()), 2)
        written = {n: w.close() for n, w in writers.items()}
        counts: dict = {}
        if mix is not None:
            *written[MIX_665K], counts = mix.close()
            timings["mix_wait"] = round(time.perf_counter() - started - sum(timings.values()), 2)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        timings["cpu_this_process"] = round(time.process_time() - cpu_started[0], 2)
        timings["cpu_workers"] = round(children.ru_utime + children.ru_stime - cpu_started[1], 2)
    except BaseException:
        for w in writers.values():
            w.abort()
        if mix is not None:
            mix.abort()
        raise

    params_dict = params.to_dict() | {
        "concept_set": concept_set.to_dict() if params.concepts else "paper table 4"
    }
    reports = {
        n: recipe_report.recipe_report(sel, features, concept_set, params_dict)
        for n, sel in selections.items()
    }
    if mix is not None:
        mix_facts = {
            "rows": written[MIX_665K][0],
            "by_source": counts.pop("by_source") | {"svit": mix.core_rows},
        }
        reports[MIX_665K] = recipe_report.mix_report(reports[CORE_150K], counts, mix_facts, params_dict)
    reports = {n: reports[n] for n in RECIPE_NAMES if n in names}
    train = recipe_report.train_analysis(features, concept_set, params.informativeness)
    return RecipeBuild(
        rows={n: r for n, (r, _) in written.items()},
        bytes={n: b for n, (_, b) in written.items()},
        reports=reports,
        train=train,
        seconds=round(time.perf_counter() - started, 2),
        timings=timings,
    )


def _write_pass(root: Path, selections: dict[str, Selection], writers: dict, mix: MixOutput | None) -> None:
    """The second pass: every selected row to the shards of its recipes (and core rows to the mix)."""
    for task in TASKS:
        offset = 0
        wanted = {
            n: s.rows.get(task) for n, s in selections.items() if n in writers or (n == CORE_150K and mix)
        }
        wanted = {n: r for n, r in wanted.items() if r is not None and r.size}
        if not wanted:
            continue
        batches = tqdm(
            iter_batches(split_shards(root, task)),
            desc=f"write {task}",
            unit=" batches",
            mininterval=2,
            disable=None,
        )
        for batch in batches:
            n = batch.num_rows
            for name, rows in wanted.items():
                lo, hi = rows.searchsorted([offset, offset + n])
                if lo == hi:
                    continue
                global_rows = rows[lo:hi]
                table = pa.Table.from_batches([batch.take(pa.array(global_rows - offset))])
                table = apply_drops(table, global_rows.tolist(), selections[name].dropped_qas.get(task, {}))
                if name in writers:
                    writers[name].write(table)
                if name == CORE_150K and mix is not None:
                    mix.add_core(table)
            offset += n
