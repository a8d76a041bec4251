"""What a run leaves besides predictions: `results.json` (what `hub_cards.model_card` turns into `model-index`),
a printed table, and the bar chart of MME's subtask scores."""

from __future__ import annotations

import datetime
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from svit_dataset.errors import SvitInputError
from svit_dataset.files import check_output_apart, save_figure_atomic, write_json_atomic
from svit_model.evaluation.scoring import MME_COGNITION, MME_PERCEPTION

RESULTS_FILE = "results.json"


def package_version() -> str:
    try:
        return version("svit")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def results_document(model: str, benchmark: str, dataset: dict, metrics: dict, generation: dict) -> dict:
    """The content of `results.json`: model, benchmark, dataset, metrics, generation settings, svit version."""
    return {
        "model": model,
        "benchmark": benchmark,
        "dataset": dataset,
        "metrics": metrics,
        "generation": generation,
        "svit_version": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def check_card_folder(model_dir: str | os.PathLike, results_files) -> None:
    """`svit eval card --model-dir`: a model folder (a checkpoint, a run, or a new folder), never a dataset
    folder, whose README.md is its dataset card (written by `svit build`, or a Hub dataset's card with its
    `configs`): adding a model-index there would rewrite that card into a model card. Checked before writing."""
    from huggingface_hub.repocard import metadata_load

    from svit_dataset.hub_layout import REPORT_FILE

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


def _flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numbers of nested metrics as `a/b` keys (details and counts kept)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def headline_metrics(benchmark: str, metrics: dict) -> dict[str, float]:
    """The numbers people compare (and the card reports): MME totals, POPE per category, grounding scores."""
    if benchmark == "mme":
        return {"perception": metrics["perception"], "cognition": metrics["cognition"], **metrics["subtasks"]}
    if benchmark == "pope":
        return {
            f"{category}/{name}": values[name]
            for category, values in metrics["categories"].items()
            for name in ("accuracy", "precision", "recall", "f1", "yes_ratio")
        }
    return {k: v for k, v in _flat(metrics).items() if k not in ("total", "entities")}


def results_table(document: dict) -> str:
    """A two-column text table of the headline metrics."""
    rows = headline_metrics(document["benchmark"], document["metrics"])
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


def mme_bar_chart(metrics: dict, path: str | os.PathLike, title: str = "MME") -> Path:
    """Horizontal bars of the subtask scores (out of 200), perception and cognition apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["subtasks"])
    scores = [metrics["subtasks"][n] for n in names]
    colors = [
        "tab:blue" if n in MME_PERCEPTION else "tab:orange" if n in MME_COGNITION else "grey" for n in names
    ]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh(names[::-1], scores[::-1], color=colors[::-1])
    ax.set_xlim(0, 200)
    ax.set_xlabel("score (100 x acc + 100 x acc+, max 200)")
    ax.set_title(f"{title}: perception {metrics['perception']:.1f}, cognition {metrics['cognition']:.1f}")
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
