"""One task config: its released file read once, each row to the Parquet shards of its split."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from datasets.utils.py_utils import convert_file_size_to_int
from tqdm import tqdm

from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.readme import ConfigEntry
from svit_dataset.parquet_shards import ShardWriter
from svit_dataset.quality import QualityReport
from svit_dataset.reader import Sample, iter_sample_tuples, samples_table
from svit_dataset.release import release_file
from svit_dataset.schema import SAMPLE_FEATURES, SPLITS
from svit_dataset.vg import ImageIndex, read_test_ids, split_of_images

PARTIAL = ".partial"  # shards keep this suffix until the whole build is complete (engine.finalize)
_WRITE_BATCH_ROWS = 1000


@dataclasses.dataclass
class TaskInputs:
    """What every task of a build reads besides its file: read once per process, not once per task."""

    images: ImageIndex
    split_of: Callable[[int], str]

    @classmethod
    def read(cls, options: BuildOptions) -> TaskInputs:
        with without_cycle_collector():
            images = ImageIndex(options.images_dir, options.image_data)
        held_out = read_test_ids(options.test_ids) if options.test_ids else None
        return cls(images, split_of_images(held_out, options.test_fraction, options.split_seed))


# In a build's worker process (spawned for that one build): its `TaskInputs`, shared by its tasks.
_WORKER_INPUTS: list[TaskInputs] = []


def build_task_config(
    task: str, options: BuildOptions, staging: Path, inputs: TaskInputs | None = None
) -> tuple[ConfigEntry, dict]:
    """Build one task config's shards into `staging/data/<task>/` in ONE pass over its file: each row goes
    to the Parquet writer of its split. Returns the config entry (only splits with rows are declared)
    and the quality report per split. Without `inputs`, in a worker process, they are read on its
    first task."""
    import datasets

    if inputs is None:
        datasets.disable_progress_bars()  # bars from several processes interleave into noise
        if not _WORKER_INPUTS:
            _WORKER_INPUTS.append(TaskInputs.read(options))
        inputs = _WORKER_INPUTS[0]
    images, split_of = inputs.images, inputs.split_of
    reports: dict = defaultdict(QualityReport)
    schema = SAMPLE_FEATURES.arrow_schema
    max_bytes = convert_file_size_to_int(options.max_shard_size)
    folder = staging / "data" / task
    writers = {split: ShardWriter(folder, split, schema, max_bytes, suffix=PARTIAL) for split in SPLITS}
    pending: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    samples = iter_sample_tuples(
        {task: release_file(options.input_dir, task)},
        images,
        reports,
        split_of=split_of,
        max_bad_fraction=options.max_bad_fraction,
        embed_images=True,
    )
    try:
        with without_cycle_collector():
            for split, sample in tqdm(
                samples, desc=f"build {task}", unit=" samples", mininterval=2, disable=None
            ):
                batch = pending[split]
                batch.append(sample)
                if len(batch) >= _WRITE_BATCH_ROWS:
                    writers[split].write(samples_table(batch))
                    batch.clear()
        entry = ConfigEntry(task, {}, {}, {})
        for split, writer in writers.items():
            if pending[split]:
                writer.write(samples_table(pending[split]))
            if writer.rows == 0:  # an empty split is never declared: it would not load
                writer.abort()
                continue
            entry.num_examples[split], entry.num_bytes[split] = writer.close()
            entry.data_files[split] = [f"data/{task}/{split}-*.parquet"]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return entry, {split: reports[(task, split)].to_dict() for split in SPLITS}


@contextlib.contextmanager
def without_cycle_collector():
    """The cycle collector off while a task is built: the rows make no reference cycles, yet the
    collector would walk the millions of objects the parser allocates (10-25% of a build's CPU)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
