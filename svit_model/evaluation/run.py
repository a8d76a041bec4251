"""`svit eval <benchmark>`: a registered benchmark (`benchmark.Benchmark`: mme, pope, refcoco, svit-referring, and
`grounding`, the former spelling of the last two), a checkpoint, the harness, the scores, `results.json`.

    results = run_eval("mme", MmeOptions(model="out/run", data="MME_Benchmark_release_version", output="out/mme"))

Nothing here knows one benchmark from another: each says what it reads, keeps, scores and reports.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import pkgutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from svit_dataset.errors import SvitInputError
from svit_dataset.files import check_output_apart, check_replaceable, write_json_atomic
from svit_dataset.jsonlist import read_json_object
from svit_model.evaluation.benchmark import (
    BENCHMARKS,
    MAX_BATCH_SIZE,
    MAX_NEW_TOKENS,
    MAX_QUESTION_TOKENS,
    Benchmark,
    EvalOptions,
    benchmark_for,
)
from svit_model.evaluation.harness import (
    check_device,
    check_question_lengths,
    check_unique_ids,
    generate_predictions,
    load_for_eval,
    process_state,
)
from svit_model.evaluation.results import results_document, results_table, write_results

logger = logging.getLogger(__name__)


def import_shipped_benchmarks() -> None:
    """Import every module of svit_model.evaluation: each benchmark module registers itself on import
    (`benchmark.register`), so a new benchmark is one new module, with no list to edit."""
    import svit_model.evaluation as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


import_shipped_benchmarks()

RUN_FILE = "run.json"  # what the predictions in a folder were made with: a resume must match it


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
    "max_question_tokens",  # it only refuses: every prediction made was made the same way
)


def _signature(benchmark: Benchmark) -> dict:
    """Settings that change predictions: a resume must use the same (batch size and device do not count, nor
    what the benchmark names in `not_in_signature`)."""
    left_out = (*_NOT_IN_SIGNATURE, *benchmark.not_in_signature)
    kept = {k: v for k, v in dataclasses.asdict(benchmark.options).items() if k not in left_out}
    return {"benchmark": benchmark.name, **kept, "model_files": model_files(benchmark.options.model)}


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
    """Every numeric flag in its stated range, the device present: before any work (a NaN fraction would turn
    the failure gate off, `--max-new-tokens 0` fail after loading the model). A benchmark checks its own
    options in `Benchmark.check`."""
    _check_int("--batch-size", options.batch_size, 1, MAX_BATCH_SIZE)
    _check_int("--max-new-tokens", options.max_new_tokens, 1, MAX_NEW_TOKENS)
    _check_int("--max-question-tokens", options.max_question_tokens, 1, MAX_QUESTION_TOKENS)
    fraction = options.max_failed_fraction
    if not isinstance(fraction, int | float) or not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise SvitInputError(f"--max-failed-fraction {fraction}: pass a number from 0 to 1")
    check_device(options.device)


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


def run_eval(name: str, options: EvalOptions, print_fn: Callable[[str], None] | None = None) -> dict | None:
    """Evaluate `options.model` on the benchmark `name`; returns the results document (None on processes other
    than the main one under `accelerate launch`). The table of its headline metrics goes to `print_fn` (the
    command line prints it), else to the log."""
    output = Path(options.output)
    check_options(options)
    benchmark = benchmark_for(name, options)
    benchmark.check()
    check_output_apart(output, "--output", benchmark.inputs())
    check_eval_output(output)
    dropped: Counter = Counter(dict.fromkeys(benchmark.drop_reasons, 0))
    items = benchmark.read(dropped)
    if not items:
        raise SvitInputError(f"--data {options.data}: no {benchmark.name} questions found")
    check_dropped(options.data, dropped, len(items), options.max_failed_fraction)
    check_unique_ids(items)
    signature = _signature(benchmark)
    check_resume(output, signature)
    options = benchmark.options
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
        record=benchmark.record(processor),
        batch_size=options.batch_size,
        max_new_tokens=options.max_new_tokens,
        progress=options.progress,
    )
    logger.info(
        "%s: %d items, %d predicted earlier, %d now, %d images failed",
        benchmark.name,
        stats.total,
        stats.done_before,
        stats.generated,
        stats.failed,
    )
    if records is None:
        return None
    check_failures(records, options.max_failed_fraction)
    metrics = benchmark.score(items, records, output)
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
    dataset = benchmark.dataset()
    model_index = benchmark.model_index(dataset, metrics)
    document = results_document(options.model, benchmark.name, dataset, metrics, generation, model_index)
    document["counts"] = {
        **dataclasses.asdict(stats),
        "failed_in_ledger": sum("error" in r for r in records.values()),
        "dropped": dict(dropped),  # benchmark rows left out before generation, by reason
    }
    write_results(output, document)
    (print_fn or logger.info)(results_table(document, benchmark.headline(metrics)))
    return document


__all__ = ["BENCHMARKS", "check_options", "run_eval"]
