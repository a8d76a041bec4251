"""The main job (`make demo`, `svit demo`): the whole chain on the bundled sample, into one output folder.

    OUT/svit/                  every config of the sample (Parquet + README.md dataset card), stats/, recipes/
    OUT/grounded_answer.png    a tiny SVIT-LLaVA taught one grounded answer, its boxes drawn
    OUT/train/tiny-svit-llava  the tiny model `svit train` starts from
    OUT/train/tiny-stage2-full a short `svit train` run: checkpoint, loss curve, README.md model card
    OUT/eval/mme, eval/grounding   `svit eval` results (official MME folder, results.json, chart)
    OUT/space/                 a ready Hub Space folder: the grounded chat on that checkpoint

Each part is a job of its own (main_job_data.py, grounded_answer.py, main_job_training.py, main_job_eval.py);
this one runs them in order, writes the model card once the evaluation is in (hub_cards), then the Space folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hub_cards.model_card import write_run_card
from svit_cli.jobs.grounded_answer import run_grounded_answer
from svit_cli.jobs.main_job_data import run_data_part
from svit_cli.jobs.main_job_eval import SAMPLE_MME, run_eval_part
from svit_cli.jobs.main_job_training import run_training_part
from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RESULTS_FILE
from svit_dataset.files import check_output_apart
from svit_dataset.hub_build.report import RECIPES_DIR, REPORT_FILE
from svit_model.space.folder import is_space_folder, write_space


@dataclasses.dataclass(frozen=True)
class MainJobLayout:
    """Where each part of the main job writes, under one root."""

    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / "svit"  # the tiny training recipes read `out/svit`

    @property
    def drawing(self) -> Path:
        return self.root / "grounded_answer.png"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def space(self) -> Path:
        return self.root / "space"

    def parts(self) -> tuple[Path, ...]:
        """Everything the main job writes directly under its root (each part replaces its own on a rerun)."""
        return (self.dataset, self.drawing, self.train, self.eval, self.space)


def check_main_job_output(output_dir: str | Path) -> None:
    """The main job replaces its own parts under `output_dir` (a rerun of `make demo` starts them afresh) and
    touches nothing else there: the tiny recipes' and the README's own outputs (`out/tiny-svit-llava`, ...) may
    sit beside them. A part's name taken by something the demo did not write (a user's own `svit` folder, say)
    is refused before any work, nothing in it touched."""
    root = Path(output_dir)
    if not root.exists():
        return
    if not root.is_dir():
        raise SvitInputError(f"--output {output_dir}: is a file; pass a folder for the demo's outputs")
    layout = MainJobLayout(root)
    own_kind = {  # what each part is when an earlier main job wrote it
        layout.dataset: lambda path: (path / REPORT_FILE).is_file(),
        layout.drawing: lambda path: path.is_file() and path.suffix == ".png",
        layout.train: Path.is_dir,  # its runs are replaced one by one, each only if it is a run
        layout.eval: Path.is_dir,  # likewise its results folders
        layout.space: is_space_folder,
    }
    for part, is_own in own_kind.items():
        empty_folder = part.is_dir() and not any(part.iterdir())
        if part.exists() and not empty_folder and not is_own(part):
            raise SvitInputError(
                f"--output {output_dir}: holds {part.name}, which `svit demo` did not write, where the demo "
                f"writes its own {part.name}: choose another --output"
            )


def artefact_listing(artefacts: dict[str, Path]) -> str:
    """The closing lines: what was made, where."""
    width = max(map(len, artefacts))
    return "\n".join(f"  {name:{width}s}  {path}" for name, path in artefacts.items())


def run_main_job(output_dir: str | Path, print_fn=print) -> dict[str, Path]:
    """Build → statistics and recipes → grounded answer → train → eval → cards → Space; returns the artefacts
    (name -> path), each of which exists when this returns."""
    # Each part checks its own output against its inputs; the root holds them all, so it is checked too.
    check_output_apart(
        output_dir, "--output", {"(the bundled sample)": bundled.SAMPLE_DIR, "(MME sample)": SAMPLE_MME}
    )
    check_main_job_output(output_dir)
    layout = MainJobLayout(Path(output_dir))
    data = run_data_part(layout.dataset, print_fn=print_fn)  # with its dataset card
    run_grounded_answer(
        print_fn=print_fn, drawing=layout.drawing, overwrite=True
    )  # the job's own folder, checked
    print_fn("")
    training = run_training_part(layout.dataset, layout.train, print_fn=print_fn)
    run = training["result"].output_dir
    print_fn("")
    evaluation = run_eval_part(run, layout.dataset, layout.eval, print_fn=print_fn)
    results = [layout.eval / benchmark / RESULTS_FILE for benchmark in evaluation]
    model_card = write_run_card(run, results)
    print_fn(f"Model card with the evaluation as model-index: {model_card}\n")
    space = write_space(run, layout.space, overwrite=True)
    print_fn(f"Grounded-chat Space folder: {space} (run it: svit app --model {run})\n")

    artefacts = {
        "dataset (load_dataset)": layout.dataset,
        "dataset card": data["dataset_card"],
        "build report": layout.dataset / REPORT_FILE,
        "statistics and figures": Path(data["stats"]["json"]).parent,
        "recipe reports and figures": layout.dataset / RECIPES_DIR,
        "grounded answer drawn": layout.drawing,
        "tiny model": layout.train / "tiny-svit-llava",
        "trained checkpoint": run,
        "loss curve": training["result"].loss_curve,
        "model card": model_card,
        **{f"{benchmark} results": path for benchmark, path in zip(evaluation, results, strict=True)},
        "Space folder": space,
    }
    print_fn("Artefacts:\n" + artefact_listing(artefacts))
    return artefacts


__all__ = ["MainJobLayout", "artefact_listing", "check_main_job_output", "run_main_job"]
