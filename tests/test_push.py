"""`push_hub_dataset` talks to a real-protocol Hub: the loopback fake in tests/fake_hub.py."""

import json
from pathlib import Path

import datasets
import pytest
from huggingface_hub.errors import HfHubHTTPError

from svit_cli.jobs.build import build_dataset_folder
from svit_cli.jobs.push import push_folder
from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.hub_build.engine import build_hub_dataset
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.push import push_hub_dataset
from svit_dataset.hub_build.report import REPORT_FILE
from tests.fake_hub import fake_hub

TOKEN = "hf_test_" + "x" * 30
REPO = "my-org/svit"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A one-config Hub folder from the bundled sample, plus a stray file that must not be pushed."""
    folder = tmp_path_factory.mktemp("built") / "svit"
    report = build_hub_dataset(bundled.RELEASE_DIR, folder, ["referring_qa"], image_data=bundled.IMAGE_DATA)
    (folder / "notes.txt").write_text("not part of the dataset\n")
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    expected = {k: v for k, v in local.items() if k in ("README.md", REPORT_FILE) or k.startswith("data/")}
    assert any(k.endswith(".parquet") for k in expected)
    # On the Hub the card's snippet names the repo, not the local folder; nothing else in it changes.
    card = expected["README.md"].decode()
    assert 'load_dataset("svit",' in card
    expected["README.md"] = card.replace('load_dataset("svit",', f'load_dataset("{REPO}",').encode()
    return folder, report, expected


def test_push_creates_a_dataset_repo_with_every_file(built, tmp_path):
    folder, report, expected = built
    with fake_hub() as hub:
        url = push_hub_dataset(folder, REPO, token=TOKEN, endpoint=hub.endpoint)

    repo = hub.repo(REPO)
    assert list(hub.repos) == [("dataset", REPO)] and not repo.private
    create = next(r for r in hub.requests if r.path == "/api/repos/create")
    # No visibility sent: the Hub's default (an organisation's, possibly private) applies.
    assert json.loads(create.body) == {"name": "svit", "organization": "my-org", "type": "dataset"}

    files = hub.files(REPO)
    assert set(files) == set(expected)  # README.md, build_report.json, data/**; not notes.txt
    assert all(files[path] == data for path, data in expected.items())
    assert f'load_dataset("{REPO}",' in files["README.md"].decode()
    assert len(repo.commits) == 1
    assert repo.commits[0].summary == "Upload SVIT dataset built with svit"
    # "regular" upload mode: every file travelled base64-encoded inside the NDJSON commit
    assert {op["key"] for op in repo.commits[0].operations} == {"file"}
    assert url == f"{hub.endpoint}/datasets/{REPO}/commit/{repo.head}"

    # The token went in the Authorization header of every call, and nowhere else.
    assert hub.unhandled == []
    assert [r.path.rsplit("/", 2)[-2] for r in hub.requests if r.path.startswith("/api/datasets/")] == [
        "preupload",
        "commit",
    ]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    for r in hub.requests:
        others = {k: v for k, v in r.headers.items() if k != "authorization"}
        assert TOKEN not in json.dumps(others) + r.path + json.dumps(r.query)
    assert not any(TOKEN.encode() in data for data in files.values())
    assert not any(TOKEN in c.summary + c.description for c in repo.commits)

    # What the Hub holds loads like the local build.
    checkout = hub.materialize(REPO, tmp_path / "checkout")
    pushed = datasets.load_dataset(str(checkout), "referring_qa", cache_dir=str(tmp_path / "cache"))
    assert {s: pushed[s].num_rows for s in pushed} == report["configs"]["referring_qa"]
    local = datasets.load_dataset(str(folder), "referring_qa", cache_dir=str(tmp_path / "cache_local"))
    assert {s: local[s].num_rows for s in local} == report["configs"]["referring_qa"]


def test_push_again_is_a_no_op_and_lfs_path_works(built):
    folder, _, expected = built
    with fake_hub(lfs_patterns=("*.parquet",), token=TOKEN) as hub:
        first = push_hub_dataset(folder, REPO, token=TOKEN, endpoint=hub.endpoint, private=True)
        second = push_hub_dataset(folder, REPO, token=TOKEN, endpoint=hub.endpoint, private=True)

    repo = hub.repo(REPO)
    assert repo.private and hub.files(REPO) == expected
    assert repo.lfs == {k for k in expected if k.endswith(".parquet")}
    assert len(repo.commits) == 1 and first == second  # unchanged files: no second commit
    assert hub.unhandled == []
    # LFS content goes to the storage URL the batch answer named, without the token (as with S3 on the real Hub).
    puts = [r for r in hub.requests if r.method == "PUT"]
    assert len(puts) == len(repo.lfs) and all("authorization" not in r.headers for r in puts)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests if r.method != "PUT")


def test_push_with_a_wrong_token_fails(built):
    folder, _, _ = built
    wrong = "hf_wrong_" + "y" * 30
    with (
        fake_hub(token=TOKEN) as hub,
        pytest.raises(SvitInputError, match="HTTP 401; the token was refused") as err,
    ):
        push_hub_dataset(folder, REPO, token=wrong, endpoint=hub.endpoint)
    assert isinstance(err.value.__cause__, HfHubHTTPError) and err.value.__cause__.response.status_code == 401
    assert wrong not in str(err.value)
    assert hub.repos == {}


def test_push_needs_a_built_folder(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(SvitInputError, match="no README.md"):
        push_hub_dataset(tmp_path, REPO, token=TOKEN, endpoint="http://127.0.0.1:9")


def test_the_pushed_card_names_the_repo_whatever_the_folder_is_called(tmp_path):
    folder = tmp_path / "my_build_2026"
    build_dataset_folder(
        BuildOptions(bundled.RELEASE_DIR, folder, "referring_qa", image_data=bundled.IMAGE_DATA)
    )
    local_card = (folder / "README.md").read_text()
    assert 'load_dataset("my_build_2026", "referring_qa"' in local_card  # works from the folder's parent
    with fake_hub() as hub:
        push_hub_dataset(folder, "other-org/svit-gen", token=TOKEN, endpoint=hub.endpoint)
    pushed = hub.files("other-org/svit-gen")["README.md"].decode()
    assert 'load_dataset("other-org/svit-gen", "referring_qa", split="train")' in pushed
    assert "my_build_2026" not in pushed
    assert pushed.replace("other-org/svit-gen", "my_build_2026") == local_card


def _fake_run(run: Path, *, adapter_base: str | None = None) -> Path:
    """A `svit train` run folder's layout: full (config.json) or LoRA (adapter on `adapter_base`), processor
    chat templates in a subfolder, checkpoints and logs beside it."""
    from svit_dataset.facts import RUN_FACTS_FILE
    from tests.test_train_card import FACTS

    for folder in ("checkpoint-10", "runs/Nov30", "additional_chat_templates", ".cache"):
        (run / folder).mkdir(parents=True)
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    (run / "runs" / "Nov30" / "events.out").write_bytes(b"log")
    (run / ".cache" / "x").write_bytes(b"x")
    (run / "additional_chat_templates" / "plain.jinja").write_text("{{ messages }}")
    (run / RUN_FACTS_FILE).write_text(json.dumps({**FACTS, "hub_model_id": None}))
    if adapter_base is None:
        (run / "config.json").write_text('{"model_type": "svit_llava"}')
        (run / "model.safetensors").write_bytes(b"weights")
    else:
        (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": adapter_base}))
        (run / "adapter_model.safetensors").write_bytes(b"weights")
    (run / "README.md").write_text("an old card\n")
    return run


@pytest.mark.parametrize("adapter_base", [None, "my-org/svit-llava-7b-stage1"], ids=["full", "lora"])
def test_svit_push_of_a_training_run_makes_a_model_repo_whose_card_names_it(
    tmp_path, monkeypatch, adapter_base
):
    """`svit push RUN ORG/NAME`: what loads (chat templates folder included) and its card; not the checkpoints
    kept for resuming, logs or hidden files."""
    from huggingface_hub import ModelCard, constants

    from svit_cli.main import main
    from svit_dataset.facts import RUN_FACTS_FILE

    run = _fake_run(tmp_path / "tiny-stage2", adapter_base=adapter_base)
    with fake_hub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert main(["push", str(run), "my-org/svit-tiny"]) == 0

    assert list(hub.repos) == [("model", "my-org/svit-tiny")]
    files = hub.files("my-org/svit-tiny", repo_type="model")
    weights = (
        {"config.json", "model.safetensors"}
        if adapter_base is None
        else {
            "adapter_config.json",
            "adapter_model.safetensors",
        }
    )
    assert set(files) == {"README.md", RUN_FACTS_FILE, "additional_chat_templates/plain.jinja"} | weights
    (tmp_path / "pushed.md").write_bytes(files["README.md"])
    card = ModelCard.load(tmp_path / "pushed.md")
    assert card.data.pipeline_tag == "image-text-to-text"
    assert 'from_pretrained("my-org/svit-tiny"' in card.text and "tiny-stage2" not in card.text
    assert TOKEN not in json.dumps({k: v.decode(errors="replace") for k, v in files.items()})


def test_svit_push_refuses_a_lora_run_on_a_local_base_and_a_folder_that_is_neither(tmp_path, monkeypatch):
    import svit_cli.jobs.push as push_job

    def card(run, model_id):
        raise AssertionError("no card is written for a run that cannot be pushed")

    monkeypatch.setattr(push_job, "run_card", card)
    run = _fake_run(tmp_path / "lora", adapter_base=str(tmp_path / "stage1"))
    with pytest.raises(SvitInputError, match=r"local path .*merge it first \(svit model merge --input "):
        push_folder(run, REPO, endpoint="http://127.0.0.1:9")
    with pytest.raises(SvitInputError, match=r"neither a folder written by `svit build` .* nor a finished"):
        push_folder(tmp_path, REPO, endpoint="http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("my-org/svit", "my-org/svit"),
        ("lmsys/vicuna-13b-v1.5", "lmsys/vicuna-13b-v1.5"),
        ("gpt2", None),  # no organisation: could as well be a folder name; cards and pushes want org/name
        ("/data/svit", None),
        ("./out/svit", None),
        ("out/train/run", None),
        ("my org/svit", None),
        ("", None),
        (None, None),
    ],
)
def test_hub_repo_id_tells_a_repo_from_a_local_path(value, expected):
    from svit_dataset.hub_push import hub_repo_id

    assert hub_repo_id(value) == expected


def test_an_existing_folder_is_never_a_repo_id(tmp_path, monkeypatch):
    from svit_dataset.hub_push import hub_repo_id

    (tmp_path / "out" / "svit").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub_repo_id("out/svit") is None and hub_repo_id("out/other") == "out/other"
