"""Batch files (svit_dataset/generation/batch_files.py): request files split at the Batch API's limits and
written whole or not at all; output and error files read in any order, bad lines counted, never fatal."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from svit_dataset.generation.batch_files import (
    CHAT_COMPLETIONS,
    BatchLimits,
    OutputLine,
    RequestFiles,
    output_line_at,
    read_output_file,
    request_line,
    write_request_files,
)


def body(n: int) -> dict:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": f"scene {n}"}],
        "seed": n,
        "temperature": 1.0,
    }


def test_request_files_split_at_the_line_limit_and_hold_every_request_once(tmp_path):
    requests = [(f"{n}/conversation/1", body(n)) for n in range(7)]
    files = write_request_files(requests, tmp_path, "round-1", BatchLimits(max_lines=3))
    assert [(p.name, n) for p, n in files] == [
        ("round-1-00001.jsonl", 3), ("round-1-00002.jsonl", 3), ("round-1-00003.jsonl", 1)
    ]  # fmt: skip
    lines = [json.loads(line) for path, _ in files for line in path.read_text().splitlines()]
    assert [(x["custom_id"], x["body"]) for x in lines] == requests
    assert {(x["method"], x["url"]) for x in lines} == {("POST", CHAT_COMPLETIONS)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p, _ in files]  # no temp file left


def test_request_files_split_at_the_byte_limit_and_refuse_a_request_larger_than_a_file(tmp_path):
    size = len(request_line("0/conversation/1", body(0)))
    requests = [(f"{n}/conversation/1", body(n)) for n in range(5)]
    files = write_request_files(requests, tmp_path, "r", BatchLimits(max_bytes=2 * size + 1))
    assert [n for _, n in files] == [2, 2, 1]
    assert all(p.stat().st_size <= 2 * size + 1 for p, _ in files)
    with pytest.raises(ValueError, match="0/big/1: .* more than a batch file may hold"):
        write_request_files([("0/big/1", body(0))], tmp_path / "big", "r", BatchLimits(max_bytes=10))


def test_a_round_that_fails_leaves_no_half_file(tmp_path):
    with pytest.raises(RuntimeError), RequestFiles(tmp_path, "r", BatchLimits(max_lines=2)) as files:
        for n in range(3):
            files.add(f"{n}/detail/1", body(n))
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["r-00001.jsonl"]  # the full one; the open one is gone


def _answer(custom_id: str, text: str, status: int = 200) -> dict:
    if status != 200:
        response_body = {"error": {"message": "server overloaded", "type": "server_error"}}
    else:
        response_body = {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        }
    return {
        "id": f"r-{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "body": response_body},
        "error": None,
    }


def test_output_and_error_lines_are_read_in_any_order_and_bad_lines_counted(tmp_path):
    lines = [
        json.dumps(_answer("2/conversation/1", "Q: a?\nA: b.")),
        json.dumps(_answer("1/conversation/1", "", status=500)),  # as an error file holds them
        json.dumps(
            {
                "id": "x",
                "custom_id": "3/detail/1",
                "response": None,
                "error": {"code": "batch_expired", "message": "expired"},
            }
        ),
        "not json at all",
        json.dumps({"id": "y", "response": {"status_code": 200, "body": {}}}),  # no custom_id
        json.dumps(
            {"id": "z", "custom_id": "4/detail/1", "response": {"status_code": 200, "body": {"choices": []}}}
        ),
        json.dumps(_answer("5/detail/1", "A photo.")),
        json.dumps(_answer("6/detail/1", "cut"))[:40],  # the last line, cut short by a kill
    ]
    path = tmp_path / "output.jsonl"
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1])
    problems = Counter()
    read = list(read_output_file(path, problems))
    assert read == [
        OutputLine("2/conversation/1", "Q: a?\nA: b.", "stop", (100, 20), None),
        OutputLine("1/conversation/1", None, None, (0, 0), "HTTP 500: server overloaded", "500"),
        OutputLine("3/detail/1", None, None, (0, 0), "error: expired", "batch_expired"),
        OutputLine("5/detail/1", "A photo.", "stop", (100, 20), None),
    ]
    assert problems == Counter(not_json=1, no_custom_id=1, unreadable_body=1, cut_line=1)
    # an index keeps where each answer is; the answer is read back from there
    assert [output_line_at(path, line.offset, line.length) for line in read] == read
