"""`svit eval mme | pope | grounding`: a benchmark from its registry entry, a checkpoint, the harness, the scores,
`results.json`. Settings are dataclasses (flags generated from them: svit_cli/eval.py); benchmarks are entries of
`BENCHMARKS`, each naming its reader, its ledger fields and its scorer.

    results = run_eval("mme", MmeOptions(model="out/run", data="MME_Benchmark_release_version", output="out/mme"))
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svit_dataset.errors import SvitError, SvitInputError
from svit_dataset.files import check_output_apart, check_replaceable, write_json_atomic
from svit_dataset.hub_push import hub_repo_id
from svit_dataset.jsonlist import read_json_object
from svit_dataset.schema import REFERRING_QA, TEST
from svit_dataset.settings import setting
from svit_model.evaluation import grounding, mme, pope
from svit_model.evaluation.harness import (
    EvalItem,
    check_device,
    check_question_lengths,
    check_unique_ids,
    generate_predictions,
    load_for_eval,
    process_state,
)
from svit_model.evaluation.results import mme_bar_chart, results_document, results_table, write_results
from svit_model.evaluation.scoring import MME_SUBTASKS, POPE_CATEGORIES, mme_results_field
from svit_model.evaluation.tables import load_table

logger = logging.getLogger(__name__)

# LLaVA-1.5's instruction for short answers (its MME and POPE prompts end with it).
SHORT_ANSWER = "Answer the question using a single word or phrase."
RUN_FILE = "run.json"  # what the predictions in a folder were made with: a resume must match it
MME_RESULTS_DIR = "mme_results"
MME_CHART = "mme_scores.png"
# Stated bounds of the numeric flags. An answer or a question beyond them holds a GPU (or, on CPU, tens of GB:
# attention grows with the square of the length) for nothing: benchmarks ask short questions for short answers.
MAX_NEW_TOKENS = 4096
MAX_BATCH_SIZE = 4096
DEFAULT_QUESTION_TOKENS = 2048
MAX_QUESTION_TOKENS = 32768


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
    max_new_tokens: int = setting(64, f"longest answer, in tokens (1 to {MAX_NEW_TOKENS})")


@dataclass(frozen=True)
class Benchmark:
    """A registry entry: how to read the items, what the ledger keeps of an answer, how to score."""

    name: str
    options: type
    read: Callable[[Any, Counter], list[EvalItem]]  # (options, dropped: reason -> rows left out) -> items
    record: Callable[[Any], Callable]  # processor -> record(item, output, image_size)
    score: Callable[[list[EvalItem], dict, Path], dict]
    dataset: Callable[[Any], dict]  # options -> dataset facts of results.json
    drop_reasons: tuple[str, ...] = ()  # why its reader may leave a row out (always reported, 0 or more)


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
        read=lambda o, dropped: mme.read_mme(o.data, o.subtasks, o.prompt_suffix, o.split),
        record=lambda processor: mme.record,
        score=_score_mme,
        dataset=_mme_dataset,
    ),
    "pope": Benchmark(
        "pope",
        PopeOptions,
        read=lambda o, dropped: pope.read_pope(
            o.data, o.images, o.prompt_suffix, o.split, _split(o.categories)
        ),
        record=lambda processor: pope.record,
        score=lambda items, records, output: pope.score(items, records),
        dataset=_pope_dataset,
    ),
    "grounding": Benchmark(
        "grounding",
        GroundingOptions,
        read=lambda o, dropped: grounding.read_grounding(
            o.data, o.split, o.config, o.prompt, o.prompt_suffix, dropped
        ),
        record=grounding.make_record,
        score=lambda items, records, output: grounding.score(items, records),
        dataset=_grounding_dataset,
        drop_reasons=(grounding.NO_EXPRESSION, grounding.BAD_BOX),
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


_NOT_IN_SIGNATURE = (
    "output",
    "batch_size",
    "device",
    "progress",
    "max_failed_fraction",
    "images",
    "max_question_tokens",  # it only refuses: every prediction made was made the same way
)


def _signature(benchmark: str, options: EvalOptions) -> dict:
    """Settings that change predictions: a resume must use the same (batch size, device and where the images
    are do not count: a fixed --images path retries the items whose images failed)."""
    kept = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_IN_SIGNATURE}
    return {"benchmark": benchmark, **kept, "model_files": model_files(options.model)}


def check_resume(output: Path, signature: dict) -> None:
    """Refuse to add predictions to a folder whose earlier ones were made with other settings."""
    path = output / RUN_FILE
    if not path.is_file():
        return
    before = read_json_object(
        path, "it is svit eval's own record of a run: pass another --output, or delete it"
    )
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


def check_dropped(data: str, dropped: Counter, kept: int, max_fraction: float) -> None:
    """Stop before any generation when the reader left out more rows than `max_fraction` allows: a table of
    another shape, not a benchmark to score. Fewer are counted in results.json (`counts.dropped`)."""
    total = sum(dropped.values())
    if total and total > max_fraction * (total + kept):
        reasons = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
        raise SvitInputError(
            f"--data {data}: {total} rows dropped ({reasons}), {kept} questions kept; fix the table, or raise "
            "--max-failed-fraction to score the others (the dropped rows are counted in results.json)"
        )
    if total:
        logger.warning("--data %s: %d rows dropped (%s), counted in results.json", data, total, dict(dropped))


def _check_int(flag: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SvitInputError(f"{flag} {value}: pass a whole number from {low} to {high}")


def check_options(options: EvalOptions) -> None:
    """Every numeric flag in its stated range, the device present, the prompt template usable: before any work
    (a NaN fraction would turn the failure gate off, `--max-new-tokens 0` fail after loading the model)."""
    _check_int("--batch-size", options.batch_size, 1, MAX_BATCH_SIZE)
    _check_int("--max-new-tokens", options.max_new_tokens, 1, MAX_NEW_TOKENS)
    _check_int("--max-question-tokens", options.max_question_tokens, 1, MAX_QUESTION_TOKENS)
    fraction = options.max_failed_fraction
    if not isinstance(fraction, int | float) or not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise SvitInputError(f"--max-failed-fraction {fraction}: pass a number from 0 to 1")
    check_device(options.device)
    if isinstance(options, GroundingOptions):
        grounding.check_prompt(options.prompt)


def _is_eval_output(folder: Path) -> bool:
    return folder.is_dir() and (folder / RUN_FILE).is_file()


def check_eval_output(output: Path) -> None:
    """`--output` is new, empty, or an earlier run of `svit eval` (which the run resumes: `check_resume`). Any
    other existing path is refused: the run would write its predictions among someone's files and replace
    a `results.json` or an `mme_results` folder that is not its own."""
    if output.exists() and not output.is_dir():
        raise SvitInputError(
            f"--output {output}: is a file; pass a folder (new, empty, or an earlier svit eval run)"
        )
    # a resume is not a replacement: `--overwrite=True` here only asks whether the folder is ours or empty
    try:
        check_replaceable(output, "--output", True, "the output of an svit eval run", _is_eval_output)
    except SvitInputError:
        raise SvitInputError(
            f"--output {output}: holds files but no {RUN_FILE}, so it is not the output of an svit eval run, "
            "which it would resume; pass a new or empty folder"
        ) from None


def run_eval(benchmark: str, options: EvalOptions, print_fn=print) -> dict | None:
    """Evaluate `options.model` on `benchmark`; returns the results document (None on processes other than the
    main one under `accelerate launch`)."""
    spec = BENCHMARKS[benchmark]
    output = Path(options.output)
    check_options(options)
    inputs = {"--data": options.data, "--model": options.model, "--images": getattr(options, "images", None)}
    check_output_apart(output, "--output", inputs)
    check_eval_output(output)
    dropped: Counter = Counter(dict.fromkeys(spec.drop_reasons, 0))
    items = spec.read(options, dropped)
    if not items:
        raise SvitInputError(f"--data {options.data}: no {benchmark} questions found")
    check_dropped(options.data, dropped, len(items), options.max_failed_fraction)
    check_unique_ids(items)
    signature = _signature(benchmark, options)
    check_resume(output, signature)
    model, processor = load_for_eval(options.model, options.dtype, options.device)
    check_question_lengths(processor, items, options.max_question_tokens)
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
        "dropped": dict(dropped),  # benchmark rows left out before generation, by reason
    }
    write_results(output, document)
    print_fn(results_table(document))
    return document


def _is_mme_scores(path: Path) -> bool:
    """A scores file `svit eval mme-score` wrote: a JSON object with the totals and per-subtask scores."""
    try:
        scores = read_json_object(path, "")
    except SvitError:
        return False
    return {"perception", "cognition", "subtasks", "details"} <= set(scores)


def score_mme_folder(
    results_dir: str, output: str, subtasks: str | None = None, overwrite: bool = False, print_fn=print
) -> dict:
    """`svit eval mme-score`: the official tool's scores of a results folder, written as JSON. The output is
    never inside the results folder (it would replace a results file, or be read as one next time), and
    replaces an existing file only with `overwrite` and only when it is a scores file of this command."""
    check_output_apart(output, "--output", {"results_dir": results_dir})
    if Path(output).is_dir():
        raise SvitInputError(f"--output {output}: is a folder; pass the scores JSON file to write")
    check_replaceable(output, "--output", overwrite, "a scores file of svit eval mme-score", _is_mme_scores)
    scores = mme.score_results_folder(results_dir, subtasks)
    write_json_atomic(output, scores)
    print_fn(f"perception {scores['perception']:.2f}  cognition {scores['cognition']:.2f}")
    for name, value in scores["subtasks"].items():
        print_fn(f"  {name:<24} {value:.2f}")
    return scores
