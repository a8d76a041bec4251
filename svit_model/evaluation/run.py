"""`svit eval mme | pope | grounding`: a benchmark from its registry entry, a checkpoint, the harness, the scores,
`results.json`. Settings are dataclasses (flags generated from them: svit_cli/eval.py); benchmarks are entries of
`BENCHMARKS`, each naming its reader, its ledger fields and its scorer.

    results = run_eval("mme", MmeOptions(model="out/run", data="MME_Benchmark_release_version", output="out/mme"))
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svit_dataset.errors import SvitInputError
from svit_dataset.files import check_output_apart, write_json_atomic
from svit_dataset.hub_push import hub_repo_id
from svit_dataset.schema import REFERRING_QA, TEST
from svit_dataset.settings import setting
from svit_model.evaluation import grounding, mme, pope
from svit_model.evaluation.harness import EvalItem, generate_predictions, load_for_eval, process_state
from svit_model.evaluation.results import mme_bar_chart, results_document, results_table, write_results
from svit_model.evaluation.scoring import MME_SUBTASKS, POPE_CATEGORIES, mme_results_field
from svit_model.evaluation.tables import load_table

logger = logging.getLogger(__name__)

# LLaVA-1.5's instruction for short answers (its MME and POPE prompts end with it).
SHORT_ANSWER = "Answer the question using a single word or phrase."
RUN_FILE = "run.json"  # what the predictions in a folder were made with: a resume must match it
MME_RESULTS_DIR = "mme_results"
MME_CHART = "mme_scores.png"


@dataclass
class EvalOptions:
    model: str = setting(
        help="checkpoint: an SVIT-LLaVA folder or Hub id, a LoRA run (loaded unmerged), a llava export"
    )
    data: str = setting(
        help="the benchmark: a folder in its release layout, a Parquet file or folder, or a Hub id"
    )
    output: str = setting(help="output folder: predictions ledger (a rerun resumes it), results.json")
    split: str | None = setting(None, "split of a table (default: the only one, else test)")
    batch_size: int = setting(8, "questions generated together (left-padded)")
    max_new_tokens: int = setting(16, "longest answer, in tokens")
    prompt_suffix: str = setting(SHORT_ANSWER, "appended to each question after a newline ('' for none)")
    dtype: str | None = setting(
        None, "model dtype (default: the checkpoint's)", choices=["float32", "bfloat16", "float16"]
    )
    device: str | None = setting(None, "cuda, cpu, ... (default: this process's accelerator, else cpu)")
    progress: bool = setting(True, "show a progress bar")
    max_failed_fraction: float = setting(
        0.01, "share of items whose image may fail to load (scored wrong) before the run stops with an error"
    )


@dataclass
class MmeOptions(EvalOptions):
    subtasks: str | None = setting(
        None, "comma-separated subtasks (default: all 14; a folder lacking one is an error)"
    )


@dataclass
class PopeOptions(EvalOptions):
    images: str | None = setting(
        None, "images folder of POPE's question files (COCO val2014); not for tables"
    )
    categories: str = setting(",".join(POPE_CATEGORIES), "comma-separated categories")


@dataclass
class GroundingOptions(EvalOptions):
    config: str | None = setting(None, "dataset config (a built SVIT folder: referring_qa)")
    prompt: str = setting(grounding.REFCOCO_PROMPT, "RefCOCO question template with {expression}")
    prompt_suffix: str = setting("", "appended to each question after a newline")
    max_new_tokens: int = setting(64, "longest answer, in tokens")


@dataclass(frozen=True)
class Benchmark:
    """A registry entry: how to read the items, what the ledger keeps of an answer, how to score."""

    name: str
    options: type
    read: Callable[[Any], list[EvalItem]]
    record: Callable[[Any], Callable]  # processor -> record(item, output, image_size)
    score: Callable[[list[EvalItem], dict, Path], dict]
    dataset: Callable[[Any], dict]  # options -> dataset facts of results.json


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _score_mme(items: list[EvalItem], records: dict, output: Path) -> dict:
    """The official results folder, then its scores by the shipped `mme` metric, and the bar chart."""
    from svit_model.evaluation.metrics import load_metric

    mme.write_results_folder(items, records, output / MME_RESULTS_DIR)
    metrics = load_metric("mme").compute(
        predictions=[mme_results_field(records[item.id]["output"]) for item in items],
        references=[item.reference for item in items],
        subtasks=[item.meta["subtask"] for item in items],
        image_names=[item.meta["image_name"] for item in items],
    )
    mme_bar_chart(metrics, output / MME_CHART)
    return metrics


# --- dataset facts of results.json: what was really read (the cards index these) ----------------------------


def _table_split(data: str, split: str | None, config: str | None = None) -> str:
    """The split `load_table` read (the one given, else the only one, else `test`): asked of the table itself
    (the readers loaded it already: `datasets` answers from its cache)."""
    return split or str(load_table(data, split, config).split)


def _dataset_facts(name: str, benchmark: str, options: EvalOptions, **extra) -> dict:
    """`name`; `type`: the Hub id read, else the benchmark's name (never a path); `path`: `--data` as given."""
    return {"name": name, "type": hub_repo_id(options.data) or benchmark, "path": options.data, **extra}


def _mme_dataset(options: MmeOptions) -> dict:
    subtasks = mme.resolve_subtasks(options.subtasks)  # the ones scored: the reader reads all or refuses
    data = Path(options.data)
    layout = data.is_dir() and any((data / name).is_dir() for name in MME_SUBTASKS)
    return _dataset_facts(
        "MME",
        "mme",
        options,
        split=None if layout else _table_split(options.data, options.split),
        subtasks=subtasks,
        complete=set(subtasks) == set(MME_SUBTASKS),  # the totals are MME's only over all 14
    )


def _pope_dataset(options: PopeOptions) -> dict:
    files = options.images is not None  # question files need --images; tables carry theirs
    return _dataset_facts(
        "POPE",
        "pope",
        options,
        split=None if files else _table_split(options.data, options.split),
        categories=options.categories,
    )


def _grounding_dataset(options: GroundingOptions) -> dict:
    config, split = options.config, options.split
    if (Path(options.data) / "data" / REFERRING_QA).is_dir():  # a built SVIT folder: read_grounding's default
        config, split = config or REFERRING_QA, split or TEST
    return _dataset_facts(
        "grounding", "grounding", options, config=config, split=_table_split(options.data, split, config)
    )


BENCHMARKS: dict[str, Benchmark] = {
    "mme": Benchmark(
        "mme",
        MmeOptions,
        read=lambda o: mme.read_mme(o.data, o.subtasks, o.prompt_suffix, o.split),
        record=lambda processor: mme.record,
        score=_score_mme,
        dataset=_mme_dataset,
    ),
    "pope": Benchmark(
        "pope",
        PopeOptions,
        read=lambda o: pope.read_pope(o.data, o.images, o.prompt_suffix, o.split, _split(o.categories)),
        record=lambda processor: pope.record,
        score=lambda items, records, output: pope.score(items, records),
        dataset=_pope_dataset,
    ),
    "grounding": Benchmark(
        "grounding",
        GroundingOptions,
        read=lambda o: grounding.read_grounding(o.data, o.split, o.config, o.prompt, o.prompt_suffix),
        record=grounding.make_record,
        score=lambda items, records, output: grounding.score(items, records),
        dataset=_grounding_dataset,
    ),
}


def model_files(model: str) -> list | None:
    """(name, size, mtime) of a local checkpoint's weight files: the same path holding other weights (a
    retrained run) is another model to a resume. None for a Hub id."""
    folder = Path(model)
    if not folder.is_dir():
        return None
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights]


def _signature(benchmark: str, options: EvalOptions) -> dict:
    """Settings that change predictions: a resume must use the same (batch size, device and where the images
    are do not count: a fixed --images path retries the items whose images failed)."""
    kept = {
        k: v
        for k, v in dataclasses.asdict(options).items()
        if k not in ("output", "batch_size", "device", "progress", "max_failed_fraction", "images")
    }
    return {"benchmark": benchmark, **kept, "model_files": model_files(options.model)}


def check_resume(output: Path, signature: dict) -> None:
    """Refuse to add predictions to a folder whose earlier ones were made with other settings."""
    path = output / RUN_FILE
    if not path.is_file():
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    changed = sorted(k for k in set(before) | set(signature) if before.get(k) != signature.get(k))
    if changed:
        raise SvitInputError(
            f"--output {output}: holds predictions made with other settings ({', '.join(changed)} differ); "
            "pass another --output, or delete it to start over"
        )


def check_failures(records: dict[str, dict], max_fraction: float) -> None:
    """Stop when more images failed to load than `max_fraction` allows (each one is a wrong answer): a wrong
    `--images` folder or a damaged copy, not a model to score. A rerun tries them again."""
    failed = [record for record in records.values() if "error" in record]
    if failed and len(failed) > max_fraction * len(records):
        raise SvitInputError(
            f"{len(failed)} of {len(records)} images did not load (first: {failed[0]['id']}: {failed[0]['error']}); "
            "check --data / --images and run again (those items are retried), or raise --max-failed-fraction"
        )
    if failed:
        logger.warning("%d of %d images did not load: scored wrong", len(failed), len(records))


def run_eval(benchmark: str, options: EvalOptions, print_fn=print) -> dict | None:
    """Evaluate `options.model` on `benchmark`; returns the results document (None on processes other than the
    main one under `accelerate launch`)."""
    spec = BENCHMARKS[benchmark]
    output = Path(options.output)
    check_output_apart(output, "--output", {"--data": options.data, "--model": options.model})
    items = spec.read(options)
    if not items:
        raise SvitInputError(f"--data {options.data}: no {benchmark} questions found")
    signature = _signature(benchmark, options)
    check_resume(output, signature)
    model, processor = load_for_eval(options.model, options.dtype, options.device)
    output.mkdir(parents=True, exist_ok=True)
    if process_state().is_main_process:
        write_json_atomic(output / RUN_FILE, signature)
    records, stats = generate_predictions(
        model,
        processor,
        items,
        output,
        record=spec.record(processor),
        batch_size=options.batch_size,
        max_new_tokens=options.max_new_tokens,
        progress=options.progress,
    )
    logger.info(
        "%s: %d items, %d predicted earlier, %d now, %d images failed",
        benchmark,
        stats.total,
        stats.done_before,
        stats.generated,
        stats.failed,
    )
    if records is None:
        return None
    check_failures(records, options.max_failed_fraction)
    metrics = spec.score(items, records, output)
    generation = {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": options.max_new_tokens,
        "batch_size": options.batch_size,
        "padding_side": "left",
        "prompt_suffix": options.prompt_suffix,
        "image_padding": "pad (LLaVA-1.5)" if getattr(processor.image_processor, "do_pad", False) else "none",
        "dtype": str(model.dtype).removeprefix("torch."),
    }
    document = results_document(options.model, benchmark, spec.dataset(options), metrics, generation)
    document["counts"] = {
        **dataclasses.asdict(stats),
        "failed_in_ledger": sum("error" in r for r in records.values()),
    }
    write_results(output, document)
    print_fn(results_table(document))
    return document


def score_mme_folder(results_dir: str, output: str, subtasks: str | None = None, print_fn=print) -> dict:
    """`svit eval mme-score`: the official tool's scores of a results folder, written as JSON."""
    scores = mme.score_results_folder(results_dir, subtasks)
    write_json_atomic(output, scores)
    print_fn(f"perception {scores['perception']:.2f}  cognition {scores['cognition']:.2f}")
    for name, value in scores["subtasks"].items():
        print_fn(f"  {name:<24} {value:.2f}")
    return scores
