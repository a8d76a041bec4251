"""What a benchmark of `svit eval` is, and the registry of them.

A benchmark is one module (`mme`, `pope`, `refcoco`, `svit_referring`) holding a `Benchmark` subclass
registered with `@register`: its options (the flags of `svit eval <name>` are generated from the dataclass,
svit_cli/args.py), its reader, the ledger fields of an answer, its scorer, its headline metrics, its
`model-index` entries and its help text; plus, for the shipped ones, its `evaluate` metric module
(`metric_modules/<name>/<name>.py`).
`run.run_eval` and `svit eval` know benchmarks only through this class.

    @register
    class Toy(Benchmark):
        name, help, options, dataset_name = "toy", "a toy benchmark", EvalOptions, "Toy"
        indexed = (IndexedMetric("accuracy", "accuracy", "toy accuracy"),)

        def read(self, dropped): ...             # -> [EvalItem]
        def score(self, items, records, output): ...  # -> metrics

`results.json` carries the entries `model_index` returns (`svit_dataset.facts.MODEL_INDEX_KEY`): the keyword arguments of
`huggingface_hub.EvalResult` plus `whole` (False: a score of part of the benchmark, which a card shows in its
table only), so the card writer (`hub_cards.model_card`) needs no table of benchmarks.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from svit_dataset.errors import SvitInputError
from svit_dataset.hub_push import hub_repo_id
from svit_dataset.settings import setting
from svit_model.evaluation.harness import EvalItem
from svit_model.evaluation.tables import load_table

# LLaVA-1.5's instruction for short answers (its MME and POPE prompts end with it).
SHORT_ANSWER = "Answer the question using a single word or phrase."
# Stated bounds of the numeric flags. An answer or a question beyond them holds a GPU (or, on CPU, tens of GB:
# attention grows with the square of the length) for nothing: benchmarks ask short questions for short answers.
MAX_NEW_TOKENS = 4096
MAX_BATCH_SIZE = 4096
DEFAULT_QUESTION_TOKENS = 2048
MAX_QUESTION_TOKENS = 32768


@dataclass
class EvalOptions:
    """The settings every benchmark has; a benchmark's options subclass this with its own."""

    model: str = setting(
        help="checkpoint: an SVIT-LLaVA folder or Hub id, a LoRA run (loaded unmerged), a llava export"
    )
    data: str = setting(
        help="the benchmark: a folder in its release layout, a Parquet file or folder, or a Hub id"
    )
    output: str = setting(help="output folder: predictions ledger (a rerun resumes it), results.json")
    split: str | None = setting(None, "split of a table (default: the only one, else test)")
    batch_size: int = setting(8, f"questions generated together (left-padded; 1 to {MAX_BATCH_SIZE})")
    max_new_tokens: int = setting(16, f"longest answer, in tokens (1 to {MAX_NEW_TOKENS})")
    prompt_suffix: str = setting(SHORT_ANSWER, "appended to each question after a newline ('' for none)")
    dtype: str | None = setting(
        None, "model dtype (default: the checkpoint's)", choices=["float32", "bfloat16", "float16"]
    )
    device: str | None = setting(None, "cuda, cpu, ... (default: this process's accelerator, else cpu)")
    progress: bool = setting(True, "show a progress bar")
    max_failed_fraction: float = setting(
        0.01,
        "share of items whose image may fail to load (scored wrong), or of benchmark rows dropped before "
        "generation (counted in results.json), before the run stops with an error (0 to 1)",
    )
    max_question_tokens: int = setting(
        DEFAULT_QUESTION_TOKENS,
        f"longest question, in tokens of the checkpoint's tokenizer, image aside; a longer one is refused before "
        f"any generation (at most {MAX_QUESTION_TOKENS})",
    )


@dataclass(frozen=True)
class IndexedMetric:
    """A metric the card's `model-index` reports: its key in results.json's `metrics`, its model-index type,
    the name shown."""

    key: str
    type: str
    name: str


def model_index_entry(
    task_type: str, dataset: dict, metric: IndexedMetric, value, **given: Any
) -> dict[str, Any]:
    """One `model-index` entry as results.json carries it: `EvalResult`'s keyword arguments (dataset from the
    results' `dataset` facts, `given` replacing any) and `whole`, True unless given."""
    return {
        "task_type": task_type,
        "dataset_type": dataset["type"],
        "dataset_name": dataset["name"],
        "dataset_config": dataset.get("config"),
        "dataset_split": dataset.get("split"),
        "metric_type": metric.type,
        "metric_name": metric.name,
        "metric_value": value,
        "whole": True,
        **given,
    }


def flat_numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numbers of nested metrics as `a/b` keys."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def dataset_facts(benchmark: Benchmark, **extra) -> dict:
    """results.json's `dataset`: the benchmark's dataset name; `type`: the Hub id read, else the benchmark's
    `dataset_id`, else its name (never a path: the card indexes it); `path`: `--data` as given; then `extra`."""
    options = benchmark.options
    return {
        "name": benchmark.dataset_name,
        "type": hub_repo_id(options.data) or benchmark.dataset_id or benchmark.name,
        "path": options.data,
        **extra,
    }


def table_split(data: str, split: str | None, config: str | None = None) -> str:
    """The split `load_table` read (the one given, else the only one, else `test`): asked of the table itself
    (the reader loaded it already: `datasets` answers from its cache)."""
    return split or str(load_table(data, split, config).split)


class Benchmark:
    """A benchmark of `svit eval`, bound to the options of one run. Subclasses set the class attributes and
    implement `read` and `score`; the other methods have defaults."""

    name: ClassVar[str]  # `svit eval <name>`, results.json's `benchmark`, the metric module's folder
    help: ClassVar[str]  # the line of `svit eval --help`
    options: ClassVar[type[EvalOptions]] = EvalOptions
    dataset_name: ClassVar[str]  # results.json's `dataset.name`, the card's dataset name
    dataset_id: ClassVar[str | None] = None  # `dataset.type` of data not read from the Hub (None: `name`)
    task_type: ClassVar[str] = "image-text-to-text"  # the model-index task
    indexed: ClassVar[tuple[IndexedMetric, ...]] = ()  # what the model-index reports, when measured
    drop_reasons: ClassVar[tuple[str, ...]] = ()  # why `read` may leave a row out (reported, 0 or more)
    not_in_signature: ClassVar[tuple[str, ...]] = ()  # own option fields that do not change predictions

    def __init__(self, options: EvalOptions):
        self.options = options

    @classmethod
    def resolve(cls, options: EvalOptions) -> Benchmark:
        """The benchmark that runs for these options: this one (an alias picks another)."""
        return cls(options)

    def check(self) -> None:
        """Refuse this benchmark's own option values before any work (the common ones: `run.check_options`)."""

    def inputs(self) -> dict[str, str | None]:
        """Flag -> path of what the run reads: `--output` may lie inside none of them."""
        return {"--data": self.options.data, "--model": self.options.model}

    def read(self, dropped: Counter) -> list[EvalItem]:
        """The items to generate; a row left out is counted in `dropped` under one of `drop_reasons`."""
        raise NotImplementedError

    def record(self, processor) -> Callable[[EvalItem, str, tuple[int, int] | None], dict]:
        """`record(item, output, image_size)`: the ledger fields of an answer, given the checkpoint's processor
        (by default the stripped answer and the reference)."""
        return lambda item, output, image_size: {"answer": output.strip(), "reference": item.reference}

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        """The metrics of the answers in `records` (id -> ledger line); may write extras into `output`."""
        raise NotImplementedError

    def dataset(self) -> dict:
        """results.json's `dataset`: what was really read (`dataset_facts`)."""
        return dataset_facts(self)

    def headline(self, metrics: dict) -> dict[str, float]:
        """The numbers people compare, as the printed table shows them."""
        return flat_numbers(metrics)

    def model_index(self, dataset: dict, metrics: dict) -> list[dict]:
        """The card's `model-index` entries of these results (`model_index_entry`): each of `indexed` found."""
        return [
            model_index_entry(self.task_type, dataset, metric, metrics[metric.key])
            for metric in self.indexed
            if metric.key in metrics
        ]


class BenchmarkAlias:
    """An earlier spelling of `svit eval <name>`, kept working: its options are the old flags, and `resolve`
    picks the benchmark that runs (its results are that benchmark's)."""

    name: ClassVar[str]
    help: ClassVar[str]
    options: ClassVar[type[EvalOptions]]

    @classmethod
    def resolve(cls, options: EvalOptions) -> Benchmark:
        raise NotImplementedError


BENCHMARKS: dict[str, type[Benchmark] | type[BenchmarkAlias]] = {}


def register(cls):
    """Class decorator: `cls` (a `Benchmark` or `BenchmarkAlias`) becomes `svit eval <cls.name>`."""
    if not issubclass(cls, Benchmark | BenchmarkAlias):
        raise TypeError(f"{cls.__name__}: register a Benchmark or BenchmarkAlias subclass")
    if cls.name in BENCHMARKS:
        raise ValueError(f"a benchmark named {cls.name!r} is registered already ({BENCHMARKS[cls.name]})")
    BENCHMARKS[cls.name] = cls
    return cls


def options_as(options: EvalOptions, target: type[EvalOptions]) -> EvalOptions:
    """`options` as another benchmark's options: the fields they share, the others at their defaults."""
    names = {field.name for field in dataclasses.fields(target)}
    return target(**{k: v for k, v in dataclasses.asdict(options).items() if k in names})


def benchmark_for(name: str, options: EvalOptions) -> Benchmark:
    """The benchmark `svit eval <name>` runs with `options`."""
    if name not in BENCHMARKS:
        raise SvitInputError(f"no benchmark {name!r}; svit eval has {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name].resolve(options)


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkAlias",
    "EvalOptions",
    "IndexedMetric",
    "SHORT_ANSWER",
    "benchmark_for",
    "dataset_facts",
    "flat_numbers",
    "model_index_entry",
    "options_as",
    "register",
    "table_split",
]
