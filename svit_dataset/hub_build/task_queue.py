"""The task configs of a build in parallel: up to one process per task, each taking the next task when free."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.readme import ConfigEntry
from svit_dataset.hub_build.task_config import TaskInputs, build_task_config
from svit_dataset.release import release_file


def build_task_configs(
    options: BuildOptions, tasks: list[str], staging: Path
) -> tuple[dict[str, ConfigEntry], dict[str, dict]]:
    """Every task config, in up to one process per task up to the CPUs (the work is CPU-bound Python,
    and the tasks are independent): this process and `workers - 1` spawned ones each take the next
    task, largest file first, when free. Returns the config entries and quality reports, in `tasks` order.
    """
    workers = worker_count(options.num_proc, options.input_dir, tasks)
    queue = TaskQueue(sorted(tasks, key=lambda t: -release_file(options.input_dir, t).stat().st_size))
    results: dict[str, tuple[ConfigEntry, dict]] = {}

    def run_here() -> None:
        inputs = TaskInputs.read(options)
        while (task := queue.take()) is not None:
            results[task] = build_task_config(task, options, staging, inputs)

    if workers > 1:
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads

        def feed(pool: ProcessPoolExecutor) -> None:  # one thread per worker process: its next task
            while (task := queue.take()) is not None:
                results[task] = pool.submit(build_task_config, task, options, staging).result()

        # This process works too: one spawn fewer (each imports datasets and reads image_data.json).
        with (
            ProcessPoolExecutor(workers - 1, mp_context=context) as pool,
            ThreadPoolExecutor(workers - 1) as feeders,
        ):
            fed = [feeders.submit(queue.run, feed, pool) for _ in range(workers - 1)]
            queue.run(run_here)
            for done in fed:
                done.result()
    else:
        run_here()
    entries = {task: results[task][0] for task in tasks}
    quality = {task: results[task][1] for task in tasks}
    return entries, quality


class TaskQueue:
    """Tasks handed out one at a time to whoever is free; the first error stops the handing out."""

    def __init__(self, tasks: list[str]):
        self.tasks = list(tasks)
        self.lock = threading.Lock()

    def take(self) -> str | None:
        with self.lock:
            return self.tasks.pop(0) if self.tasks else None

    def run(self, work, *args) -> None:
        try:
            work(*args)
        except BaseException:
            with self.lock:
                self.tasks.clear()
            raise


def worker_count(num_proc: int | None, input_dir, tasks: list[str]) -> int:
    """Processes for the task configs: one per task up to the CPUs, and none for small inputs."""
    if num_proc is not None:
        return max(1, min(num_proc, len(tasks)))
    size = sum(release_file(input_dir, t).stat().st_size for t in tasks)
    # Below ~50 MB a worker's start-up (importing datasets) costs more than it saves.
    return min(len(tasks), os.cpu_count() or 1) if size > 50 * 2**20 else 1
