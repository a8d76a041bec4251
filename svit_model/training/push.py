"""`svit push RUN ORG/NAME` for a finished `svit train` run: the run folder as a Hub model repo, with its card.

During training `--push_to_hub` does this through the trainer; this is for a run pushed later (after `svit eval`
and `svit card model`, say). What goes up is what loads: the top-level files (weights, processor, chat templates,
remote code, `svit_run.json`, the loss curve), not the `checkpoint-*` folders kept for resuming.
"""

from __future__ import annotations

from pathlib import Path

from svit_dataset.errors import SvitInputError
from svit_dataset.hub_push import push_files


def run_files(run_dir: Path) -> list[str]:
    """The files of a run that make the model (names relative to the run folder), sorted."""
    return sorted(path.name for path in run_dir.iterdir() if path.is_file() and not path.name.startswith("."))


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
    if not (run_dir / "config.json").is_file():
        raise SvitInputError(
            f"{run_dir}: no config.json; pass a folder written by `svit train` (after it finished)"
        )
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


__all__ = ["push_training_run", "run_files"]
