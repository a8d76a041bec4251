"""The batch path of `svit generate` (batch_run.py): the Batch API through the real openai client against the
fake server's /v1/files and /v1/batches (tests/fake_openai.py, FakeBatches), and batch files for other engines
(--write-batch, --read-batch). The fake answers a batch's lines exactly as its chat route answers requests, with
the same content faults, so the batch path and the online path must write the same release files.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from svit_dataset import bundled
from svit_dataset.generation import batch_run as batch_module
from svit_dataset.generation.batch_run import BatchSettings, generate_batch, parse_custom_id
from svit_dataset.generation.client import FatalAPIError
from svit_dataset.generation.run import generate
from tests.cli_runs import assert_one_clean_line_each, run_svit, run_svit_forked, wait_forked
from tests.fake_openai import FakeOpenAI
from tests.test_generation_run import CAPTIONS, CONTENT_FAULTS, MODEL, _config, _source, _task_files

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05}


def _batch(**kw) -> BatchSettings:
    return BatchSettings(batch=True, **{**FAST, "batch_max_requests": 50, **kw})


def _release(out: Path) -> dict[str, bytes]:
    return {**_task_files(out), "failures.json": (out / "failures.json").read_bytes()}


def _ledger_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    """The online run of the 36 bundled images x 4 tasks, content faults on: what every batch run must equal."""
    out = tmp_path_factory.mktemp("online") / "out"
    with FakeOpenAI(CONTENT_FAULTS) as server:
        summary = generate(_source(), _config(out, server.base_url))
    assert summary["items"]["failed"] >= 5 and summary["items"]["done"] >= 100
    return out


def test_batch_run_equals_online_run_byte_for_byte(online, tmp_path):
    out = tmp_path / "batch"
    batches = {"error_rate": 0.05, "expire": (1,), "steps": 2}
    with FakeOpenAI(CONTENT_FAULTS, batches=batches) as server:
        summary = generate_batch(_source(), _config(out, server.base_url), _batch())
        submitted = server.batches.submitted
        created = server.batches.created
    assert _release(out) == _release(online)
    session = summary["session"]
    assert summary["items"]["pending"] == 0 and session["batches_open"] == []
    # round 1: 144 requests in files of at most 50; batch 1 expired after running half its requests
    assert session["batches_expired"] == 1 and session["not_run"] == 25
    # 5% error lines (first submissions only), regenerated in the next round with the same request
    errors = session["error_lines"]
    assert 2 <= errors <= 20
    resent = [custom_id for custom_id, n in submitted.items() if n > 1]
    assert len(resent) == 25 + errors and max(submitted.values()) == 2  # nothing else was sent twice
    # rejected answers went into later rounds at their next attempt (a new seed), as online
    assert any(parse_custom_id(c)[2] >= 1 for c in submitted) and created == session["batches_submitted"] >= 5
    assert summary["failed_by_reason"].get("bad_request", 0) >= 1  # a 400 line fails the item, as online
    assert not (out / "batches").exists() or not any(
        (out / "batches").iterdir()
    )  # closed batches' files gone


@pytest.mark.slow
def test_sigkill_while_polling_then_rerun_submits_nothing_twice(online, tmp_path):
    out = tmp_path / "killed"
    argv = [
        "generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--coco-captions", str(CAPTIONS),
        "--output", str(out), "--model", MODEL, "--batch", "--batch-max-requests", "50",
        "--poll-interval", "0.01", "--max-poll-interval", "0.05", "--no-progress",
    ]  # fmt: skip
    # batches that stay validating, each poll answered slowly: the kill lands while polling
    with FakeOpenAI(CONTENT_FAULTS, batches={"steps": 1000, "poll_delay": 0.05}) as server:
        argv += ["--base-url", server.base_url]
        killed = run_svit_forked(argv)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.batches.retrieves < 10:
            time.sleep(0.01)
        assert killed.running() and server.batches.retrieves >= 10, "never polled"
        os.kill(killed.pid, signal.SIGKILL)
        wait_forked(killed)
        assert server.batches.created == 3  # 144 requests, 50 a file
        assert [line["t"] for line in _ledger_lines(out)] == ["upload", "batch"] * 3
        server.batches.configure(steps=1, poll_delay=0.0)
        rerun = run_svit(argv)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        round_one = [c for c in server.batches.submitted if parse_custom_id(c)[2] == 0]
        assert len(round_one) == 144 and max(server.batches.submitted.values()) == 1
        assert server.batches.created == 3 + json.loads(rerun.stdout)["session"].get("batches_submitted", 0)
    assert _release(out) == _release(online)


def test_a_kill_between_creating_a_batch_and_its_ledger_line_finds_the_batch(online, tmp_path, monkeypatch):
    out = tmp_path / "out"
    note = batch_module.BatchRun._note

    def killed_after_the_first_batch(self, line):
        if line["t"] == "batch":
            raise KeyboardInterrupt("killed")  # the server made the batch; the ledger never heard of it
        note(self, line)

    with FakeOpenAI(CONTENT_FAULTS) as server:
        monkeypatch.setattr(batch_module.BatchRun, "_note", killed_after_the_first_batch)
        with pytest.raises(KeyboardInterrupt):
            generate_batch(_source(), _config(out, server.base_url), _batch())
        assert server.batches.created == 1
        monkeypatch.setattr(batch_module.BatchRun, "_note", note)
        summary = generate_batch(_source(), _config(out, server.base_url), _batch())
        assert max(server.batches.submitted.values()) == 1  # the orphan batch was used, not made again
        assert server.batches.created == summary["session"]["batches_submitted"] + 1
    assert _release(out) == _release(online)


def test_failed_batch_and_bad_output_lines_are_sent_again_not_fatal(online, tmp_path):
    out = tmp_path / "out"
    with FakeOpenAI(CONTENT_FAULTS, batches={"fail": (1,), "garble": (2,), "cut": (3,)}) as server:
        summary = generate_batch(_source(), _config(out, server.base_url), _batch())
    session = summary["session"]
    assert session["batches_failed"] == 1
    assert session["output_lines_not_used"] == {"cut_line": 1, "not_json": 1}
    assert _release(out) == _release(online)


def test_no_wait_then_cancel_then_finish(online, tmp_path):
    out = tmp_path / "out"
    with FakeOpenAI(CONTENT_FAULTS, batches={"steps": 1000}) as server:
        config = _config(out, server.base_url)
        first = generate_batch(_source(), config, _batch(wait=False))
        assert len(first["session"]["batches_open"]) == 3 and first["items"]["done"] == 0
        again = generate_batch(_source(), _config(out, server.base_url), _batch(wait=False))
        assert again["session"]["batches_open"] == first["session"]["batches_open"]
        assert server.batches.created == 3  # looked, sent nothing
        cancelled = generate_batch(_source(), _config(out, server.base_url), _batch(cancel=True))
        assert cancelled["session"]["batches_cancelled"] == 3 and cancelled["session"]["batches_open"] == []
        assert 0 < cancelled["items"]["done"] < 144  # what ran before the cancel is kept
        assert server.batches.created == 3
        server.batches.configure(steps=1)
        generate_batch(_source(), _config(out, server.base_url), _batch())
        # sent again: exactly the requests the cancelled batches had not run (a third of each had run)
        ran = 50 // 3 + 50 // 3 + 44 // 3
        assert sorted(Counter(server.batches.submitted.values()).items()) == [
            (1, len(server.batches.submitted) - 144 + ran),
            (2, 144 - ran),
        ]
    assert _release(out) == _release(online)


def test_write_batch_and_read_batch_round_trip(online, tmp_path):
    out, files = tmp_path / "out", tmp_path / "requests"
    common = ["generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--coco-captions", str(CAPTIONS),
              "--output", str(out), "--model", MODEL, "--no-progress"]  # fmt: skip
    rounds = 0
    with FakeOpenAI(CONTENT_FAULTS) as engine:  # its run_batch_file is the engine (vllm run-batch)
        done = run_svit([*common, "--write-batch", str(files / "1"), "--batch-max-requests", "60"])
        assert done.returncode == 0, done.stderr[-2000:]
        while written := json.loads(done.stdout)["session"].get("request_files"):
            rounds += 1
            outputs = []
            for path in written:
                outputs.append(str(path) + ".out")
                engine.run_batch_file(path, outputs[-1])
            next_dir = str(files / str(rounds + 1))
            done = run_svit([*common, "--read-batch", *outputs, "--write-batch", next_dir])
            assert done.returncode == 0, done.stderr[-2000:]
        assert rounds >= 2 and len(list((files / "1").glob("*.jsonl"))) == 3  # 144 requests, 60 a file
        # reading a file again judges nothing twice
        again = run_svit([*common, "--read-batch", *outputs])
        assert again.returncode == 0 and json.loads(again.stdout)["session"]["files_read"] == 0
    assert _release(out) == _release(online)


def test_a_truncated_output_file_is_counted_and_its_requests_written_again(tmp_path, caplog):
    out = tmp_path / "out"
    with FakeOpenAI() as engine:
        config = _config(out, engine.base_url, tasks=("referring_qa",), max_images=4)
        written = generate_batch(_source(), config, BatchSettings(write_batch=tmp_path / "r"))
        (requests,) = written["session"]["request_files"]
        engine.run_batch_file(requests, tmp_path / "answers.jsonl")
        data = (tmp_path / "answers.jsonl").read_bytes()
        (tmp_path / "answers.jsonl").write_bytes(data[: len(data) - 100])  # a copy cut short
        config = _config(out, engine.base_url, tasks=("referring_qa",), max_images=4)
        caplog.set_level(logging.WARNING)
        summary = generate_batch(
            _source(),
            config,
            BatchSettings(read_batch=(tmp_path / "answers.jsonl",), write_batch=tmp_path / "r2"),
        )
    assert summary["items"]["done"] == 3 and summary["session"]["output_lines_not_used"] == {"cut_line": 1}
    assert "answers.jsonl:4: the last line is cut short" in caplog.text
    (again,) = summary["session"]["request_files"]
    assert len(Path(again).read_text().splitlines()) == 1  # the cut answer's request, in the next round


def test_bad_batch_input_is_one_clean_line_each(tmp_path):
    root = tmp_path
    common = ["generate", "--annotations", str(bundled.ANNOTATIONS_DIR), "--model", MODEL,
              "--tasks", "referring_qa", "--max-images", "2", "--no-progress"]  # fmt: skip
    with FakeOpenAI() as engine:
        # an output file of another run: the requests of other settings (--seed 7), answered
        other = run_svit(
            [*common, "--output", str(root / "other"), "--seed", "7", "--write-batch", str(root / "o")]
        )
        assert other.returncode == 0, other.stderr[-2000:]
        (other_requests,) = json.loads(other.stdout)["session"]["request_files"]
        engine.run_batch_file(other_requests, root / "other-answers.jsonl")
        mine = run_svit([*common, "--output", str(root / "mine"), "--write-batch", str(root / "m")])
        assert mine.returncode == 0, mine.stderr[-2000:]
        # a ledger holding a batch the server does not know
        (root / "unknown").mkdir()
        (root / "unknown" / "ledger.jsonl").write_text(
            json.dumps({"t": "upload", "round": 1, "file": "batches/round-001-00001.jsonl", "file_id": "file-9",
                        "lines": 2}) + "\n"
            + json.dumps({"t": "batch", "batch_id": "batch_lost", "file_id": "file-9",
                          "file": "batches/round-001-00001.jsonl", "lines": 2, "round": 1}) + "\n"
        )  # fmt: skip
        (root / "garbage.txt").write_text("not an output line\nnor this\n")
        url = ["--base-url", engine.base_url, "--poll-interval", "0.01"]
        assert_one_clean_line_each([
            ("output file of another run", [*common, "--output", str(root / "mine"), "--read-batch",
             str(root / "other-answers.jsonl")], "none of its 2 answers is for this run"),
            ("--read-batch with no ledger", [*common, "--output", str(root / "empty"), "--read-batch",
             str(root / "other-answers.jsonl")], "has no ledger (ledger.jsonl): pass the --output"),
            ("--read-batch of a missing file", [*common, "--output", str(root / "mine"), "--read-batch",
             str(root / "nope.jsonl")], "nope.jsonl: no such file"),
            ("batch id the server does not know", [*common, "--output", str(root / "unknown"), "--batch", *url],
             "batch batch_lost (in "),
            ("--forget-batch of no open batch", [*common, "--output", str(root / "mine"), "--batch",
             "--forget-batch", "batch_x", *url], "--forget-batch batch_x: no open batch"),
            ("--read-batch of a folder", [*common, "--output", str(root / "mine"), "--read-batch", str(root)],
             "a folder; pass the output files in it"),
            ("--read-batch of a file that is no output", [*common, "--output", str(root / "mine"), "--read-batch",
             str(root / "garbage.txt")], "no line of it is a batch output line (2 not_json)"),
            ("--write-batch onto a file", [*common, "--output", str(root / "mine"), "--write-batch",
             str(root / "garbage.txt")], "a file, not a folder"),
            ("--cancel without --batch", [*common, "--output", str(root / "mine"), "--cancel"],
             "--cancel and --forget-batch go with --batch"),
            ("--batch with --write-batch", [*common, "--output", str(root / "mine"), "--batch",
             "--write-batch", str(root / "w")], "pass one"),
            ("--batch-max-requests over the API's limit", [*common, "--output", str(root / "mine"),
             "--batch", "--batch-max-requests", "50001"], "--batch-max-requests must be from 1 to 50000"),
            ("--batch at an endpoint with no Batch API", [*common, "--output", str(root / "nobatch"), "--batch",
             "--base-url", engine.base_url.replace("/v1", "/none")], "Does the endpoint have the Batch API?"),
        ])  # fmt: skip
        # --forget-batch is the way past the unknown batch: its requests are sent again
        forgot = run_svit(
            [*common, "--output", str(root / "unknown"), "--batch", *url, "--forget-batch", "batch_lost"]
        )
        assert forgot.returncode == 0, forgot.stderr[-2000:]
        assert json.loads(forgot.stdout)["items"]["done"] == 2


def test_api_key_never_written_by_a_batch_run(tmp_path, monkeypatch, caplog, capsys):
    key = "sk-" + "svitBATCHLEAK0123456789abcdefXYZ"  # a fake, recognisable key
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with FakeOpenAI(CONTENT_FAULTS, api_key=key, batches={"error_rate": 0.2, "expire": (1,)}) as server:
        summary = generate_batch(
            _source(), _config(out, server.base_url, max_images=8), _batch(batch_max_requests=10)
        )
        assert summary["items"]["done"] > 0  # the key was sent and accepted
        stored = [f["content"] for f in server.batches.files.values()]
        written = generate_batch(
            _source(),
            _config(tmp_path / "files", server.base_url, max_images=3),
            BatchSettings(write_batch=tmp_path / "w"),
        )
        monkeypatch.setenv("OPENAI_API_KEY", key[::-1])
        with pytest.raises(FatalAPIError, match="refused the key"):
            generate_batch(_source(), _config(tmp_path / "bad", server.base_url, max_images=1), _batch())
    assert written["session"]["requests_written"] == 12
    texts = [caplog.text, *capsys.readouterr(), *(c.decode() for c in stored)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in (key, key[::-1]):
        assert not any(secret in t for t in texts)


def test_polling_shows_progress_and_backs_off_while_nothing_moves(tmp_path, monkeypatch, caplog):
    pauses = []
    monkeypatch.setattr(batch_module.time, "sleep", pauses.append)  # no real waiting: the pauses are recorded
    caplog.set_level(logging.INFO, logger="svit_dataset.generation.batch_run")
    config = {"tasks": ("referring_qa",), "max_images": 4}
    with FakeOpenAI(batches={"steps": 5}) as server:  # a status step every 5th poll
        settings = _batch(poll_interval=1.0, max_poll_interval=2.0)
        generate_batch(_source(), _config(tmp_path / "out", server.base_url, **config), settings)
    # 1 after a change, then x1.5 while the status stands still, capped at --max-poll-interval
    assert pauses[:4] == [1.0, 1.5, 2.0, 2.0] and pauses[4] == 1.0
    assert "batch batch_0001 (round 1) in_progress: 2 done, 0 failed, 2 pending of 4" in caplog.text
    assert "batch batch_0001 (round 1) completed: 4 done, 0 failed, 0 pending of 4" in caplog.text
