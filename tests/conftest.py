"""Fixtures shared by several test modules, each made once per session (under pytest-xdist: once per worker):

- the tiny tokenizer and processors, through the same functions a real checkpoint goes through (svit_model.tiny);
- `built_sample`: the bundled sample built by `svit build` into a Hub dataset folder;
- `tiny_checkpoint`: a tiny SVIT-LLaVA checkpoint folder, as `svit model tiny` writes it;
- `tiny_grounded_checkpoint` and `grounded_dataset`: the training tests' tiny checkpoint (its tokenizer trained
  also on their grounded samples) and those samples as a dataset folder (tests/train_fixtures.py).

The folders are shared, so they are read-only: a test that changes one works on a copy (`shutil.copytree`).
The session fails at its end, naming the files, if any test changed them.

`make test` runs the suite on two workers (`-n 2 --dist loadfile`: a module's tests, and its module-scoped
fixtures, stay on one worker): the modules with slow tests are started first (`pytest_collection_modifyitems`),
and each worker runs torch on one thread. Every session (each worker's) has a Hugging Face home of its own.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

# As `make test` runs the suite, whatever the shell running pytest holds: set before huggingface_hub and
# datasets are imported (they read these once, at import).
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A Hugging Face home of this session's own (each worker's, under xdist): the datasets cache, the remote-code
# modules and any token are this run's, never the user's, and two workers never write the same cache entry.
HF_HOME = tempfile.mkdtemp(prefix="svit-tests-hf-home-")
os.environ["HF_HOME"] = HF_HOME
for _name in ("HF_DATASETS_CACHE", "HF_MODULES_CACHE", "HF_HUB_CACHE", "HF_TOKEN"):
    os.environ.pop(_name, None)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each worker is one of the busy processes on the machine's cores: one thread each, and for the processes
    # they start (torch reads this at import), or their thread pools fight over the cores.
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402


def pytest_unconfigure(config):
    shutil.rmtree(HF_HOME, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `--dist loadfile`, a module at a time): the modules holding tests marked
    `slow` go first, those with the most first, so that the run does not end on a long module alone while the
    other worker waits."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def module(item) -> str:
        return item.nodeid.split("::")[0]

    slow_tests = collections.Counter(module(item) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_tests[module(item)])  # stable: collection order within each rank


# The package is imported in the fixtures, not here: pytest-xdist's controller loads this file and runs no test.


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from svit_model.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_processor(tiny_tokenizer):
    """LLaVA-1.5's `pad` mode: boxes move into the padded square."""
    from svit_model.tiny import build_tiny_processor

    return build_tiny_processor(tiny_tokenizer, pad=True)


@pytest.fixture(scope="session")
def tiny_processor_unpadded(tiny_tokenizer):
    from svit_model.tiny import build_tiny_processor

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


@pytest.fixture(scope="session")
def tiny_grounded_checkpoint(tmp_path_factory):
    """The tiny SVIT-LLaVA whose tokenizer also learnt the grounded samples of tests/train_fixtures.py
    (`write_tiny`), in a folder named `tiny` (a run records its init folder's name). Read-only."""
    from tests.train_fixtures import write_tiny

    folder = write_tiny(tmp_path_factory.mktemp("tiny_grounded") / "tiny")
    yield from _kept_read_only(Path(folder), "tiny_grounded_checkpoint")


@pytest.fixture(scope="session")
def grounded_dataset(tmp_path_factory):
    """The grounded samples of tests/train_fixtures.py as a dataset folder (`write_dataset`: one Parquet file,
    images embedded), named `data`. Read-only."""
    from tests.train_fixtures import write_dataset

    folder = write_dataset(tmp_path_factory.mktemp("grounded_dataset") / "data")
    yield from _kept_read_only(Path(folder), "grounded_dataset")
