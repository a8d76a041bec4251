"""Generation end to end: the real client over HTTP against a local fake OpenAI server with faults.

The fake (tests/fake_openai.py) answers in the paper's formats from the scene in the prompt, and
injects 429 + Retry-After, 500, timeouts, dropped connections, unreadable bodies, 400s, truncated,
malformed and short answers, "captions" mentions, failed generations and boxes that match nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest

from svit_cli.jobs.main_job_data import run_generation_dry_run
from svit_cli.main import main as svit_main
from svit_dataset import bundled
from svit_dataset.errors import SvitError, SvitInputError
from svit_dataset.generation import run as run_module
from svit_dataset.generation.annotations import iter_vg_scenes, write_scenes_jsonl
from svit_dataset.generation.client import ClientSettings, FatalAPIError
from svit_dataset.generation.run import GenerationConfig, SceneSource, generate
from svit_dataset.hub_build.engine import build_hub_dataset
from svit_dataset.schema import TASKS
from tests.cli_runs import run_svit, run_svit_forked, wait_forked
from tests.fake_openai import FakeOpenAI

CAPTIONS = bundled.ANNOTATIONS_DIR / "captions_train2017.json"
MODEL = "fake-model"
IMAGE_IDS = [item["image_id"] for item in json.loads(bundled.IMAGE_DATA.read_text())]
ALL_KEYS = {(i, t) for i in IMAGE_IDS for t in TASKS}

# Content faults are a function of (scene, task, seed): the same through the chat route and in a batch.
CONTENT_FAULTS = {
    "bad_request": 0.02,
    "truncated": 0.04,
    "malformed": 0.04,
    "too_few": 0.04,
    "captions": 0.05,
    "bad_box": 0.12,
    "failed_generation": 0.03,
    "always_bad": 0.03,
}
FAULTS = {
    "rate_limit": 0.04,
    "server_error": 0.04,
    "timeout": 0.02,
    "drop": 0.04,
    "garbled": 0.03,
    **CONTENT_FAULTS,
}
# Content faults are a function of (scene, task, seed): every run against a FakeOpenAI(FAULTS) gets
# the same answers, whatever transport faults or kills happen on the way.


def _source() -> SceneSource:
    return SceneSource(annotations=bundled.ANNOTATIONS_DIR, coco_captions=(CAPTIONS,))


def _config(out, base_url, **kw) -> GenerationConfig:
    client = ClientSettings(model=MODEL, base_url=base_url, timeout=0.5, backoff_base=0.02, backoff_max=0.2)
    return GenerationConfig(
        output_dir=out, client=client, concurrency=kw.pop("concurrency", 8), progress=False, **kw
    )


def _task_files(out: Path) -> dict[str, bytes]:
    return {t: (out / f"{t}.json").read_bytes() for t in TASKS}


def _suffix(request_key: str) -> str:
    """`svit-<run>-<image>-<task>-<attempt>` -> `<image>-<task>-<attempt>`."""
    return request_key.split("-", 2)[2]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run over the 36 bundled images x 4 tasks, with every fault switched on."""
    out = tmp_path_factory.mktemp("gen") / "reference"
    with FakeOpenAI(FAULTS, hang=1.0) as server:
        summary = generate(_source(), _config(out, server.base_url))
        log = list(server.log)
    return out, summary, log


def test_every_item_ends_in_output_or_failure_report_once(reference):
    out, summary, log = reference
    done = []
    for task in TASKS:
        records = json.loads((out / f"{task}.json").read_text())
        done += [(r["image_id"], task) for r in records]
        for r in records:
            prov = r["provenance"]
            assert prov["model"] == MODEL and prov["prompt_version"].startswith("paper-v1@")
            assert (
                prov["attempts"] >= 1 and prov["usage"]["completion_tokens"] > 0 and "seed" in prov["params"]
            )
    failures = json.loads((out / "failures.json").read_text())
    failed = [(f["image_id"], f["task"]) for f in failures]
    assert len(done) == len(set(done)) and len(failed) == len(set(failed))
    assert set(done) | set(failed) == ALL_KEYS and not set(done) & set(failed)
    assert summary["items"] == {"selected": 144, "done": len(done), "failed": len(failed), "pending": 0}
    # every fault met, and the run got past all of them
    statuses = Counter(str(e["status"]) for e in log)
    assert {"429", "500", "400", "dropped", "hung", "garbled"} <= set(statuses)
    assert {"rate_limited", "http_500", "timeout", "connection", "unreadable_response"} <= set(
        summary["session"]["retries"]
    )
    reasons = Counter(f["reason"] for f in failures)
    assert reasons["source_mention"] >= 1 and reasons["bad_request"] >= 1  # always-bad items, 400s
    assert summary["failed_by_reason"] == dict(sorted(reasons.items()))
    # content faults were caught and regenerated: records that needed more than one attempt
    retried = [
        r
        for t in TASKS
        for r in json.loads((out / f"{t}.json").read_text())
        if r["provenance"]["attempts"] > 1
    ]
    assert len(retried) >= 10
    # no request was answered twice: a 200 for a request id happens at most once
    answered = Counter(e["key"] for e in log if e["status"] == 200)
    assert answered and max(answered.values()) == 1
    # Retry-After (0.2 s) was honoured: the next delivery of a 429'd request came no sooner
    by_key: dict = {}
    for e in log:
        by_key.setdefault(e["key"], []).append(e)
    waited = [
        later["t"] - first["t"]
        for first, later in (v[:2] for v in by_key.values() if len(v) > 1 and v[0]["status"] == 429)
    ]
    assert waited and min(waited) >= 0.19


def test_output_builds_with_svit_build_and_loads(reference, tmp_path):
    out, _, _ = reference
    hub = tmp_path / "svit"
    report = build_hub_dataset(out, hub, image_data=bundled.IMAGE_DATA, test_ids=bundled.TEST_IDS)
    sizes = {}
    for task in TASKS:
        ds = datasets.load_dataset(str(hub), task)
        sizes[task] = ds["train"].num_rows + ds["test"].num_rows
        row = ds["train"][0]
        assert row["messages"][0]["role"] == "user" and row["messages"][1]["role"] == "assistant"
    records = {t: json.loads((out / f"{t}.json").read_text()) for t in TASKS}
    assert sizes["conversation"] == 3 * len(records["conversation"])
    for task in ("complex_reasoning", "referring_qa", "detail_description"):
        assert sizes[task] == len(records[task])
    assert not any(
        report["quality"][c][s]["dropped"] for c in TASKS for s in ("train", "test")
    )  # gates pass all
    conv = datasets.load_dataset(str(hub), "conversation")["train"]
    assert all(len(m) == 10 for m in conv["messages"]) and all(conv["topic"])
    detail = datasets.load_dataset(str(hub), "detail_description")["train"][0]
    assert detail["messages"][0]["content"].endswith((".", "?"))  # a Figure 9 instruction


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(reference, tmp_path):
    ref_out, _, _ = reference
    out = tmp_path / "killed"
    with FakeOpenAI(FAULTS, hang=1.0, delay=0.03) as server:
        argv = [
            "generate",
            "--annotations", str(bundled.ANNOTATIONS_DIR), "--coco-captions", str(CAPTIONS),
            "--output", str(out), "--model", MODEL, "--base-url", server.base_url,
            "--concurrency", "3", "--timeout", "0.5",
        ]  # fmt: skip
        # the killed run is a process of its own (a SIGKILL ends a process; a fork of this one); the rerun runs here
        killed = run_svit_forked(argv)
        ledger = out / "ledger.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and killed.running():
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.01)
        assert killed.running(), "the run ended before it could be killed"
        os.kill(killed.pid, signal.SIGKILL)
        wait_forked(killed)
        kill_index = len(server.log)
        # what the killed run had finished: every attempt judged and written to the ledger
        finished = set()
        for raw in ledger.read_bytes().splitlines():
            line = json.loads(raw)
            image, task = line["key"].split("/")
            n = line["attempt"] if line["t"] == "attempt" else line["attempts"]
            finished.update(f"{image}-{task}-{k}" for k in range(n))
        assert 0 < len(finished) < 150
        assert (
            not (out / "referring_qa.json").exists()
            or len(json.loads((out / "referring_qa.json").read_text())) < 36
        )

        rerun = run_svit(argv)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        after = server.log[kill_index:]
    resent = {_suffix(e["key"]) for e in after} & finished
    assert not resent, f"finished requests sent again: {sorted(resent)[:5]}"
    assert _task_files(out) == _task_files(ref_out)
    assert (out / "failures.json").read_bytes() == (ref_out / "failures.json").read_bytes()


def test_shards_together_equal_one_run(reference, tmp_path):
    ref_out, _, _ = reference
    out = tmp_path / "sharded"
    with FakeOpenAI(FAULTS, hang=1.0) as server:
        first = generate(_source(), _config(out, server.base_url, shard=(0, 2)))
        assert 0 < first["items"]["selected"] < 144
        second = generate(_source(), _config(out, server.base_url, shard=(1, 2)))
    assert first["items"]["selected"] + second["items"]["selected"] == 144
    assert sorted(p.name for p in out.glob("ledger*")) == [
        "ledger.shard-0-of-2.jsonl",
        "ledger.shard-1-of-2.jsonl",
    ]
    assert _task_files(out) == _task_files(ref_out)


def test_resumed_run_must_match_settings(reference):
    out, _, _ = reference
    with pytest.raises(SvitInputError, match="model: 'fake-model' -> 'other'"):
        config = _config(out, "http://127.0.0.1:9/v1")
        config.client.model = "other"
        generate(_source(), config)


def test_finished_run_sends_nothing_again(reference, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(reference[0], out)
    with FakeOpenAI(FAULTS) as server:
        summary = generate(_source(), _config(out, server.base_url))
        assert summary["session"]["requests_sent"] == 0 and not server.log
    assert _task_files(out) == _task_files(reference[0])


def test_api_key_never_written_anywhere(tmp_path, monkeypatch, caplog, capsys):
    key = (
        "sk-" + "svitLEAKCHECK0123456789abcdefXYZ"
    )  # a fake, recognisable key (built so no scanner flags it)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    for name in [
        "",
        *[
            n
            for n in logging.root.manager.loggerDict
            if n.startswith(("httpx", "httpcore", "openai", "svit"))
        ],
    ]:
        caplog.set_level(logging.DEBUG, logger=name or None)
    out = tmp_path / "out"
    with FakeOpenAI(FAULTS, api_key=key, hang=1.0) as server:
        summary = generate(
            SceneSource(annotations=bundled.ANNOTATIONS_DIR), _config(out, server.base_url, max_images=6)
        )
        assert summary["items"]["done"] > 0  # the key was sent and accepted
        # a server that echoes a wrong key in its 401 (as careless proxies do)
        monkeypatch.setenv("OPENAI_API_KEY", key[::-1])
        with pytest.raises(FatalAPIError) as raised:
            generate(
                SceneSource(annotations=bundled.ANNOTATIONS_DIR),
                _config(tmp_path / "out401", server.base_url),
            )
        assert "refused the key" in str(raised.value)
        assert server.statuses()["401"] >= 1
        # ... and through the CLI, whose error printer is what a user sees
        rc = svit_main(
            ["generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--output", str(tmp_path / "cli401"),
             "--model", MODEL, "--base-url", server.base_url, "--max-images", "1"]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 2
    assert caplog.records and any(r.levelno == logging.DEBUG for r in caplog.records)
    texts = [caplog.text, captured.out, captured.err, str(raised.value), repr(raised.value)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in (key, key[::-1]):
        assert not any(secret in t for t in texts)
    assert (
        "***"
        in json.loads((tmp_path / "out401" / "generation_summary.json").read_text())["session"]["stopped_by"]
    )


def test_unknown_model_stops_the_run(tmp_path):
    with FakeOpenAI(known_models=("real-model",)) as server:
        started = time.monotonic()
        with pytest.raises(SvitError, match="does not know model 'fake-model'"):
            generate(_source(), _config(tmp_path / "out", server.base_url))
        assert time.monotonic() - started < 10 and server.statuses()["404"] <= 8  # stopped, not 144 tries


def test_scenes_jsonl_source(tmp_path):
    scenes = tmp_path / "scenes.jsonl"
    write_scenes_jsonl(iter_vg_scenes(bundled.ANNOTATIONS_DIR, [CAPTIONS], max_images=4), scenes)
    with FakeOpenAI() as server:
        summary = generate(
            SceneSource(scenes=scenes),
            _config(tmp_path / "out", server.base_url, tasks=("referring_qa",), max_images=3),
        )
    assert summary["items"] == {"selected": 3, "done": 3, "failed": 0, "pending": 0}
    assert summary["done_by_task"] == {"referring_qa": 3}


def test_dry_run_cli_and_demo_call_nothing(tmp_path, capsys):
    rc = svit_main(
        ["generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--coco-captions", str(CAPTIONS),
         "--output", str(tmp_path / "out"), "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1", "--dry-run"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "requests (first attempts): 144" in text and "at gpt-4o prices" in text
    assert not (tmp_path / "out").exists()
    plan = run_generation_dry_run(print_fn=lambda *_: None)
    assert plan["requests"] == 144 and plan["cost_usd"] > 0 and plan["over_budget"] == 0

    def dry_run(*flags: str) -> str:
        argv = ["generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--output", str(tmp_path / "o")]
        assert svit_main([*argv, "--dry-run", *flags]) == 0
        return capsys.readouterr().out

    assert "over budget (would fail): 36" in dry_run("--max-prompt-tokens", "300", "--tasks", "referring_qa")
    batched = dry_run("--model", "gpt-4o", "--batch-max-requests", "50")
    assert "in 3 request file(s) of at most 50 requests, one batch each" in batched


def test_replies_of_other_shapes_are_retried_not_fatal(tmp_path):
    with FakeOpenAI({"odd_shape": 1.0}) as server:  # every first delivery: one of the odd shapes
        summary = generate(
            _source(), _config(tmp_path / "out", server.base_url, tasks=("referring_qa",), max_images=3)
        )
        assert server.statuses()["odd_shape"] == 3
    assert summary["items"] == {"selected": 3, "done": 3, "failed": 0, "pending": 0}
    assert summary["session"]["retries"] == {"unreadable_response": 3}


def test_input_drops_are_counted_in_the_summary(tmp_path, capsys):
    vg = tmp_path / "vg"
    shutil.copytree(bundled.ANNOTATIONS_DIR, vg)
    objects = json.loads((vg / "objects.json").read_text())
    del objects[0]["objects"][0]["x"]  # an unreadable object of the first image
    del objects[1]  # the second image has no objects entry
    (vg / "objects.json").write_text(json.dumps(objects))
    regions = json.loads((vg / "region_descriptions.json").read_text())
    regions[0]["regions"][0]["width"] = None  # an unreadable region
    (vg / "region_descriptions.json").write_text(json.dumps(regions))
    with FakeOpenAI() as server:
        summary = generate(
            SceneSource(annotations=vg),
            _config(tmp_path / "out", server.base_url, tasks=("referring_qa",), max_images=2),
        )
        source_counts = summary["input"]
        assert source_counts["bad_objects"] == 1 and source_counts["bad_regions"] == 1
        assert source_counts["without_objects"] == 1 and source_counts["images"] == 2
        assert (
            json.loads((tmp_path / "out" / "generation_summary.json").read_text())["input"] == source_counts
        )

        scenes = tmp_path / "scenes.jsonl"
        write_scenes_jsonl(iter_vg_scenes(bundled.ANNOTATIONS_DIR, max_images=3), scenes)
        lines = scenes.read_text().splitlines()
        scenes.write_text(
            "\n".join([lines[0], "not json", '{"image_id": 5, "objects": 3}', *lines[1:]]) + "\n"
        )
        rc = svit_main(
            ["generate", "--scenes", str(scenes), "--output", str(tmp_path / "out2"), "--model", MODEL,
             "--base-url", server.base_url, "--tasks", "referring_qa", "--max-images", "2"]
        )  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert rc == 0 and printed["items"]["done"] == 2
    assert printed["input"] == {"malformed_scene_lines": 2, "scene_lines": 4}


def test_kill_after_the_last_attempt_line_keeps_its_reason(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    key = f"{IMAGE_IDS[0]}/referring_qa"
    last = {"t": "attempt", "key": key, "attempt": 3, "usage": [30, 9], "reason": "box_matches_nothing"}
    last["detail"] = "box [0.1, 0.1, 0.2, 0.2] matches no scene box"
    (out / "ledger.jsonl").write_text(json.dumps(last) + "\n")  # killed before its `failed` line
    with FakeOpenAI() as server:
        summary = generate(_source(), _config(out, server.base_url, tasks=("referring_qa",), max_images=1))
        assert not server.log
    assert summary["failed_by_reason"] == {"box_matches_nothing": 1}
    (failure,) = json.loads((out / "failures.json").read_text())
    assert (failure["reason"], failure["detail"], failure["attempts"]) == (
        "box_matches_nothing",
        last["detail"],
        3,
    )


def test_a_failing_summary_does_not_hide_what_stopped_the_run(tmp_path, monkeypatch, caplog):
    def broken_collect(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(run_module, "collect_outputs", broken_collect)
    with FakeOpenAI(known_models=("real-model",)) as server:
        with pytest.raises(FatalAPIError, match="does not know model"):
            generate(_source(), _config(tmp_path / "out", server.base_url, max_images=1))
        assert "could not write generation_summary.json" in caplog.text
    with FakeOpenAI() as server, pytest.raises(OSError, match="disk full"):  # a run that ended well
        generate(
            _source(), _config(tmp_path / "out2", server.base_url, max_images=1, tasks=("referring_qa",))
        )
