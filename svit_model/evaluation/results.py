"""What a run leaves besides predictions: `results.json` (its `model_index` entries are what `hub_cards.model_card`
turns into the card's `model-index`) and a printed table. A benchmark's own extras (MME's official results
folder and bar chart) are its module's."""

from __future__ import annotations

import datetime
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import MODEL_INDEX_KEY, RESULTS_FILE
from svit_dataset.files import check_output_apart, write_json_atomic


def package_version() -> str:
    try:
        return version("svit")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def results_document(
    model: str, benchmark: str, dataset: dict, metrics: dict, generation: dict, model_index: list[dict]
) -> dict:
    """The content of `results.json`: model, benchmark, dataset, metrics, generation settings, the benchmark's
    model-index entries (`Benchmark.model_index`), svit version."""
    return {
        "model": model,
        "benchmark": benchmark,
        "dataset": dataset,
        "metrics": metrics,
        "generation": generation,
        MODEL_INDEX_KEY: model_index,
        "svit_version": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def check_card_folder(model_dir: str | os.PathLike, results_files) -> None:
    """`svit eval card --model-dir`: a model folder (a checkpoint, a run, or a new folder), never a dataset
    folder, whose README.md is its dataset card (written by `svit build`, or a Hub dataset's card with its
    `configs`): adding a model-index there would rewrite that card into a model card. Checked before writing."""
    from huggingface_hub.repocard import metadata_load

    from svit_dataset.hub_build.report import REPORT_FILE

    folder = Path(model_dir)
    if folder.exists() and not folder.is_dir():
        raise SvitInputError(
            f"--model-dir {model_dir}: is a file; pass the model folder whose card gets the results"
        )
    check_output_apart(folder / "README.md", "--model-dir", {"results": list(results_files)})
    refuse = f"--model-dir {model_dir}: is a dataset folder ({{}}); pass the model folder the results are of"
    if (folder / REPORT_FILE).is_file():
        raise SvitInputError(refuse.format(f"it holds {REPORT_FILE}, written by svit build"))
    readme = folder / "README.md"
    if readme.is_file():
        try:
            metadata = metadata_load(readme) or {}
        except (ValueError, yaml.YAMLError, UnicodeDecodeError):
            return  # the card writer reports a broken card in its own words
        if isinstance(metadata, dict) and {"configs", "dataset_info"} & set(metadata):
            raise SvitInputError(
                refuse.format("its README.md is a dataset card, with configs or dataset_info")
            )


def write_results(output_dir: str | os.PathLike, document: dict) -> Path:
    path = Path(output_dir) / RESULTS_FILE
    write_json_atomic(path, document)
    return path


def results_table(document: dict, rows: dict[str, float]) -> str:
    """A two-column text table of a run's headline metrics (`Benchmark.headline`)."""
    width = max([len(k) for k in rows] + [6])
    lines = [
        f"{document['benchmark']} of {document['model']}",
        f"{'metric':<{width}}  value",
        "-" * (width + 10),
    ]
    lines += [
        f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}"
        for key, value in rows.items()
    ]
    return "\n".join(lines)
