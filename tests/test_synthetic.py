"""The synthetic release-format corpus: exact counts, exact means, valid JSON and boxes, determinism."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from svit_dataset.errors import SvitInputError
from svit_dataset.schema import COMPLEX_REASONING, CONVERSATION, DETAIL_DESCRIPTION, REFERRING_QA, TASKS
from tools.synthetic import CONCEPT_WORDS, CorpusSpec, main, write_corpus

GROUNDED = re.compile(r"<st>([^<]+)<ed> ((?:\[[^\]]*\](?:, )?)+)")
BOX = re.compile(r"\[([0-9.]+), ([0-9.]+), ([0-9.]+), ([0-9.]+)\]")
# Upstream's expand_to_square regex: our boxes must be found by it.
UPSTREAM_BOX = re.compile(r"\[[0-9.]+, [0-9.]+, [0-9.]+, [0-9.]+\]")
FILES = [f"{t}.json" for t in TASKS] + ["image_data.json", "test_image_ids.txt"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[CorpusSpec, Path, dict, dict]:
    spec = CorpusSpec(scale=0.01, seed=3)
    out = tmp_path_factory.mktemp("synthetic")
    summary = write_corpus(spec, out, workers=1)
    data = {t: json.loads((out / f"{t}.json").read_text()) for t in TASKS}
    return spec, out, summary, data


def qa_pairs(records: list[dict]):
    for record in records:
        for conversation in record["conversations"]:
            turns = conversation["content"]
            for q, a in zip(turns[::2], turns[1::2], strict=True):
                yield q["value"], a["value"]


def test_files_and_record_shape(corpus):
    spec, out, _, data = corpus
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no .tmp left behind
    for task, records in data.items():
        assert isinstance(records, list)
        for record in records:
            assert set(record) == {"image_id", "conversations"} and isinstance(record["image_id"], int)
            for conversation in record["conversations"]:
                assert set(conversation) == {"content"}
                speakers = [turn["from"] for turn in conversation["content"]]
                assert speakers == ["user", "gpt"] * (len(speakers) // 2) and speakers, task
                assert all(set(turn) == {"from", "value"} for turn in conversation["content"])
                assert all("<image>" not in turn["value"] for turn in conversation["content"])


def test_exact_counts_and_grouping(corpus):
    spec, _, summary, data = corpus
    for task in TASKS:
        n_qas = sum(1 for _ in qa_pairs(data[task]))
        assert n_qas == spec.qa_count(task) == summary["tasks"][task]["qas"], task
        assert len(data[task]) == summary["tasks"][task]["records"]
    n = spec.n_images
    assert all(len(data[t]) == n for t in (CONVERSATION, COMPLEX_REASONING, REFERRING_QA))
    assert len(data[DETAIL_DESCRIPTION]) == spec.n_detail < n
    # Conversations: 3 per image, mostly 5 QAs, some 4 and some 6.
    sizes = Counter(len(c["content"]) // 2 for r in data[CONVERSATION] for c in r["conversations"])
    assert all(len(r["conversations"]) == 3 for r in data[CONVERSATION])
    assert sizes.most_common(1)[0][0] == 5 and sizes[4] > 0 and sizes[6] > 0
    for task in (COMPLEX_REASONING, REFERRING_QA, DETAIL_DESCRIPTION):
        assert all(len(r["conversations"]) == 1 for r in data[task])
    assert all(len(r["conversations"][0]["content"]) == 2 for r in data[DETAIL_DESCRIPTION])
    ids = [r["image_id"] for r in data[CONVERSATION]]
    assert len(set(ids)) == n and all(1 <= i <= 2_420_000 for i in ids)
    for task in TASKS:
        assert {r["image_id"] for r in data[task]} <= set(ids)


def test_means_match_the_paper(corpus):
    spec, _, summary, data = corpus
    targets = {
        CONVERSATION: (spec.conversation_question_words, spec.conversation_answer_words),
        COMPLEX_REASONING: (spec.complex_reasoning_question_words, spec.complex_reasoning_answer_words),
        REFERRING_QA: (spec.referring_question_words, spec.referring_answer_words),
        DETAIL_DESCRIPTION: (None, spec.detail_answer_words),
    }
    for task, (q_mean, a_mean) in targets.items():
        pairs = list(qa_pairs(data[task]))
        q_words = sum(len(q.split()) for q, _ in pairs)
        a_words = sum(len(a.split()) for _, a in pairs)
        assert (q_words, a_words) == (
            summary["tasks"][task]["question_words"],
            summary["tasks"][task]["answer_words"],
        ), task
        if q_mean is not None:
            assert abs(q_words / len(pairs) - q_mean) < 0.05, task
        assert abs(a_words / len(pairs) - a_mean) < 0.05, task


def test_questions_and_yes_no_balance(corpus):
    _, _, summary, data = corpus
    pairs = [p for t in (CONVERSATION, COMPLEX_REASONING) for p in qa_pairs(data[t])]
    assert all(q.endswith("?") for t in TASKS for q, _ in qa_pairs(data[t]))
    assert all(a.endswith(".") for t in TASKS for _, a in qa_pairs(data[t]))
    first_words = Counter(q.split()[0] for q, _ in pairs)
    assert {"What", "How", "Is", "Can", "Where", "Why", "Are", "Which", "Describe"} <= set(first_words)
    yes = sum(a.startswith("Yes") for _, a in pairs)
    no = sum(a.startswith("No") for _, a in pairs)
    assert 0.06 < (yes + no) / len(pairs) < 0.09
    assert 12 < yes / no < 35
    assert yes + no == sum(summary["tasks"][t]["yes_no_qas"] for t in (CONVERSATION, COMPLEX_REASONING))
    assert not any(a.startswith(("Yes", "No")) for _, a in qa_pairs(data[REFERRING_QA]))


def test_referring_boxes(corpus):
    _, _, _, data = corpus
    questions_with_objects = 0
    for q, a in qa_pairs(data[REFERRING_QA]):
        objects = GROUNDED.findall(a)
        assert 1 <= len(objects) <= 3, a
        questions_with_objects += bool(GROUNDED.findall(q))
        for text in (q, a):
            boxes = BOX.findall(text)
            assert len(boxes) == len(UPSTREAM_BOX.findall(text)) == text.count("[")
            for box in boxes:
                assert all(len(v.split(".")[1]) == 3 for v in box)
                x1, y1, x2, y2 = map(float, box)
                assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert " [" in text or "[" not in text
    n = len(list(qa_pairs(data[REFERRING_QA])))
    assert 0.4 < questions_with_objects / n < 0.6


def test_concept_words_vary(corpus):
    _, _, _, data = corpus
    keys = {w for words in CONCEPT_WORDS.values() for w in words if " " not in w}

    def hits(text: str) -> int:
        return sum(w.strip(".,?").lower() in keys for w in text.split())

    scores = [hits(a) / len(a.split()) for _, a in qa_pairs(data[COMPLEX_REASONING])]
    share_hit = sum(s > 0 for s in scores) / len(scores)
    assert 0.5 < share_hit < 0.99
    ranked = sorted(scores)
    assert ranked[len(ranked) // 4] < ranked[3 * len(ranked) // 4]  # informativeness spreads
    text = " ".join(a for _, a in qa_pairs(data[DETAIL_DESCRIPTION])).lower()
    for word in (
        "red",
        "blue",
        "wooden",
        "metal",
        "left",
        "right",
        "in back",
        "above",
        "large",
        "small",
        "two",
    ):
        assert word in text


def test_image_files(corpus):
    spec, out, summary, data = corpus
    images = json.loads((out / "image_data.json").read_text())
    assert [r["image_id"] for r in images] == [r["image_id"] for r in data[CONVERSATION]]
    assert all(set(r) == {"image_id", "width", "height"} for r in images)
    shapes = Counter((r["width"] > r["height"]) - (r["width"] < r["height"]) for r in images)
    assert shapes[1] > shapes[-1] > shapes[0] > 0  # wide, tall, square
    test_ids = [int(line) for line in (out / "test_image_ids.txt").read_text().split()]
    assert len(test_ids) == len(set(test_ids)) == round(0.1 * spec.n_images) == summary["test_images"]
    assert set(test_ids) <= {r["image_id"] for r in images}


def test_deterministic_and_worker_independent(tmp_path):
    spec = CorpusSpec(scale=0.001, seed=11)
    write_corpus(spec, tmp_path / "a", workers=1)
    write_corpus(spec, tmp_path / "b", workers=2)
    write_corpus(CorpusSpec(scale=0.001, seed=12), tmp_path / "c", workers=1)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name


@pytest.mark.parametrize("scale", [0.0001, 1e-5])
def test_tiny_scales_keep_exact_counts(tmp_path, scale):
    spec = CorpusSpec(scale=scale)
    summary = write_corpus(spec, tmp_path, workers=1)
    for task in TASKS:
        records = json.loads((tmp_path / f"{task}.json").read_text())
        assert sum(1 for _ in qa_pairs(records)) == spec.qa_count(task) == summary["tasks"][task]["qas"]


def test_bad_scale_is_refused():
    for scale in (0, -0.5, 1.5, 1e-6):
        with pytest.raises(SvitInputError):
            CorpusSpec(scale=scale)


def test_cli(tmp_path, capsys):
    assert main([str(tmp_path), "--scale", "0.0002", "--seed", "5", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == round(108_077 * 0.0002)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
