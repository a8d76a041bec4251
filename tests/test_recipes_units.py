"""The recipe's small pure parts on crafted inputs: concept matching, Yes/No, selections, the mix."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.recipes.concepts import ConceptSet, keys_in_text, score_groups
from svit_dataset.recipes.features import rows_as_batches, task_features
from svit_dataset.recipes.mix import (
    conversation_key,
    kept_llava_records,
    llava_tables,
    turn_text,
)
from svit_dataset.recipes.select import (
    RecipeParams,
    drop_qa_pairs,
    parse_split,
    select,
    split_sizes,
)
from svit_dataset.recipes.yesno import classify_answer, yes_target
from svit_dataset.schema import TASKS

# ---------------------------------------------------------------------------------------------
# Concept matching


@pytest.mark.parametrize(
    "text, keys",
    [
        ("Redo the job.", []),  # "redo" is not "red"
        ("A RED car", ["red"]),  # case-insensitive
        ("red-brown and red's and red\u2019s", ["brown", "red"]),  # hyphen and apostrophes are boundaries
        ("the dog sits in back of the car", ["in back"]),  # two-word key, as one key
        ("in the back", []),  # its words must follow each other
        ("in  back", ["in back"]),  # any separator between them
        ("turn in\nback", ["in back"]),
        ("go in the left direction", ["left direction"]),  # leftmost-longest: not also "left"
        ("left, and the left direction", ["left", "left direction"]),
        ("a medium size box", ["medium size"]),
        ("mediums size; size", []),
        ("plastics, oversized, wooden", ["oversized", "wooden"]),
        ("caf\u00e9red", []),  # a non-ASCII letter stays inside the word
        ("", []),
    ],
)
def test_word_boundary_matching(text, keys):
    assert keys_in_text(text) == sorted(keys)


def test_keys_never_span_two_texts_of_a_sample():
    matcher = ConceptSet.paper().matcher()
    texts = pa.array(["we sat in", "back home", "blue"])
    scores = score_groups(matcher, texts, np.array([0, 0, 1]), 2)
    assert scores.keys.tolist() == [0, 0]  # "in" | "back" are two texts; "blue" is no key of table 4


def test_informativeness_scores_count_distinct_keys_and_concepts():
    matcher = ConceptSet.paper().matcher()
    texts = pa.array(["red red red", "a red wooden box", "two big green wooden chairs", "nothing here"])
    scores = score_groups(matcher, texts, np.arange(4), 4)
    assert scores.keys.tolist() == [1, 2, 4, 0]  # repetition does not count
    assert scores.concepts.tolist() == [1, 2, 4, 0]  # color, material, quantity, size
    assert scores.score("concepts").tolist() == [1, 2, 4, 0]
    two = ConceptSet.paper().keys.index("two")
    assert scores.key_samples[two] == 1


def test_user_concept_set_from_json_and_yaml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"animal": ["dog", "sea lion"], "mood": ["happy"]}))
    (tmp_path / "c.yaml").write_text("animal: [dog, sea lion]\nmood: [happy]\n")
    for name in ("c.json", "c.yaml"):
        concepts = ConceptSet.from_file(tmp_path / name)
        assert keys_in_text("A happy Sea Lion and a dog", concepts) == ["dog", "happy", "sea lion"]
        assert keys_in_text("a red sea", concepts) == []
    (tmp_path / "bad.json").write_text(json.dumps({"animal": "dog"}))
    with pytest.raises(SvitInputError, match="bad.json: expected a mapping of concept name to a list"):
        ConceptSet.from_file(tmp_path / "bad.json")
    (tmp_path / "dup.json").write_text(json.dumps({"a": ["dog"], "b": ["Dog"]}))
    with pytest.raises(SvitInputError, match="listed under both 'a' and 'b'"):
        ConceptSet.from_file(tmp_path / "dup.json")
    (tmp_path / "punct.json").write_text(json.dumps({"a": ["sea-lion"]}))
    with pytest.raises(SvitInputError, match="must be words"):
        ConceptSet.from_file(tmp_path / "punct.json")
    with pytest.raises(SvitInputError, match="not found"):
        ConceptSet.from_file(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# Yes/No


@pytest.mark.parametrize(
    "answer, kind",
    [
        ("Yes, there is a dog.", "yes"),
        ("yes", "yes"),
        ("  No. It is blue.", "no"),
        ('"No," she said', "no"),
        ("Yesterday it rained.", None),
        ("Nobody is there.", None),
        ("It is not red.", None),
        ("There is no dog. Yes.", None),
    ],
)
def test_yes_no_is_told_by_the_first_word_of_the_answer(answer, kind):
    assert classify_answer(answer) == kind


def test_yes_target_is_exact_and_never_above_the_ratio():
    assert yes_target(50, 8) == 400
    assert yes_target(3, 2.5) == 7
    assert yes_target(0, 8) == 0


# ---------------------------------------------------------------------------------------------
# Selections on crafted features


def qa(question, answer):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def features(samples_by_task):
    matcher = ConceptSet.paper().matcher()
    return {
        t: task_features(t, rows_as_batches({"messages": m} for m in rows), matcher)
        for t, rows in samples_by_task.items()
    }


def crafted(n_per_task=40, seed=0):
    """Every task: samples with 1-4 plain QAs and some Yes/No QAs; informativeness varies."""
    rng = np.random.default_rng(seed)
    words = ["red", "wooden", "two", "above", "big", "green", "glass", "left", "small", "three"]
    out = {}
    for t in TASKS:
        rows = []
        for i in range(n_per_task):
            messages = []
            for _ in range(int(rng.integers(1, 5))):
                kind = rng.random()
                k = int(rng.integers(0, len(words)))
                if kind < 0.45:
                    messages += qa(f"Is it {words[k]}?", "Yes, it is.")
                elif kind < 0.5:
                    messages += qa("Is it blue?", "No, it is not.")
                else:
                    messages += qa(f"What is {i}?", " ".join(words[:k]) + " thing.")
            rows.append(messages)
        out[t] = rows
    return out


def test_exact_sizes_and_too_small_inputs_are_reported():
    feats = features(crafted(40))
    sel = select("svit_80k", feats, RecipeParams(per_task=25))
    assert sel.size == 100 and all(r.size == 25 for r in sel.rows.values())
    assert all(np.all(np.diff(r) > 0) and r.max() < 40 for r in sel.rows.values())
    small = select("svit_80k", feats, RecipeParams(per_task=50))
    assert small.size == 160 and small.facts["short"] == {t: 10 for t in TASKS}
    assert "input too small, took all that qualifies" in small.facts["notes"][0]


def test_diversity_keeps_the_more_informative_half_per_task():
    feats = features(crafted(40))
    sel = select("svit_80k_d", feats, RecipeParams(per_task=20))
    for t in TASKS:
        keys = feats[t].info.keys
        kept = sel.rows[t]
        assert kept.size == 20
        dropped = np.setdiff1d(np.arange(40), kept)
        assert keys[kept].min() >= keys[dropped].max()
    assert sel.facts["diversity"]["kept"] == {t: 20 for t in TASKS}


def test_balance_reaches_the_exact_ratio_with_exact_sizes():
    feats = features(crafted(60))
    params = RecipeParams(per_task=30, yes_per_no=2.0, seed=3)
    sel = select("svit_80k_b", feats, params)
    b = sel.facts["balance"]
    assert sel.size == 120 and all(r.size == 30 for r in sel.rows.values())
    yes = sum(int(feats[t].yes[r].sum()) for t, r in sel.rows.items()) - b["yes_qas_dropped"]
    no = sum(int(feats[t].no[r].sum()) for t, r in sel.rows.items())
    assert yes == b["yes_no_after"]["yes"] == yes_target(no, 2.0) and b["reached"]
    assert b["yes_no_before"]["yes"] > yes
    # every dropped QA is a "Yes" QA of a selected sample, and no sample lost all its QAs
    for t, dropped in sel.dropped_qas.items():
        for row, qas in dropped.items():
            assert row in set(sel.rows[t].tolist())
            yes_qas = feats[t].yes_qa_index[feats[t].yes_qa_sample == row].tolist()
            assert set(qas) <= set(yes_qas) and len(qas) < feats[t].n_qas[row]
    # the same seed, the same 80K before balancing as svit_80k
    plain = select("svit_80k", feats, params)
    assert b["samples_emptied"] == b["samples_refilled"]
    if not b["samples_emptied"]:
        assert all(np.array_equal(plain.rows[t], sel.rows[t]) for t in TASKS)


def test_balance_refills_samples_left_without_any_qa():
    yes_only = [qa("Is it red?", "Yes.")] * 6  # single-QA "Yes" samples
    mixed = [qa("Is it red?", "No.") + qa("What?", "A cat.")] * 6
    rows = {t: yes_only + mixed for t in TASKS}
    feats = features(rows)
    sel = select("svit_80k_b", feats, RecipeParams(per_task=8, yes_per_no=0.5, seed=1))
    b = sel.facts["balance"]
    assert sel.size == 32  # exact, with refills from the queue
    assert b["samples_emptied"] >= 1 and b["samples_refilled"] == b["samples_emptied"]
    # Yes-only samples cannot be half undone: Y ends at or below the target, and the report says which
    target = yes_target(b["yes_no_after"]["no"], 0.5)
    assert b["yes_no_after"]["yes"] <= target
    if b["yes_no_after"]["yes"] < target:
        assert not b["reached"] and "emptied samples" in sel.facts["notes"][0]
    # with a second QA in every sample nothing empties, and the ratio is exact
    feats = features({t: [m + qa("And?", "More.") for m in yes_only] + mixed for t in TASKS})
    sel = select("svit_80k_b", feats, RecipeParams(per_task=8, yes_per_no=0.5, seed=1))
    b = sel.facts["balance"]
    assert b["reached"] and b["yes_no_after"]["yes"] == yes_target(b["yes_no_after"]["no"], 0.5)


def test_core_150k_split_and_determinism_per_seed():
    feats = features(crafted(80))
    params = RecipeParams(
        core_size=90,
        core_split=parse_split("conversation=2,complex_reasoning=1,referring_qa=1,detail_description=2"),
        seed=5,
    )
    a, b = select("core_150k", feats, params), select("core_150k", feats, params)
    assert {t: r.size for t, r in a.rows.items()} == {
        "conversation": 30,
        "complex_reasoning": 15,
        "referring_qa": 15,
        "detail_description": 30,
    }
    assert all(np.array_equal(a.rows[t], b.rows[t]) for t in TASKS) and a.dropped_qas == b.dropped_qas
    other = select("core_150k", feats, RecipeParams(core_size=90, core_split=params.core_split, seed=6))
    assert any(not np.array_equal(a.rows[t], other.rows[t]) for t in TASKS)
    assert split_sizes(157_712, {t: 1.0 for t in TASKS}) == {t: 39_428 for t in TASKS}
    assert (
        sum(split_sizes(10, {"conversation": 1, "referring_qa": 1, "detail_description": 1}).values()) == 10
    )


def test_recipe_params_are_checked():
    with pytest.raises(SvitInputError, match="--yes-per-no"):
        RecipeParams(yes_per_no=0)
    with pytest.raises(SvitInputError, match="--core-split"):
        RecipeParams(core_split=parse_split("conversations=1"))
    with pytest.raises(SvitInputError, match="not task=weight"):
        parse_split("conversation")
    with pytest.raises(SvitInputError, match="--informativeness"):
        RecipeParams(informativeness="words")


def test_drop_qa_pairs_removes_question_and_answer():
    messages = qa("q0", "a0") + qa("q1", "a1") + qa("q2", "a2")
    assert [m["content"] for m in drop_qa_pairs(messages, (0, 2))] == ["q1", "a1"]


# ---------------------------------------------------------------------------------------------
# The LLaVA pair


def test_mix_replaces_exactly_the_instruct_records(tmp_path):
    def turns(q, a, image_first=True):
        first = f"<image>\n{q}" if image_first else f"{q}\n<image>"
        return [{"from": "human", "value": first}, {"from": "gpt", "value": a}]

    instruct = [
        {"id": "000000000001", "image": "000000000001.jpg", "conversations": turns("What is it?", "A cat.")},
        {
            "id": "000000000001",
            "image": "000000000001.jpg",
            "conversations": turns("Describe it.", "A long text."),
        },
        {"id": "000000000002", "image": "000000000002.jpg", "conversations": turns("Why?", "Because.")},
        {"id": "000000000003", "image": "000000000003.jpg", "conversations": turns("Where?", "Here.")},
    ]
    mix = [
        {**instruct[0], "image": "coco/train2017/000000000001.jpg"},
        # the same instruct record with <image> moved: still an instruct record
        {
            **instruct[1],
            "image": "coco/train2017/000000000001.jpg",
            "conversations": turns("Describe it.", "A long text.", False),
        },
        # an instruct id with another conversation (e.g. VQA on the same COCO image): kept
        {
            "id": "000000000002",
            "image": "coco/train2017/000000000002.jpg",
            "conversations": turns("Color?", "Red"),
        },
        {
            "id": "000000000002",
            "image": "coco/train2017/000000000002.jpg",
            "conversations": turns("Why?", "Because."),
        },
        {"id": "tx1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"id": "gq", "image": "gqa/images/7.jpg", "conversations": turns("Is it on?", "yes")},
    ]
    (tmp_path / "instruct.json").write_text(json.dumps(instruct))
    (tmp_path / "mix.json").write_text(json.dumps(mix, indent=1))
    counts: dict = {}
    kept = list(kept_llava_records(tmp_path / "mix.json", tmp_path / "instruct.json", counts))
    assert counts["replaced"] == 3 and counts["kept_llava"] == 3
    assert counts["same_id_other_conversation"] == 1 and counts["instruct_not_found_in_mix"] == 1
    assert [row_id for _, row_id in kept] == ["000000000002", "tx1", "gq"]
    # a malformed record is counted, and past the threshold the file is refused
    (tmp_path / "bad.json").write_text(
        json.dumps([*mix, {"id": "x", "conversations": [{"from": "bot", "value": "?"}]}])
    )
    with pytest.raises(SvitFormatError, match="1 of 7 records are malformed"):
        list(kept_llava_records(tmp_path / "bad.json", tmp_path / "instruct.json", {}))
    counts = {}
    list(kept_llava_records(tmp_path / "bad.json", tmp_path / "instruct.json", counts, max_bad_fraction=0.5))
    assert counts["malformed"] == 1


def test_mix_finds_an_instruct_record_whose_image_token_moved_to_the_last_turn(tmp_path):
    """The quick look-up and the full key normalise turns alike (`turn_text`)."""
    instruct = [
        {
            "id": "7",
            "image": "000000000007.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat?"},
                {"from": "gpt", "value": "A dog."},
            ],
        }
    ]
    moved = [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A dog.\n<image>"}]
    mix = [{**instruct[0], "image": "coco/train2017/000000000007.jpg", "conversations": moved}]
    (tmp_path / "instruct.json").write_text(json.dumps(instruct))
    (tmp_path / "mix.json").write_text(json.dumps(mix))
    assert conversation_key(mix[0]) == conversation_key(instruct[0])
    counts: dict = {}
    assert list(kept_llava_records(tmp_path / "mix.json", tmp_path / "instruct.json", counts)) == []
    assert counts["replaced"] == 1 and counts["instruct_not_found_in_mix"] == 0


def test_llava_rows_apply_turn_text_to_every_turn():
    values = ["<image>\n Hi\u3000", "\x1cok <image>", " <image> ", "a<image>b"]
    record = {
        "id": "1",
        "image": "gqa/images/5.jpg",
        "conversations": [{"from": f, "value": v} for f, v in zip(["human", "gpt"] * 2, values, strict=True)],
    }
    (table,) = llava_tables([(record, "1"), ({"conversations": record["conversations"][:2]}, "t")])
    rows = table.to_pylist()
    assert (
        [m["content"] for m in rows[0]["messages"]]
        == [turn_text(v) for v in values]
        == ["Hi", "ok", "", "ab"]
    )
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"] * 2
    assert (rows[0]["source"], rows[0]["image_id"], rows[1]["source"], rows[1]["image_path"]) == (
        "gqa",
        5,
        "text",
        "",
    )
