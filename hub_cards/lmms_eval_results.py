"""lmms-eval's results file read as svit's results.json, so `svit card model RUN --results FILE` carries the
benchmarks lmms-eval ran (the paper's table) into the card's `model-index` and evaluation table.

lmms-eval (`python -m lmms_eval ... --output_path DIR`) writes `DIR/<model>/<date>_results.json`: `results` maps
each task to `"<metric>,<filter>": value` (with `..._stderr,...` and `alias` beside), `configs` each task's
definition (`dataset_path`, `dataset_name`, `test_split`), `config` the run (`model_args` with `pretrained=`,
`limit`). Each numeric metric becomes one entry, tool `lmms-eval`; a run with `--limit` scored part of each
benchmark, so its entries are for the card's table only (`whole` False). Pure: no file is read here.
"""

from __future__ import annotations

import math

from svit_dataset.facts import MODEL_INDEX_KEY
from svit_dataset.hub_push import hub_repo_id

LMMS_EVAL = "lmms-eval"
LMMS_EVAL_URL = "https://github.com/EvolvingLMMs-Lab/lmms-eval"


def is_lmms_eval_results(document: dict) -> bool:
    """lmms-eval's results file: `results` and `configs` objects, no svit `benchmark`."""
    return (
        isinstance(document.get("results"), dict)
        and isinstance(document.get("configs"), dict)
        and "benchmark" not in document
    )


def pretrained_of(model_args) -> str | None:
    """The `pretrained=` of lmms-eval's `model_args` string (the model evaluated), if any."""
    if not isinstance(model_args, str):
        return None
    for part in model_args.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "pretrained" and value.strip():
            return value.strip()
    return None


def _dataset_type(path, task: str) -> str:
    """The task's Hub dataset id; a local dataset (a builder name such as `parquet`, or a path) goes by the task's
    name: a card never names a path."""
    return (hub_repo_id(path) if isinstance(path, str) else None) or task


def _metrics(values: dict) -> dict[str, float]:
    """`metric -> value` of one task's results: numbers only, no stderr, the filter name dropped."""
    found = {}
    for key, value in values.items():
        name = key.split(",")[0]
        if key == "alias" or "_stderr" in name or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            found[name] = float(value)
    return found


def as_svit_results(document: dict) -> dict:
    """lmms-eval's results file as a results.json of `svit eval`: `model` and the `model_index` entries."""
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    whole = config.get("limit") is None
    entries = []
    for task, values in document["results"].items():
        if not isinstance(values, dict):
            raise ValueError(f"`results.{task}` is not an object")
        task_config = document["configs"].get(task) or {}
        for metric, value in _metrics(values).items():
            entries.append(
                {
                    "task_type": "image-text-to-text",
                    "dataset_type": _dataset_type(task_config.get("dataset_path"), task),
                    "dataset_name": task,
                    "dataset_config": task_config.get("dataset_name"),
                    "dataset_split": task_config.get("test_split"),
                    "metric_type": metric,
                    "metric_name": f"{metric} ({task})",
                    "metric_value": value,
                    "source_name": LMMS_EVAL,
                    "source_url": LMMS_EVAL_URL,
                    "whole": whole,
                }
            )
    return {
        "model": pretrained_of(config.get("model_args")),
        "benchmark": LMMS_EVAL,
        MODEL_INDEX_KEY: entries,
    }
