"""Fixtures shared by several test modules, each made once per session:

- the tiny tokenizer and processors, through the same functions a real checkpoint goes through (svit_model.tiny);
- `built_sample`: the bundled sample built by `svit build` into a Hub dataset folder;
- `tiny_checkpoint`: a tiny SVIT-LLaVA checkpoint folder, as `svit model tiny` writes it.

The folders are shared, so they are read-only: a test that changes one works on a copy (`shutil.copytree`).
The session fails at its end, naming the files, if any test changed them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# As `make test` runs the suite, whatever the shell running pytest holds: set before huggingface_hub and
# datasets are imported (they read these once, at import).
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from svit_model.tiny import build_tiny_processor, build_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_processor(tiny_tokenizer):
    """LLaVA-1.5's `pad` mode: boxes move into the padded square."""
    return build_tiny_processor(tiny_tokenizer, pad=True)


@pytest.fixture(scope="session")
def tiny_processor_unpadded(tiny_tokenizer):
    return build_tiny_processor(tiny_tokenizer, pad=False)


@pytest.fixture
def no_model_load(monkeypatch):
    """`svit train` fails the test if it loads the model: what is checked must be checked before that."""
    from svit_model.training import train as train_module

    def trap(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(train_module, "load_model", trap)


def folder_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _kept_read_only(folder: Path, name: str):
    """Yield `folder`; afterwards fail if a test added, removed or changed a file in it."""
    before = folder_digest(folder)
    yield folder
    after = folder_digest(folder)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"a test changed the shared `{name}` folder (copy it to change it): {changed[:10]}"


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory):
    """The bundled sample as `svit build` writes it: every config (the four tasks, `full` and the recipes with
    the bundled LLaVA pair), images embedded, the sample's held-out image ids as `test`; the dataset card
    included. The folder is named `svit`; its build report is `build_report.json` inside. Read-only."""
    from svit_dataset import bundled
    from tests.cli_runs import run_svit

    folder = tmp_path_factory.mktemp("built_sample") / "svit"
    done = run_svit(
        ["build", "--input", str(bundled.RELEASE_DIR), "--output", str(folder), "--configs", "all,recipes",
         "--images", str(bundled.IMAGES_DIR), "--test-ids", str(bundled.TEST_IDS),
         "--llava-mix", str(bundled.LLAVA_DIR / "llava_v1_5_mix665k.json"),
         "--llava-instruct", str(bundled.LLAVA_DIR / "llava_instruct_150k.json")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    yield from _kept_read_only(folder, "built_sample")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny SVIT-LLaVA checkpoint folder (`svit model tiny`'s function, its default corpus and seed),
    untrained. Read-only."""
    from svit_model.tiny import save_tiny_svit_llava

    folder = save_tiny_svit_llava(tmp_path_factory.mktemp("tiny_checkpoint") / "tiny-svit-llava")
    yield from _kept_read_only(Path(folder), "tiny_checkpoint")
