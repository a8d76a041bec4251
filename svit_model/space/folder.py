"""The grounded-chat app around a checkpoint: a ready Hub Space folder (`svit space`) or a local server (`svit app`).

A Space folder runs as written (`pip install -r requirements.txt && python app.py`, or pushed to a Gradio
Space) without svit:

    OUT/
      README.md          Space front matter (title, sdk: gradio, sdk_version, app_file, license) and a short card
      app.py             svit_model/space/app.py, as it is
      requirements.txt   svit_model/space/requirements.txt, as it is
      space.json         the app's settings (AppSettings): model folder or Hub id, referring question,
                         max_new_tokens, examples
      svit_draw.py       svit_model/draw.py, importing its box helper from the copy beside it
      svit_boxes.py      svit_dataset/boxes.py
      examples/          a few bundled images
      model/             the checkpoint (a LoRA run merged), with the processor's remote code; not written
                         when a Hub model id is given (`--model-id`): the Space then loads that model

Only a copy of the weights is heavy (a 13B run is 26 GB, loaded and saved on the CPU), so a run already on the
Hub is better named by its id. The default is explicit: the weights are copied unless a model id is given (a
run's `svit_run.json` records a `hub_model_id` even when nothing was pushed, so it is never assumed).

Writing the folder never imports gradio (`pip install svit` without the `app` extra writes it too).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.export_llava import REFERRING_SUFFIXES
from svit_dataset.facts import recorded_run_facts
from svit_dataset.files import atomic_folder, check_output_apart, check_replaceable, write_text_atomic
from svit_dataset.hub_push import require_hub_repo_id
from svit_model.space.app import SETTINGS_FILE, AppSettings, max_new_tokens_problem
from svit_model.vendoring import SPACE_MODULES, vendored_sources

logger = logging.getLogger(__name__)

SPACE_SOURCES = Path(__file__).parent
APP_FILE, REQUIREMENTS_FILE, README_FILE = "app.py", "requirements.txt", "README.md"
MODEL_DIR, EXAMPLES_DIR = "model", "examples"
EXPECTED_CHECKPOINT = "a `svit train` run or SVIT-LLaVA checkpoint folder (a LoRA run is merged)"
# The Space's `sdk_version` when gradio is not installed here: the gradio release the app and its browser test
# were last run with (gradio 6.31.0, as `make setup` installed it). An installed gradio's own version wins.
GRADIO_FALLBACK_VERSION = "6.31.0"
APP_EXTRA_HINT = "install the app extra (pip install 'svit[app]')"

# SVIT's referring questions carry one of its grounding instructions (as in the LLaVA-1.5 training export), so
# a model trained on that data answers the referring mode with boxes.
REFERRING_TEMPLATE = "Where is {phrase}? " + REFERRING_SUFFIXES[0]
DEFAULT_DESCRIPTION = (
    "Upload an image or pick an example, then ask. Each grounded phrase of the answer is highlighted in the "
    "colour of its boxes on the image. The referring mode asks where something is."
)


def example_images(limit: int = 4) -> list[Path]:
    """Bundled images to offer as examples: the one `svit model demo` teaches the tiny model about first."""
    from svit_model.teaching import bundled_referring_rows, pick_grounded_turn

    row, _ = pick_grounded_turn(bundled_referring_rows())
    first = bundled.IMAGES_DIR / row["image_path"]
    others = [path for path in sorted(bundled.IMAGES_DIR.rglob("*.jpg")) if path != first]
    return [first, *others][:limit]


def app_settings(
    model: str = MODEL_DIR,
    examples: tuple[str, ...] = (),
    title: str | None = None,
    max_new_tokens: int = AppSettings.max_new_tokens,
) -> AppSettings:
    """The app's settings with SVIT's referring question."""
    return AppSettings(
        model=model,
        title=title or AppSettings.title,
        referring_template=REFERRING_TEMPLATE,
        max_new_tokens=max_new_tokens,
        examples=tuple(examples),
        description=DEFAULT_DESCRIPTION,
    )


def vendored_modules() -> dict[str, str]:
    """file name -> source of the svit modules `app.py` imports in a Space (svit_model.vendoring.SPACE_MODULES:
    the drawing module and its box helper), each importing the other's copy beside it."""
    return vendored_sources(SPACE_MODULES, relative=False)


def gradio_version() -> str:
    """The Space's `sdk_version`: the installed gradio's version (read from its metadata, gradio is not
    imported), else `GRADIO_FALLBACK_VERSION`."""
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        logger.info("gradio is not installed: the Space's sdk_version is %s", GRADIO_FALLBACK_VERSION)
        return GRADIO_FALLBACK_VERSION


def require_gradio() -> None:
    """Serving the app needs gradio: one line saying how to get it when it is missing."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SvitInputError(f"gradio is not installed; {APP_EXTRA_HINT} to serve the app") from None


def check_model_id(model_id: str) -> str:
    """`model_id` if it reads as a Hub model id (ORG/NAME; the one check of every Hub id, a local path refused:
    the Space would look for it in its own folder): its format only, nothing is fetched."""
    return require_hub_repo_id(model_id, "--model-id")


def check_max_new_tokens(value: int) -> int:
    """`--max-new-tokens` within the app's stated limit (app.MAX_NEW_TOKENS_LIMIT), before any work."""
    if problem := max_new_tokens_problem(value):
        raise SvitInputError(f"--max-new-tokens {problem}")
    return value


def check_port(port: int) -> int:
    """A TCP port to listen on: 1 to 65535 (0 would let the system pick one the user is never told)."""
    from svit_dataset.settings import Range, check_value

    check_value("--port", port, Range(low=1, high=65535, integer=True))
    return port


def is_space_folder(folder: Path) -> bool:
    """A folder `svit space` wrote: its settings, its app and a README whose front matter is a Space's. What
    `--overwrite` may replace (see svit_dataset.files.check_replaceable)."""
    readme = folder / README_FILE
    if not ((folder / SETTINGS_FILE).is_file() and (folder / APP_FILE).is_file() and readme.is_file()):
        return False
    try:
        head = readme.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return head.startswith("---") and "sdk: gradio" in head


def recorded_hub_model_id(run_dir: str | os.PathLike) -> str | None:
    """The `hub_model_id` a `svit train` run's facts record, if any (for a hint: nothing says it was pushed)."""
    recorded = recorded_run_facts(run_dir).get("hub_model_id")
    return recorded if isinstance(recorded, str) and recorded else None


def space_readme(
    settings: AppSettings, sdk_version: str, license: str, source: str, model_id: str | None = None
) -> str:
    """README.md of the Space: the Hub's front matter and a short card. `source` names the checkpoint;
    `model_id`, when the Space loads a Hub model rather than its `model/` folder, is listed in `models`."""
    from huggingface_hub import SpaceCardData

    where = (
        f"the Hub model [`{model_id}`](https://huggingface.co/{model_id})"
        if model_id
        else f"`{settings.model}/`"
    )
    data = SpaceCardData(
        models=[model_id] if model_id else None,
        title=settings.title,
        sdk="gradio",
        sdk_version=sdk_version,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file=APP_FILE,
        license=license,
        tags=["svit", "llava", "grounding", "visual-question-answering"],
        emoji="🔎",
        colorFrom="blue",
        colorTo="green",
        pinned=False,
        short_description="Grounded chat with SVIT-LLaVA: phrases and their boxes",
    )
    return (
        f"---\n{data.to_yaml()}\n---\n\n# {settings.title}\n\n{settings.description}\n\n"
        f"Model: `{source}` ({where}), greedy decoding, at most {settings.max_new_tokens} new "
        f'tokens. Referring mode asks: "{settings.referring_template.format(phrase="...")}"\n\n'
        "Run it locally:\n\n```bash\npip install -r requirements.txt\npython app.py\n```\n\n"
        "Written by `svit space`; the app needs no svit: the checkpoint loads with `trust_remote_code=True`.\n"
    )


def card_license(run_dir: str | os.PathLike) -> str | None:
    """The licence a run's model card states, if it has one."""
    readme = Path(run_dir) / README_FILE
    if not readme.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(readme).data.license
    except Exception:  # a card without valid front matter states no licence
        return None


def load_checkpoint(path: str | os.PathLike, flag: str = "--model"):
    """(model, processor with `post_process_generation`) of a checkpoint or `svit train` run (a LoRA run
    unmerged, through transformers' peft integration), on the CPU; loading errors become one line naming `flag`
    (`svit space` names its RUN, which `evaluation.harness.load_for_eval` cannot)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from svit_model.evaluation.grounded_answers import grounding_processor
    from svit_model.loading import loading

    with loading(flag, path, EXPECTED_CHECKPOINT):
        model = AutoModelForImageTextToText.from_pretrained(str(path))
        processor = AutoProcessor.from_pretrained(str(path))
    return model.eval(), grounding_processor(processor)


def is_lora_run(run_dir: str | os.PathLike) -> bool:
    from svit_model.training.checkpoint import ADAPTER_CONFIG

    return (Path(run_dir) / ADAPTER_CONFIG).is_file()


def save_space_model(run_dir: str | os.PathLike, output_dir: Path, base_model: str | None = None) -> None:
    """The run as a full checkpoint in `output_dir`: a LoRA run merged (onto `base_model` if given, else the
    base its adapter config names), any other loaded and saved again (so the folder holds exactly the model,
    processor and remote code, not the run's training files)."""
    from svit_model.building import save_checkpoint
    from svit_model.training.checkpoint import merge_lora_run

    if is_lora_run(run_dir):
        merge_lora_run(run_dir, output_dir, base_model=base_model, run_flag="RUN", base_flag="--base-model")
        return
    model, processor = load_checkpoint(run_dir, flag="RUN")
    save_checkpoint(model, processor, output_dir)


def write_space(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    title: str | None = None,
    max_new_tokens: int = AppSettings.max_new_tokens,
    license: str | None = None,
    num_examples: int = 4,
    base_model: str | None = None,
    model_id: str | None = None,
) -> Path:
    """Write a ready Hub Space folder for the checkpoint or `svit train` run `run_dir` into `out_dir` (see the
    module docstring); returns `out_dir`. The folder is written aside and renamed into place whole.

    `model_id` (ORG/NAME): the Space loads that Hub model, named in `space.json`; no weights are copied and
    `run_dir` is only read for its card. It must be a full checkpoint with its remote code (a LoRA run: push
    its `svit model merge` output). Without it the run's weights are copied into `model/`.
    `base_model`: the base a LoRA run is merged onto (default: the one its adapter config names).
    `license` defaults to the run's model card's, else "other".
    """
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    check_output_apart(out_dir, "OUT", {"RUN": run_dir, "--base-model": base_model})
    check_replaceable(out_dir, "OUT", overwrite, "a Space folder written by `svit space`", is_space_folder)
    check_max_new_tokens(max_new_tokens)
    if not run_dir.is_dir():
        raise SvitInputError(f"RUN {run_dir}: not a folder; pass {EXPECTED_CHECKPOINT}")
    if model_id is not None:
        check_model_id(model_id)
    if base_model is not None and (model_id is not None or not is_lora_run(run_dir)):
        why = "--model-id names the Space's model" if model_id else f"RUN {run_dir} is not a LoRA run"
        raise SvitInputError(f"--base-model {base_model}: nothing is merged ({why}); leave --base-model out")
    sdk_version = gradio_version()
    with atomic_folder(out_dir) as staging:
        if model_id is None:
            save_space_model(run_dir, staging / MODEL_DIR, base_model=base_model)
            if recorded := recorded_hub_model_id(run_dir):
                logger.info(
                    "weights copied into %s/; if %s is on the Hub, --model-id %s ships none",
                    MODEL_DIR,
                    recorded,
                    recorded,
                )
        for name in (APP_FILE, REQUIREMENTS_FILE):
            shutil.copyfile(SPACE_SOURCES / name, staging / name)
        for name, source in vendored_modules().items():
            (staging / name).write_text(source, encoding="utf-8")
        (staging / EXAMPLES_DIR).mkdir()
        shipped = []
        for image in example_images(num_examples):
            relative = Path(EXAMPLES_DIR, "_".join(image.relative_to(bundled.IMAGES_DIR).parts))
            shutil.copyfile(image, staging / relative)
            shipped.append(relative.as_posix())
        settings = app_settings(
            model_id or MODEL_DIR, tuple(shipped), title=title, max_new_tokens=max_new_tokens
        )
        write_text_atomic(staging / SETTINGS_FILE, settings.to_json())
        readme = space_readme(
            settings, sdk_version, license or card_license(run_dir) or "other", run_dir.name, model_id
        )
        write_text_atomic(staging / README_FILE, readme)
    logger.info("Space folder written to %s", out_dir)
    return out_dir


def local_demo(
    model: str | os.PathLike, max_new_tokens: int = AppSettings.max_new_tokens, title: str | None = None
):
    """The app's Blocks for a checkpoint, run from the svit package: bundled images as examples."""
    require_gradio()
    from svit_model.space.app import best_device, build_demo

    loaded, processor = load_checkpoint(model)
    settings = app_settings(str(model), tuple(str(p) for p in example_images()), title, max_new_tokens)
    return build_demo(loaded.to(best_device()), processor, settings)


def serve(
    model: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_new_tokens: int = AppSettings.max_new_tokens,
    title: str | None = None,
) -> None:
    """`svit app`: serve the app for `model` on `host:port` until interrupted (no share link)."""
    check_port(port)
    check_max_new_tokens(max_new_tokens)
    demo = local_demo(model, max_new_tokens=max_new_tokens, title=title)
    demo.launch(server_name=host, server_port=port, share=False, allowed_paths=[str(bundled.IMAGES_DIR)])


__all__ = ["app_settings", "local_demo", "serve", "space_readme", "vendored_modules", "write_space"]
