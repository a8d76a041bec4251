"""The model card (README.md of a Hub model repo) of an SVIT-LLaVA training run: huggingface_hub's `ModelCard`
from `templates/model_card.md.j2`, with `ModelCardData` metadata (base model, datasets, licence,
`pipeline_tag: image-text-to-text`, `library_name: transformers`, `model-index` as `EvalResult`s), then the stage,
hyper-parameters, loss curve, evaluation table, usage code and limitations. Imports no torch.

The facts come from `svit train` (`SvitTrainer.run_facts`), saved in the run folder as `svit_run.json` at every
checkpoint and at the end; `write_run_card` writes the card from them (`svit train` after each save and at the
end, `svit card model RUN` later), with the `results.json` files of `svit eval` as its `model-index`
(`model_index_entries`; `add_eval_results` is `svit eval card`).

The `model-index` entries are what each results.json's benchmark states (`evaluation_entries`): this module
knows no benchmark (results.json files of earlier versions, which state none, are read as they were then). The
metadata claims only what was measured: a benchmark scored in part (MME on fewer than its 14 subtasks) is in the
body's evaluation table, marked as a subset, never in the `model-index`; a `dataset.type` is a Hub id or the
benchmark's name, never a local path. The body names local folders by their name only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from hub_cards.lmms_eval_results import as_svit_results, is_lmms_eval_results
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import (
    MODEL_INDEX_KEY,
    RUN_FACTS_FILE,
    SVIT_CITATION,
    SVIT_DATA_LICENSE,
    SVIT_PAPER_URL,
    holds_run_facts,
    read_run_facts,
)
from svit_dataset.files import write_text_atomic
from svit_dataset.hub_push import hub_repo_id, require_hub_repo_id, shown_name
from svit_dataset.jsonlist import json_kind, read_json_object

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
LICENSE = SVIT_DATA_LICENSE  # SVIT's data licence; the base LLM's licence applies too (stated in the body)
STAGE_TEXT = {
    "pretrain": "stage 1 (pretraining: only the projector trains; LLaVA's plain template, image + caption)",
    "finetune": "stage 2 (visual instruction tuning; vicuna_v1 template, assistant tokens only)",
}


def card_data(
    facts: dict, eval_results: list[EvalResult] | None = None, model_name: str | None = None
) -> ModelCardData:
    """The card's metadata; `eval_results` become its `model-index` under `model_name`."""
    datasets = [d for d in (hub_repo_id(name) for name in facts.get("datasets", [])) if d]
    return ModelCardData(
        base_model=hub_repo_id(facts.get("base_model")),
        datasets=datasets or None,
        license=LICENSE,
        language=["en"],
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["svit", "llava", "svit-llava", "grounding", "trl", "sft", facts.get("method") or "full"],
        eval_results=eval_results or None,
        model_name=model_name if eval_results else None,
    )


def _trains_text(facts: dict) -> str:
    hyper = facts.get("hyperparameters") or {}
    if facts.get("stage") == "pretrain":
        parts = ["the projector"]
    elif facts.get("method") == "lora":
        parts = ["LoRA adapters on the language model", "the projector in full"]
    else:
        parts = ["the projector", "the language model"]
    if hyper.get("train_vision_tower"):
        parts.append("the vision tower")
    return ", ".join(parts) + "; everything else is frozen"


def _eval_rows(results: list[EvalResult]) -> list[dict]:
    return [
        {
            "dataset": e.dataset_name,
            "config": e.dataset_config or "-",
            "split": e.dataset_split or "-",
            "metric": e.metric_name or e.metric_type,
            "value": f"{e.metric_value:g}" if isinstance(e.metric_value, float) else e.metric_value,
            "protocol": e.metric_config or "-",
            "tool": e.source_name or "svit eval",
        }
        for e in results
    ]


def _base_model_text(facts: dict) -> str:
    """The base model's Hub id, and what training started from when that was another folder or run (by name)."""
    base = hub_repo_id(facts.get("base_model"))
    start = shown_name(facts.get("init_from") or facts.get("base_model"))
    if base is None:
        return f"`{start}` (a local checkpoint; no Hub id recorded)" if start else "-"
    return f"`{base}`" + (f" (trained from `{start}`)" if start and start != base else "")


def card_context(
    facts: dict, model_id: str, eval_results: list[EvalResult] = (), unindexed: list[EvalResult] = ()
) -> dict:
    """The template's values: plain strings and lists, nothing computed in the template."""
    counts = facts.get("counts") or {}
    lora = facts.get("lora")
    hyper = {
        **(facts.get("hyperparameters") or {}),
        **({f"lora_{k}": v for k, v in lora.items()} if lora else {}),
    }
    final_loss = facts.get("final_loss")
    data = ", ".join(f"`{shown_name(d)}`" for d in facts.get("datasets", []) if d) or "-"
    if facts.get("dataset_config"):
        data += f" (config `{facts['dataset_config']}`)"
    return {
        "title": model_id.split("/")[-1],
        "model_id": model_id,
        # a Python string literal whatever the folder is called (a quote in its name cannot break the code)
        "model_id_literal": json.dumps(model_id),
        "paper_url": SVIT_PAPER_URL,
        "stage_text": STAGE_TEXT.get(facts.get("stage"), facts.get("stage") or "unknown stage"),
        "method_text": "LoRA on the language model, projector in full"
        if facts.get("method") == "lora"
        else "full fine-tuning",
        "trains_text": _trains_text(facts),
        "template": facts.get("template") or "-",
        "lora": facts.get("method") == "lora",
        "base_model_text": _base_model_text(facts),
        "data_text": data,
        "steps": facts.get("global_step", 0),
        "tokens": f"{counts.get('tokens_trained', 0):,}",
        "final_loss": None if final_loss is None else f"{final_loss:.4f}",
        "summary": facts.get("summary"),
        "hyperparameters": [(k, v) for k, v in hyper.items() if v is not None],
        "loss_curve": facts.get("loss_curve"),
        "eval_rows": _eval_rows(list(eval_results)),
        "unindexed_rows": _eval_rows(list(unindexed)),
        "unindexed_store": _store(list(unindexed)),
        "license_text": LICENSE.upper(),
        "citation": SVIT_CITATION,
    }


def model_card(
    facts: dict,
    model_id: str | None = None,
    eval_results: list[EvalResult] = (),
    unindexed: list[EvalResult] = (),
) -> ModelCard:
    """The card of a run's facts; `model_id` is what the usage code loads (default: the run's Hub id).
    `eval_results` are its `model-index` and evaluation table; `unindexed` (scores on part of a benchmark, e.g.
    MME on some subtasks) show in the table only."""
    model_id = model_id or facts.get("hub_model_id") or "path/to/this/model"
    return ModelCard.from_template(
        card_data(facts, list(eval_results), model_name=model_id.split("/")[-1]),
        template_path=str(TEMPLATE),
        **card_context(facts, model_id, eval_results, unindexed),
    )


def _write_card(card: ModelCard, path: Path) -> Path:
    """`card` as `path`, atomically (svit_dataset.files, the one home of atomic writes)."""
    write_text_atomic(path, str(card))
    return path


def write_model_card(facts: dict, output_dir: str | os.PathLike) -> Path:
    """Write README.md into `output_dir` (atomically); `svit train` passes this as its card writer.

    The usage code loads the run's Hub id, or the folder by its name (run from the folder's parent)."""
    output_dir = Path(output_dir)
    card = model_card(facts, model_id=facts.get("hub_model_id") or output_dir.name)
    return _write_card(card, output_dir / "README.md")


class BadMetricError(ValueError):
    """A metric a card would publish is not a finite number (NaN, an infinity, a string, a boolean, null)."""


class ModelOwner:
    """What a card's model is known as: its folder (a run, or a checkpoint inside it) and its Hub ids. A
    results.json names the model it evaluated (`svit eval --model`); `mismatch` says why that is another model,
    or None when it is this one or cannot be told (no name recorded; a Hub id when the card's own Hub ids are
    unknown, `hub_ids=None`: a model folder that is no run)."""

    def __init__(self, folder: Path, hub_ids: Iterable[str | None] | None = ()):
        self.folder = folder.resolve()
        self.hub_ids = None if hub_ids is None else {i for i in hub_ids if i}

    def mismatch(self, recorded) -> str | None:
        if recorded is None:
            return None
        if not isinstance(recorded, str) or not recorded.strip():
            return f"its `model` is {json_kind(recorded)}, not a model folder or Hub id"
        if self.hub_ids and recorded in self.hub_ids:
            return None
        here = Path(recorded).expanduser()
        if here.exists():  # a folder on this machine: this model's folder or one of its checkpoints
            resolved = here.resolve()
            return (
                None if resolved == self.folder or resolved.is_relative_to(self.folder) else "another folder"
            )
        if hub_repo_id(recorded):
            if self.hub_ids is None:
                return None
            return "another Hub model" if self.hub_ids else "a Hub model this card does not name"
        # a relative path written elsewhere (or a folder since moved): the folder's name is all there is to go on
        parts = Path(recorded.rstrip("/\\")).parts
        names = [parts[-1]] + ([parts[-2]] if len(parts) > 1 and parts[-1].startswith("checkpoint-") else [])
        return None if self.folder.name in names else "another folder"


def _checked_results(path, results: dict, owner: ModelOwner | None, force: bool) -> None:
    """Refuse (unless `force`) a results.json of another model than the card's: its scores would be published
    as this model's."""
    if owner is None:
        return
    why = owner.mismatch(results.get("model"))
    if why is None:
        return
    message = (
        f"{path}: results of {results.get('model')!r} ({why}), not of {owner.folder.name}; pass the results of "
        "this model, or --force (force=True) if they are its results under another name"
    )
    if not force:
        raise SvitInputError(message)
    logger.warning("%s (forced)", message.split("; pass")[0])


def _results_entries(
    results_files: Iterable[str | os.PathLike], owner: ModelOwner | None = None, force: bool = False
) -> tuple[list[EvalResult], list[EvalResult]]:
    """(`model-index` entries, table-only entries) of `svit eval`'s results.json files, each checked to be of
    `owner`'s model (unless `force`)."""
    indexed, unindexed = [], []
    for path in results_files:
        results = read_json_object(path, "pass a results.json written by `svit eval` or lmms-eval")
        if is_lmms_eval_results(results):
            results = as_svit_results(results)
        for key in ("dataset", "metrics"):
            if results.get(key) is not None and not isinstance(results[key], dict):
                raise SvitInputError(
                    f"{path}: `{key}` is {json_kind(results[key])}, not an object; "
                    "pass a results.json written by `svit eval` (or run the evaluation again)"
                )
        try:
            index, table = evaluation_entries(results)
        except BadMetricError as err:
            raise SvitInputError(
                f"{path}: {err}; a card publishes only measured scores: run the evaluation again"
            ) from err
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SvitInputError(f"{path}: not a results.json of `svit eval` ({err})") from err
        _checked_results(path, results, owner, force)
        indexed += index
        unindexed += table
    return indexed, unindexed


def _key(e: EvalResult) -> tuple:
    return (e.task_type, e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type)


def _merged(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    """`old` without the entries `new` measures again (same task, dataset, config, split and metric), then `new`.
    The dataset is its Hub id or the benchmark's name, never a path: the same data evaluated again from another
    folder replaces its entries."""
    fresh = {_key(e) for e in new}
    return [e for e in old if _key(e) not in fresh] + new


# Table-only results (a benchmark measured in part) live in the README too, in a comment the Hub does not show,
# so that rewriting the card keeps them as it keeps the `model-index`.
_STORE = re.compile(r"<!-- svit-unindexed-results (.*?) -->", re.S)


def _store(entries: list[EvalResult]) -> str:
    if not entries:
        return ""
    text = json.dumps(eval_results_to_model_index("unindexed", entries), sort_keys=True)
    text = text.replace(">", "\\u003e")  # nothing in it can close the comment
    return f"<!-- svit-unindexed-results {text} -->"


def _stored(text: str) -> list[EvalResult]:
    found = _STORE.search(text)
    if not found:
        return []
    return model_index_to_eval_results(json.loads(found.group(1)))[1]


def _card_results(path: Path) -> tuple[list[EvalResult], list[EvalResult]]:
    """The (`model-index`, table-only) entries a run's README already holds (none when there is no README). A
    README whose metadata or model-index does not parse is not the run's to keep: a warning, and the card is
    written again from the run's facts (the results files passed now come back in)."""
    if not path.is_file():
        return [], []
    try:
        card = ModelCard.load(path)
        return card.data.eval_results or [], _stored(card.text)
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())[:200]
        logger.warning(
            "%s: its metadata does not parse (%s); writing the card again from %s (earlier model-index entries "
            "are not kept: pass their results.json files again)",
            path,
            reason,
            RUN_FACTS_FILE,
        )
        return [], []


def run_card(
    run_dir: str | os.PathLike,
    results_files: Iterable[str | os.PathLike] = (),
    *,
    model_id: str | None = None,
    force: bool = False,
) -> ModelCard:
    """A training run's card from its `svit_run.json`, with the `results.json` files of `svit eval` as
    `model-index` and evaluation table (joining the entries the run's README.md already has). The usage code
    loads `model_id` (a Hub id: `require_hub_repo_id`), else the run's Hub id, else the folder by its name (from
    the folder's parent). Results of another model (their `model` is neither the run's folder, one of its
    checkpoints, nor its Hub id) are refused unless `force`."""
    run_dir = Path(run_dir)
    if model_id is not None:
        require_hub_repo_id(model_id, "--model-id")  # before anything is read: it goes into the usage code
    if not run_dir.is_dir():
        raise SvitInputError(f"{run_dir}: no such folder; pass a folder written by `svit train`")
    facts = read_run_facts(run_dir)
    hub_id = facts.get("hub_model_id")
    owner = ModelOwner(run_dir, [model_id, hub_id if isinstance(hub_id, str) else None])
    new_index, new_table = _results_entries(results_files, owner, force)
    old_index, old_table = _card_results(run_dir / "README.md")
    index = _merged(old_index, new_index)
    measured = {_key(e) for e in index}  # a whole measurement replaces a partial one of the same data
    table = [e for e in _merged(old_table, new_table) if _key(e) not in measured]
    return model_card(facts, model_id or _usable_id(hub_id) or run_dir.name, index, table)


def _usable_id(value) -> str | None:
    """A recorded `hub_model_id` the usage code may name: a Hub id (svit_run.json may be hand-edited)."""
    return hub_repo_id(value) if isinstance(value, str) else None


def write_run_card(
    run_dir: str | os.PathLike,
    results_files: Iterable[str | os.PathLike] = (),
    *,
    model_id: str | None = None,
    force: bool = False,
) -> Path:
    """(Re)write a training run's README.md: `run_card` (`svit card model RUN --results ... [--force]`)."""
    card = run_card(run_dir, results_files, model_id=model_id, force=force)
    return _write_card(card, Path(run_dir) / "README.md")


# --- model-index from `svit eval` results ---------------------------------------------------------------

# Each entry of results.json's `MODEL_INDEX_KEY` list holds `EvalResult`'s keyword arguments and `whole` (False: a
# score of part of the benchmark, table-only).
_ENTRY_NAMES = ("task_type", "dataset_type", "dataset_name", "metric_type")  # each a string
# metric_config: the scoring protocol (RefCOCO's strict or lenient); source_*: the tool, when not svit eval
_ENTRY_OPTIONAL = (
    "dataset_config",
    "dataset_split",
    "metric_name",
    "metric_config",
    "source_name",
    "source_url",
)


def evaluation_entries(results: dict) -> tuple[list[EvalResult], list[EvalResult]]:
    """(`model-index` entries, table-only entries) of one `results.json`: those its benchmark stated when `svit
    eval` wrote it (`model_index`), whole scores indexed, partial ones (MME on some of its 14 subtasks, e.g. the
    shipped drawn-shapes sample) for the card's table only. A results.json of an earlier version states none:
    `_earlier_entries` reads it as the cards did then."""
    stated = results.get(MODEL_INDEX_KEY)
    if stated is None:
        return _earlier_entries(results)
    if not isinstance(stated, list):
        raise ValueError(f"`{MODEL_INDEX_KEY}` is {json_kind(stated)}, not a list")
    indexed, table = [], []
    for n, entry in enumerate(stated):
        result, whole = _stated_entry(entry, f"{MODEL_INDEX_KEY}[{n}]")
        (indexed if whole else table).append(result)
    return indexed, table


def _stated_entry(entry, where: str) -> tuple[EvalResult, bool]:
    """One entry of results.json's `model_index` as an `EvalResult` (value rounded to 4 places), and `whole`."""
    if not isinstance(entry, dict):
        raise ValueError(f"`{where}` is {json_kind(entry)}, not an object")
    for key in _ENTRY_NAMES + _ENTRY_OPTIONAL:
        value = entry.get(key)
        if not isinstance(value, str) and (key in _ENTRY_NAMES or value is not None):
            raise ValueError(f"`{where}.{key}` is {json_kind(value)}, not a string")
    if not isinstance(entry.get("whole"), bool):
        raise ValueError(f"`{where}.whole` is {json_kind(entry.get('whole'))}, not true or false")
    if not _is_name_or_hub_id(entry["dataset_type"]):
        raise ValueError(
            f"`{where}.dataset_type` {entry['dataset_type']!r} is a path, not a Hub id or a name"
        )
    value = _finite_number(entry.get("metric_value"))
    if value is None:
        raise BadMetricError(
            f"`{where}.metric_value` is {_metric_kind(entry.get('metric_value'))}, not a finite number"
        )
    fields = {key: entry.get(key) for key in _ENTRY_NAMES + _ENTRY_OPTIONAL}
    return EvalResult(**fields, metric_value=round(value, 4)), entry["whole"]


def _is_name_or_hub_id(text: str) -> bool:
    """`org/name` or a plain name: never a path (absolute, relative, home-based, with backslashes)."""
    return bool(text) and text.count("/") <= 1 and "\\" not in text and not text.startswith((".", "/", "~"))


# --- results.json of earlier versions, which state no model-index entries ------------------------------------
# Frozen as those versions' cards read them: a benchmark added since states its own entries.


@dataclasses.dataclass(frozen=True)
class _Earlier:
    """How a card read one benchmark's results.json before they stated their entries."""

    task_type: str
    metrics: tuple[tuple[str, str, str], ...]  # (key in results.json "metrics", model-index type, name shown)
    groups: str | None = None  # a key of "metrics" holding one group per config (POPE's categories)
    whole_subtasks: int | None = (
        None  # the totals are the benchmark's only over this many subtasks (MME's 14)
    )


_EARLIER = {
    "mme": _Earlier(
        "visual-question-answering",
        (("perception", "mme_perception", "MME perception"), ("cognition", "mme_cognition", "MME cognition")),
        whole_subtasks=14,
    ),
    "pope": _Earlier(
        "visual-question-answering",
        (
            ("accuracy", "accuracy", "POPE accuracy"),
            ("f1", "f1", "POPE F1"),
            ("yes_ratio", "yes_ratio", "POPE yes-ratio"),
        ),
        groups="categories",
    ),
    "grounding": _Earlier(
        "image-text-to-text",
        (
            ("acc@0.5", "acc@0.5", "ACC@0.5 (IoU >= 0.5)"),
            ("mean_iou", "mean_iou", "mean IoU"),
            ("phrase_recall", "phrase_recall", "phrase recall"),
            ("mean_entity_iou", "mean_entity_iou", "mean entity IoU"),
            ("entity_acc@0.5", "entity_acc@0.5", "entity ACC@0.5"),
        ),
    ),
}


def _scored_subtasks(results: dict) -> list[str]:
    """The subtasks a results.json scored: its metrics' (what was scored), else what the eval recorded."""
    scored = results["metrics"].get("subtasks")
    if isinstance(scored, dict) and scored:
        return list(scored)
    recorded = (results.get("dataset") or {}).get("subtasks")
    return recorded.split(",") if isinstance(recorded, str) else list(recorded or [])


def _dataset_type(benchmark: str, dataset: dict) -> str:
    """A Hub id when one was read, else the benchmark's name: never a local path (results.json of older svit
    versions may hold one, or a Hub id the data was not read from)."""
    hub = hub_repo_id(str(dataset.get("type") or ""))
    if hub and dataset.get("path") not in (None, hub):  # it read something else (older MME results.json)
        hub = None
    return hub or benchmark


def _earlier_entries(results: dict) -> tuple[list[EvalResult], list[EvalResult]]:
    """(`model-index` entries, table-only entries) of a results.json that states none (POPE: one group per
    category; MME on part of its subtasks: table-only, named with the subtasks and the data's folder name)."""
    benchmark = results["benchmark"]
    if benchmark not in _EARLIER:
        raise ValueError(
            f"results.json of benchmark {benchmark!r} states no `{MODEL_INDEX_KEY}` entries (svit eval writes "
            f"them; earlier versions wrote {', '.join(_EARLIER)} results without)"
        )
    earlier = _EARLIER[benchmark]
    dataset = results.get("dataset") or {}
    metrics = results["metrics"]
    dataset_type = _dataset_type(benchmark, dataset)
    name = str(dataset.get("name") or benchmark)
    partial = False
    if earlier.whole_subtasks:
        subtasks = _scored_subtasks(results)
        partial = len(set(subtasks)) < earlier.whole_subtasks
        if partial:
            source = shown_name(str(dataset.get("path") or dataset.get("type") or "")) or "-"
            name = (
                f"{name} subset ({len(subtasks)} of {earlier.whole_subtasks} subtasks: {', '.join(subtasks)}; "
                f"data `{source}`)"
            )
    groups = metrics[earlier.groups].items() if earlier.groups else [(dataset.get("config"), metrics)]
    entries = []
    for config, values in groups:
        for key, metric_type, metric_name in earlier.metrics:
            if key not in values:
                continue  # not every benchmark variant measures every metric (RefCOCO boxes vs SVIT answers)
            value = _finite_number(values[key])
            if value is None:
                where = f"metrics.{earlier.groups}.{config}.{key}" if earlier.groups else f"metrics.{key}"
                raise BadMetricError(f"`{where}` is {_metric_kind(values[key])}, not a finite number")
            entries.append(
                EvalResult(
                    task_type=earlier.task_type,
                    dataset_type=dataset_type,
                    dataset_name=name,
                    dataset_config=config,
                    dataset_split=dataset.get("split"),
                    metric_type=metric_type,
                    metric_value=round(value, 4),
                    metric_name=f"{metric_name} ({config})" if earlier.groups else metric_name,
                )
            )
    return ([], entries) if partial else (entries, [])


def _finite_number(value) -> float | None:
    """`value` as a float when it is a finite JSON number (a boolean is none; an integer too large for a float
    neither), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _metric_kind(value) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else "an infinity"
    if isinstance(value, int) and not isinstance(value, bool):
        return "a number too large for a float"
    return f"{json_kind(value)} ({json.dumps(value)[:40]})"


def model_index_entries(results: dict) -> list[EvalResult]:
    """The `model-index` entries of one `results.json`: scores of whole benchmarks only (`evaluation_entries`)."""
    return evaluation_entries(results)[0]


def add_eval_results(
    model_dir: str | os.PathLike, results_files: list[str | os.PathLike], *, force: bool = False
) -> Path:
    """Write the `model-index` of `results_files` into `model_dir`'s README.md (made when missing); entries of
    the same task, dataset and metric are replaced, others kept. Results of another model are refused unless
    `force` (a folder that is no run knows no Hub id of its own: only another local folder is told apart)."""
    if holds_run_facts(model_dir):  # a training run: the whole card, evaluation table included
        return write_run_card(model_dir, results_files, force=force)
    path = Path(model_dir) / "README.md"
    indexed, unindexed = _results_entries(results_files, ModelOwner(Path(model_dir), None), force)
    for name in dict.fromkeys(e.dataset_name for e in unindexed):  # a folder that is no run has no table
        logger.warning("%s: %s measured in part, so not in the model-index", path, name)
    try:
        card = (
            ModelCard.load(path) if path.is_file() else ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n")
        )
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())[:200]
        raise SvitInputError(
            f"{path}: its metadata does not parse ({reason}); fix its YAML front matter or move it aside"
        ) from err
    card.data.eval_results = _merged(card.data.eval_results or [], indexed) or None
    card.data.model_name = card.data.model_name or Path(model_dir).resolve().name
    return _write_card(card, path)


__all__ = [
    "run_card",
    "add_eval_results",
    "card_context",
    "card_data",
    "evaluation_entries",
    "model_card",
    "model_index_entries",
    "write_model_card",
    "write_run_card",
]
