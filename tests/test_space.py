"""The grounded-chat Space without a browser: the answer -> highlighted spans + drawn image functions, the folder
`svit space` writes (its app imports and builds its Blocks, without svit too; without gradio installed; naming a
Hub model instead of copying weights), and one-line errors (a LoRA run's base model included)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svit_cli.main import main
from svit_model.draw import PALETTE, draw_entities
from svit_model.space import write_space
from svit_model.space.app import (
    CHAT,
    REFERRING,
    AppSettings,
    display_image,
    entity_colours,
    entity_labels,
    highlighted_spans,
    model_source,
    question_prompt,
    referring_prompt,
    render_answer,
)
from svit_model.space.folder import (
    GRADIO_FALLBACK_VERSION,
    REFERRING_TEMPLATE,
    SPACE_SOURCES,
    vendored_modules,
)


@pytest.fixture(scope="module", autouse=True)
def gradio_temp_dir(tmp_path_factory) -> Path:
    """Gradio copies example and output files into GRADIO_TEMP_DIR (else /tmp/gradio, left behind): here, a
    folder pytest cleans up. Read when a component is made, so set before any test builds Blocks."""
    folder = tmp_path_factory.mktemp("gradio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(folder))
        yield folder


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _pixels_of(image: Image.Image, colour: str) -> int:
    return int((np.asarray(image.convert("RGB")) == _rgb(colour)).all(axis=-1).sum())


# --- Pure functions -----------------------------------------------------------------------------------------


def test_referring_prompt_wraps_the_phrase_in_svits_instruction():
    assert referring_prompt("  the red car? ", REFERRING_TEMPLATE) == (
        "Where is the red car? Provide the bounding boxes of the mentioned objects."
    )
    assert referring_prompt("a dog", AppSettings.referring_template) == "Where is a dog?"


def test_the_mode_decides_the_prompt():
    settings = AppSettings(referring_template=REFERRING_TEMPLATE)
    assert question_prompt(CHAT, " What is here? ", settings, "<image>") == "What is here?"
    assert question_prompt(REFERRING, "the kite", settings, "<image>") == REFERRING_TEMPLATE.format(
        phrase="the kite"
    )
    with pytest.raises(ValueError, match="Type a question"):
        question_prompt(CHAT, "  ", settings, "<image>")


def test_a_question_holding_the_processors_image_token_is_refused(tiny_processor):
    """The image is attached by the app: a visitor's image token would be a second image without pixels."""
    settings = AppSettings()
    question = f"What is {tiny_processor.image_token} here?"
    with pytest.raises(ValueError, match=r"may not contain <image>: the image is attached for you"):
        question_prompt(CHAT, question, settings, tiny_processor.image_token)
    with pytest.raises(ValueError, match="may not contain"):
        question_prompt(REFERRING, question, settings, tiny_processor.image_token)


def test_labels_are_phrases_numbered_when_they_repeat_and_coloured_in_drawing_order():
    entities = [("cup", (0, 3), []), ("dog", (8, 11), []), ("cup", (16, 19), []), ("", (20, 20), [])]
    assert entity_labels(entities) == ["cup", "dog", "cup #2", "(no phrase)"]
    assert entity_colours(entities) == {
        "cup": PALETTE[0],
        "dog": PALETTE[1],
        "cup #2": PALETTE[2],
        "(no phrase)": PALETTE[3],
    }


def test_highlighted_spans_cover_the_clean_text_once():
    text = "A cup and a dog."
    entities = [("a dog", (10, 15), []), ("A cup", (0, 5), []), ("cup and", (2, 9), [])]  # the last overlaps
    spans = highlighted_spans(text, entities)
    assert spans == [("A cup", "A cup"), (" and ", None), ("a dog", "a dog"), (".", None)]
    assert "".join(piece for piece, _ in spans) == text
    assert highlighted_spans("no boxes here", []) == [("no boxes here", None)]


def test_display_image_enlarges_small_images_only():
    assert display_image(Image.new("RGB", (160, 96))).size == (512, 307)
    big = Image.new("RGB", (800, 600))
    assert display_image(big) is big


def test_render_answer_highlights_and_draws_each_entity_in_one_colour(tiny_processor):
    image = Image.new("RGB", (200, 100), "white")
    # The processor pads to a square: [0.25, 0.5, 0.75, 0.75] of the square is x 50-150, y 0-50 of the image.
    raw = " <st>a cat<ed> [0.25, 0.5, 0.75, 0.75] sits by <st>a dog<ed> [0.0, 0.25, 0.5, 0.5]. "
    answer = render_answer(raw, image, tiny_processor)
    assert answer.raw == raw.strip()
    assert answer.spans == [("a cat", "a cat"), (" sits by ", None), ("a dog", "a dog"), (".", None)]
    assert answer.colours == {"a cat": PALETTE[0], "a dog": PALETTE[1]}
    _, entities = tiny_processor.post_process_generation(raw.strip(), image_size=image.size, normalized=True)
    expected = draw_entities(display_image(image), entities, normalized=True)
    assert answer.drawn.size == (512, 256)
    assert np.array_equal(np.asarray(answer.drawn), np.asarray(expected))
    assert _pixels_of(answer.drawn, PALETTE[0]) > 500 and _pixels_of(answer.drawn, PALETTE[1]) > 500


def test_render_answer_without_grounding_is_plain_text(tiny_processor):
    image = Image.new("RGB", (64, 64), "white")
    answer = render_answer("Just words.", image, tiny_processor)
    assert answer.spans == [("Just words.", None)] and answer.colours == {}
    assert np.array_equal(np.asarray(answer.drawn), np.asarray(display_image(image)))


def test_settings_round_trip_through_space_json(tmp_path):
    settings = AppSettings(
        model="m", referring_template="Find {phrase}.", max_new_tokens=7, examples=("a.jpg",)
    )
    (tmp_path / "space.json").write_text(settings.to_json(), encoding="utf-8")
    assert AppSettings.read(tmp_path) == settings


def test_vendored_drawing_module_needs_no_svit():
    modules = vendored_modules()
    assert set(modules) == {"svit_draw.py", "svit_boxes.py"}
    for source in modules.values():
        assert "from svit_dataset" not in source and "from svit_model" not in source
    assert "from svit_boxes import to_pixels" in modules["svit_draw.py"]


# --- The folder `svit space` writes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def space(tiny_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "space"
    argv = [
        "space",
        str(tiny_checkpoint),
        str(out),
        "--max-new-tokens",
        "16",
        "--title",
        "Tiny grounded chat",
    ]
    assert main(argv) == 0
    return out


def test_svit_space_writes_a_ready_space_folder(space):
    import gradio
    from huggingface_hub import SpaceCard

    names = {path.name for path in space.iterdir()}
    assert names == {
        "README.md",
        "app.py",
        "requirements.txt",
        "space.json",
        "svit_draw.py",
        "svit_boxes.py",
        "examples",
        "model",
    }
    for name in ("app.py", "requirements.txt"):  # the package's files as they are: one copy in the repo
        assert (space / name).read_bytes() == (SPACE_SOURCES / name).read_bytes()
    card = SpaceCard.load(space / "README.md")
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py" and card.data.title == "Tiny grounded chat"
    assert card.data.license == "other"
    assert "python app.py" in card.text
    settings = AppSettings.read(space)
    assert settings.model == "model" and settings.max_new_tokens == 16
    assert model_source(settings, space) == str(space / "model")  # what the app loads: the copy
    assert settings.referring_template == REFERRING_TEMPLATE
    assert settings.examples and all((space / path).is_file() for path in settings.examples)
    model_files = {path.name for path in (space / "model").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "processing_svit_llava.py",
        "modeling_svit_llava.py",
    } <= model_files
    assert json.loads((space / "model" / "config.json").read_text())["auto_map"]
    requirements = (space / "requirements.txt").read_text()
    assert "gradio" in requirements and "transformers" in requirements and "svit" not in requirements


def _load_app(space: Path, monkeypatch):
    """The folder's app.py as a module of its own (dataclasses look their module up in sys.modules)."""
    spec = importlib.util.spec_from_file_location("space_app_under_test", space / "app.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_written_app_builds_its_blocks(space, monkeypatch):
    import gradio as gr

    app = _load_app(space, monkeypatch)
    settings = app.AppSettings.read(space)
    model, processor = app.load_model(space / settings.model)
    demo = app.build_demo(model, processor, settings, space)
    assert isinstance(demo, gr.Blocks)
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {
        "svit-image",
        "svit-mode",
        "svit-question",
        "svit-ask",
        "svit-answer",
        "svit-boxes",
        "svit-raw",
    } <= ids
    # The model answers (random weights: any text) and the answer renders.
    image = Image.open(space / settings.examples[0]).convert("RGB")
    raw = app.ask_model(model, processor, image, "Where is the kite?", settings.max_new_tokens)
    answer = app.render_answer(raw, image, processor)
    assert (
        "".join(piece for piece, _ in answer.spans)
        == processor.post_process_generation(raw.strip(), image_size=image.size)[0]
    )


def test_the_written_app_imports_without_svit(space):
    """`python -S`: svit's editable-install hook never runs, so only the folder's own modules are there."""
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    script = (
        "import app, svit_draw\n"
        "try:\n    import svit_model\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('svit is importable: the test would prove nothing')\n"
        "assert app.draw_entities is svit_draw.draw_entities\n"
        "print(app.AppSettings.read('.').model)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=space,
        env={**os.environ, "PYTHONPATH": f"{space}{os.pathsep}{site_packages}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "model"


def test_gradio_files_go_to_the_tests_temp_folder(space, gradio_temp_dir, monkeypatch):
    """The Blocks copy their example images into GRADIO_TEMP_DIR: the fixture's folder, not /tmp/gradio."""
    app = _load_app(space, monkeypatch)
    settings = app.AppSettings.read(space)
    demo = app.build_demo(None, None, settings, space)  # the model is used only when a question comes
    caches = {Path(block.GRADIO_CACHE) for block in demo.blocks.values() if hasattr(block, "GRADIO_CACHE")}
    assert caches and all(cache.is_relative_to(gradio_temp_dir) for cache in caches), caches
    assert any(path.is_file() for path in gradio_temp_dir.rglob("*.jpg"))


def test_writing_a_space_needs_no_gradio(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """`pip install svit` without the app extra: the folder is written (gradio never imported), its sdk_version
    the pinned fallback; serving says which extra to install."""
    from importlib import metadata

    from huggingface_hub import SpaceCard

    installed = metadata.version

    def version(name: str) -> str:
        if name.lower() == "gradio":
            raise metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    out = tmp_path / "space"
    assert main(["space", str(tiny_checkpoint), str(out)]) == 0
    assert SpaceCard.load(out / "README.md").data.sdk_version == GRADIO_FALLBACK_VERSION
    assert (out / "model" / "model.safetensors").is_file()
    capsys.readouterr()  # the loading progress bars
    err = _error_line(capsys, ["app", "--model", str(tiny_checkpoint)])
    assert err.startswith("svit app: error: gradio is not installed") and "svit[app]" in err


def test_a_space_naming_a_hub_model_copies_no_weights(tmp_path):
    """`--model-id`: space.json and the card name the Hub model, the app loads it from there, no `model/`; the
    run is not loaded (here it is no checkpoint at all). Nothing is fetched."""
    from huggingface_hub import SpaceCard

    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("no weights here: never loaded")
    out = tmp_path / "space"
    model_id = "svit-org/svit-llava-13b-grounded"
    assert main(["space", str(run), str(out), "--model-id", model_id]) == 0
    assert not (out / "model").exists()
    assert {path.name for path in out.iterdir()} >= {"app.py", "space.json", "README.md", "examples"}
    settings = AppSettings.read(out)
    assert settings.model == model_id and model_source(settings, out) == model_id
    card = SpaceCard.load(out / "README.md")
    assert card.data.models == [model_id] and f"https://huggingface.co/{model_id}" in card.text


def test_model_id_and_base_model_mistakes_are_one_line(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "local").mkdir(parents=True)
    out = str(tmp_path / "out")
    err = _error_line(capsys, ["space", str(tiny_checkpoint), out, "--model-id", "./ckpt"])
    assert err.startswith("svit space: error: --model-id './ckpt': not a Hub repo id; pass ORG/NAME")
    err = _error_line(capsys, ["space", str(tiny_checkpoint), out, "--model-id", "org/local"])
    assert err.startswith("svit space: error: --model-id 'org/local': a local path, not a Hub repo id")
    err = _error_line(capsys, ["space", str(tiny_checkpoint), out, "--base-model", "org/base"])
    assert err == (
        f"svit space: error: --base-model org/base: nothing is merged (RUN {tiny_checkpoint} is not a LoRA run); "
        "leave --base-model out"
    )
    assert not (tmp_path / "out").exists()


def test_svit_app_builds_the_same_app_with_bundled_examples(tiny_checkpoint):
    from svit_model.space import local_demo

    demo = local_demo(tiny_checkpoint, max_new_tokens=8, title="Local")
    assert demo.title == "Local"
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {"svit-image", "svit-answer", "svit-boxes", "svit-raw"} <= ids


# --- Errors: one line ----------------------------------------------------------------------------------------


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_missing_run_is_one_line(tmp_path, capsys):
    err = _error_line(capsys, ["space", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert err.startswith("svit space: error: RUN ") and "nope" in err and "checkpoint" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    run = tmp_path / "not_a_model"
    run.mkdir()
    (run / "notes.txt").write_text("hello")
    err = _error_line(capsys, ["space", str(run), str(tmp_path / "out")])
    assert err.startswith(f"svit space: error: RUN {run}: cannot be loaded")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_an_existing_out_or_one_inside_the_run_is_refused(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert "pass --overwrite" in _error_line(capsys, ["space", str(tiny_checkpoint), str(out)])
    assert "inputs are never written" in _error_line(
        capsys, ["space", str(tiny_checkpoint), str(tiny_checkpoint / "space")]
    )


def test_svit_app_with_a_missing_model_is_one_line(tmp_path, capsys):
    err = _error_line(capsys, ["app", "--model", str(tmp_path / "nope")])
    assert err.startswith(f"svit app: error: --model {tmp_path / 'nope'}: not found")


@pytest.fixture(scope="module")
def lora_run(tiny_grounded_checkpoint, grounded_dataset, tmp_path_factory) -> dict:
    """A one-step `svit train` LoRA run on the tiny model, and its base model folder."""
    from svit_cli.jobs.train import parse_train_arguments
    from svit_model.training.train import train
    from tests.train_fixtures import train_args

    root, tiny, data = tmp_path_factory.mktemp("lora"), tiny_grounded_checkpoint, grounded_dataset
    argv = train_args(tiny, data, root / "lora", recipe="tiny-stage2-lora", max_steps=1, save_steps=1)
    run = train(*parse_train_arguments(argv)).output_dir
    assert (run / "adapter_config.json").is_file()
    return {"run": run, "base": tiny}


def test_a_lora_run_ships_merged(lora_run, tmp_path):
    """A LoRA run's Space holds a full checkpoint: no adapter, no base model needed."""
    space = write_space(lora_run["run"], tmp_path / "space")
    model_files = {path.name for path in (space / "model").iterdir()}
    assert "model.safetensors" in model_files and "adapter_config.json" not in model_files


def _with_base(run: Path, copy: Path, base: str) -> Path:
    """A copy of the LoRA run `run` whose adapter config names `base` (as if its base model had moved)."""
    shutil.copytree(run, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    return copy


def test_a_lora_run_whose_base_moved_names_svit_spaces_flags(lora_run, tmp_path, monkeypatch, capsys):
    """The advice names flags `svit space` has (RUN, --base-model), and the relative base path as the loader
    tried it (from the current directory); --base-model then merges onto the named base."""
    monkeypatch.chdir(tmp_path)
    # a relative base, as `svit train --model_name_or_path runs/...` writes it; the folder has moved since
    run = _with_base(lora_run["run"], tmp_path / "lora-run", "runs/moved/tiny")
    out = tmp_path / "out"
    err = _error_line(capsys, ["space", str(run), str(out)])
    tried = tmp_path / "runs" / "moved" / "tiny"
    assert err == (
        f"svit space: error: RUN {run}: its base model runs/moved/tiny (tried {tried}: relative to the current "
        "directory) does not load (not found); pass --base-model"
    )
    assert not out.exists()
    assert main(["space", str(run), str(out), "--base-model", str(lora_run["base"])]) == 0
    model_files = {path.name for path in (out / "model").iterdir()}
    assert "model.safetensors" in model_files and "adapter_config.json" not in model_files


def test_svit_model_merge_keeps_its_own_flags_in_the_advice(lora_run, tmp_path, capsys):
    run = _with_base(lora_run["run"], tmp_path / "lora-run", str(tmp_path / "gone"))
    err = _error_line(capsys, ["model", "merge", "--input", str(run), "--output", str(tmp_path / "m")])
    assert f"--input {run}: its base model {tmp_path / 'gone'} does not load (" in err, err
    assert err.endswith("; pass --base-model") and "RUN" not in err, err
