"""The model card (README.md of a Hub model repo) of an SVIT-LLaVA training run: huggingface_hub's `ModelCard`
from `templates/model_card.md.j2`, with `ModelCardData` metadata (base model, datasets, licence,
`pipeline_tag: image-text-to-text`, `library_name: transformers`, `model-index` as `EvalResult`s), then the stage,
hyper-parameters, loss curve, evaluation table, usage code and limitations. Imports no torch.

The facts come from `svit train` (`svit_model.training.train.run_facts`): passed to `write_model_card` while it
trains, and saved in the run folder as `svit_run.json`, from which `write_run_card` (`svit card model RUN`)
writes the card again later, with the `results.json` files of `svit eval` as its `model-index`
(`model_index_entries`; `add_eval_results` is `svit eval card`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE, SVIT_CITATION, SVIT_DATA_LICENSE, SVIT_PAPER_URL
from svit_dataset.files import write_text_atomic

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
LICENSE = SVIT_DATA_LICENSE  # SVIT's data licence; the base LLM's licence applies too (stated in the body)
STAGE_TEXT = {
    "pretrain": "stage 1 (pretraining: only the projector trains; LLaVA's plain template, image + caption)",
    "finetune": "stage 2 (visual instruction tuning; vicuna_v1 template, assistant tokens only)",
}


def _hub_id(value: str | None) -> str | None:
    """A Hub id (`org/name`) as card metadata wants it; local paths are not ids."""
    if (
        not value
        or os.path.isabs(value)
        or value.startswith(".")
        or value.count("/") != 1
        or os.path.exists(value)
    ):
        return None
    return value


def card_data(
    facts: dict, eval_results: list[EvalResult] | None = None, model_name: str | None = None
) -> ModelCardData:
    """The card's metadata; `eval_results` become its `model-index` under `model_name`."""
    datasets = [d for d in (_hub_id(name) for name in facts.get("datasets", [])) if d]
    return ModelCardData(
        base_model=_hub_id(facts.get("base_model")),
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
        }
        for e in results
    ]


def card_context(facts: dict, model_id: str, eval_results: list[EvalResult] = ()) -> dict:
    """The template's values: plain strings and lists, nothing computed in the template."""
    counts = facts.get("counts") or {}
    lora = facts.get("lora")
    hyper = {
        **(facts.get("hyperparameters") or {}),
        **({f"lora_{k}": v for k, v in lora.items()} if lora else {}),
    }
    final_loss = facts.get("final_loss")
    data = ", ".join(f"`{d}`" for d in facts.get("datasets", [])) or "-"
    if facts.get("dataset_config"):
        data += f" (config `{facts['dataset_config']}`)"
    return {
        "title": model_id.split("/")[-1],
        "model_id": model_id,
        "paper_url": SVIT_PAPER_URL,
        "stage_text": STAGE_TEXT.get(facts.get("stage"), facts.get("stage") or "unknown stage"),
        "method_text": "LoRA on the language model, projector in full"
        if facts.get("method") == "lora"
        else "full fine-tuning",
        "trains_text": _trains_text(facts),
        "template": facts.get("template") or "-",
        "lora": facts.get("method") == "lora",
        "base_model": facts.get("base_model"),
        "data_text": data,
        "steps": facts.get("global_step", 0),
        "tokens": f"{counts.get('tokens_trained', 0):,}",
        "final_loss": None if final_loss is None else f"{final_loss:.4f}",
        "summary": facts.get("summary"),
        "hyperparameters": [(k, v) for k, v in hyper.items() if v is not None],
        "loss_curve": facts.get("loss_curve"),
        "eval_rows": _eval_rows(list(eval_results)),
        "license_text": LICENSE.upper(),
        "citation": SVIT_CITATION,
    }


def model_card(facts: dict, model_id: str | None = None, eval_results: list[EvalResult] = ()) -> ModelCard:
    """The card of a run's facts; `model_id` is what the usage code loads (default: the run's Hub id)."""
    model_id = model_id or facts.get("hub_model_id") or "path/to/this/model"
    return ModelCard.from_template(
        card_data(facts, list(eval_results), model_name=model_id.split("/")[-1]),
        template_path=str(TEMPLATE),
        **card_context(facts, model_id, eval_results),
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


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise SvitInputError(f"{path}: not found; pass {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SvitInputError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); pass {what}") from err


def _results_entries(results_files: Iterable[str | os.PathLike]) -> list[EvalResult]:
    entries = []
    for path in results_files:
        results = _read_json(Path(path), "a results.json written by `svit eval`")
        try:
            entries += model_index_entries(results)
        except (KeyError, TypeError, ValueError) as err:
            raise SvitInputError(f"{path}: not a results.json of `svit eval` ({err})") from err
    return entries


def _merged(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    """`old` without the entries `new` measures again (same task, dataset, split and metric), then `new`."""
    key = lambda e: (e.task_type, e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type)  # noqa: E731
    fresh = {key(e) for e in new}
    return [e for e in old if key(e) not in fresh] + new


def _card_results(path: Path) -> list[EvalResult]:
    """The `model-index` entries a README already holds (none when there is no README)."""
    return (ModelCard.load(path).data.eval_results or []) if path.is_file() else []


def run_card(
    run_dir: str | os.PathLike,
    results_files: Iterable[str | os.PathLike] = (),
    *,
    model_id: str | None = None,
) -> ModelCard:
    """A training run's card from its `svit_run.json`, with the `results.json` files of `svit eval` as
    `model-index` and evaluation table (joining the entries the run's README.md already has). The usage code
    loads `model_id`, else the run's Hub id, else the folder by its name (from the folder's parent)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SvitInputError(f"{run_dir}: no such folder; pass a folder written by `svit train`")
    facts = _read_json(
        run_dir / RUN_FACTS_FILE, "a folder written by `svit train` (it saves its facts there)"
    )
    results = _merged(_card_results(run_dir / "README.md"), _results_entries(results_files))
    return model_card(facts, model_id or facts.get("hub_model_id") or run_dir.name, results)


def write_run_card(
    run_dir: str | os.PathLike,
    results_files: Iterable[str | os.PathLike] = (),
    *,
    model_id: str | None = None,
) -> Path:
    """(Re)write a training run's README.md: `run_card` (`svit card model RUN --results ...`)."""
    return _write_card(run_card(run_dir, results_files, model_id=model_id), Path(run_dir) / "README.md")


# --- model-index from `svit eval` results ---------------------------------------------------------------

# benchmark -> (task type, [(metric key in results.json "metrics", model-index metric type, display name)])
_INDEXED = {
    "mme": (
        "visual-question-answering",
        [("perception", "mme_perception", "MME perception"), ("cognition", "mme_cognition", "MME cognition")],
    ),
    "pope": (
        "visual-question-answering",
        [
            ("accuracy", "accuracy", "POPE accuracy"),
            ("f1", "f1", "POPE F1"),
            ("yes_ratio", "yes_ratio", "POPE yes-ratio"),
        ],
    ),
    "grounding": (
        "image-text-to-text",
        [
            ("acc@0.5", "acc@0.5", "ACC@0.5 (IoU >= 0.5)"),
            ("mean_iou", "mean_iou", "mean IoU"),
            ("phrase_recall", "phrase_recall", "phrase recall"),
            ("mean_entity_iou", "mean_entity_iou", "mean entity IoU"),
            ("entity_acc@0.5", "entity_acc@0.5", "entity ACC@0.5"),
        ],
    ),
}


def model_index_entries(results: dict) -> list[EvalResult]:
    """The `model-index` entries of one `results.json` (POPE: one group per category)."""
    benchmark = results["benchmark"]
    if benchmark not in _INDEXED:
        raise ValueError(f"results.json of benchmark {benchmark!r}: svit cards index {', '.join(_INDEXED)}")
    task_type, wanted = _INDEXED[benchmark]
    dataset = results.get("dataset") or {}
    metrics = results["metrics"]
    groups = metrics["categories"].items() if benchmark == "pope" else [(dataset.get("config"), metrics)]
    entries = []
    for config, values in groups:
        for key, metric_type, name in wanted:
            if isinstance(values.get(key), int | float):
                entries.append(
                    EvalResult(
                        task_type=task_type,
                        dataset_type=str(dataset.get("type") or benchmark),
                        dataset_name=str(dataset.get("name") or benchmark),
                        dataset_config=config,
                        dataset_split=dataset.get("split"),
                        metric_type=metric_type,
                        metric_value=round(float(values[key]), 4),
                        metric_name=f"{name} ({config})" if benchmark == "pope" else name,
                    )
                )
    return entries


def add_eval_results(model_dir: str | os.PathLike, results_files: list[str | os.PathLike]) -> Path:
    """Write the `model-index` of `results_files` into `model_dir`'s README.md (made when missing); entries of
    the same task, dataset and metric are replaced, others kept."""
    if (
        Path(model_dir) / RUN_FACTS_FILE
    ).is_file():  # a training run: the whole card, evaluation table included
        return write_run_card(model_dir, results_files)
    path = Path(model_dir) / "README.md"
    card = ModelCard.load(path) if path.is_file() else ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n")
    card.data.eval_results = _merged(card.data.eval_results or [], _results_entries(results_files))
    card.data.model_name = card.data.model_name or Path(model_dir).resolve().name
    return _write_card(card, path)


__all__ = [
    "run_card",
    "add_eval_results",
    "card_context",
    "card_data",
    "model_card",
    "model_index_entries",
    "write_model_card",
    "write_run_card",
]
