"""`svit push FOLDER ORG/NAME`: a `svit build` folder as a Hub dataset repo, a finished `svit train` run as a Hub
model repo with its model card (hub_cards) naming the repo it goes to.

During training `--push_to_hub` pushes through the trainer; this is for a run pushed later (after `svit eval` and
`svit card model`, say). A run goes up as it loads: weights or adapter, processor, chat templates (the
`additional_chat_templates/` folder included), remote code, `svit_run.json`, the loss curve; not the
`checkpoint-*` folders kept for resuming, nor logs.
"""

from __future__ import annotations

from pathlib import Path

from hub_cards.model_card import run_card
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE, holds_run_facts
from svit_dataset.hub_build.push import push_hub_dataset
from svit_dataset.hub_build.report import REPORT_FILE
from svit_dataset.hub_push import hub_repo_id, push_files, require_hub_repo_id
from svit_dataset.jsonlist import json_kind, read_json_object

# Run contents that are not the model: resumable checkpoints, TensorBoard logs.
_NOT_PUSHED = ("checkpoint-", "runs")


def run_files(run_dir: Path) -> list[str]:
    """The files of a run that make the model, relative to the run folder (POSIX), sorted."""
    files = []
    for path in sorted(run_dir.rglob("*")):
        parts = path.relative_to(run_dir).parts
        if not path.is_file() or any(part.startswith(".") for part in parts):
            continue
        if len(parts) > 1 and parts[0].startswith(_NOT_PUSHED):
            continue
        files.append("/".join(parts))
    return files


def check_pushable_run(run_dir: Path) -> None:
    """A run loads from the Hub only when it holds a model (`config.json`) or an adapter whose base model is
    itself on the Hub (a local base path means nothing to anyone else)."""
    if (run_dir / "config.json").is_file():
        return
    adapter = run_dir / "adapter_config.json"
    if not adapter.is_file():
        raise SvitInputError(
            f"{run_dir}: holds neither config.json nor adapter_config.json; push a run after `svit train` finished"
        )
    base = read_json_object(adapter, "push a run written by `svit train`").get("base_model_name_or_path")
    if not isinstance(base, str):
        raise SvitInputError(
            f"{adapter}: `base_model_name_or_path` is {json_kind(base)}, not the base model's id; push a run "
            "written by `svit train`"
        )
    if hub_repo_id(base) is None:
        raise SvitInputError(
            f"{run_dir}: a LoRA run whose base model is the local path {base!r}, which nobody pulling the repo "
            f"has; merge it first (svit model merge --input {run_dir} --output MERGED) and push MERGED"
        )


def push_training_run(
    run_dir: str | Path,
    repo_id: str,
    *,
    readme: str,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload `run_dir` as the model repo `repo_id` in one commit, `readme` as its card; returns the commit URL."""
    run_dir = Path(run_dir)
    check_pushable_run(run_dir)
    return push_files(
        run_dir,
        run_files(run_dir),
        repo_id,
        "model",
        readme=readme,
        private=private,
        token=token,
        endpoint=endpoint,
        commit_message="Upload SVIT-LLaVA trained with svit",
    )


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """`svit push`: a training run (it holds `svit_run.json`) as a model repo whose card (hub_cards' run card)
    names `repo_id` in its usage code, a built dataset folder as a dataset repo; returns the commit URL."""
    folder = Path(folder)
    require_hub_repo_id(repo_id, "ORG/NAME")  # before the card names it in its usage code
    hub = {"private": private, "token": token, "endpoint": endpoint}
    if holds_run_facts(folder):
        check_pushable_run(folder)  # before the card is written: its errors name the fix
        readme = str(run_card(folder, model_id=repo_id))
        return push_training_run(folder, repo_id, readme=readme, **hub)
    if (folder / REPORT_FILE).is_file():
        return push_hub_dataset(folder, repo_id, **hub)
    raise SvitInputError(
        f"{folder}: neither a folder written by `svit build` (no {REPORT_FILE}) nor a finished `svit train` run "
        f"(no {RUN_FACTS_FILE}); pass one of those"
    )


__all__ = ["check_pushable_run", "push_folder", "push_training_run", "run_files"]
