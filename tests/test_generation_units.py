"""Generation: the pure parts (readers, prompts, budget, parsing, checks, limiter, ledger, prices)."""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from pathlib import Path

import pytest

from svit_dataset import bundled
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import write_json_atomic
from svit_dataset.generation import client as generation_client
from svit_dataset.generation.annotations import (
    Scene,
    iter_scenes_jsonl,
    iter_vg_scenes,
    select_images,
    write_scenes_jsonl,
)
from svit_dataset.generation.client import (
    ChatClient,
    ClientSettings,
    RateLimiter,
    redact,
    retry_after_seconds,
)
from svit_dataset.generation.ledger import KeyState, Ledger, merged_states, scan
from svit_dataset.generation.output import (
    _write_task_file,
    collect_outputs,
    cost_usd,
    load_prices,
    price_for,
)
from svit_dataset.generation.parse import (
    MALFORMED,
    TOO_FEW_PAIRS,
    check_shape,
    parse_conversations,
    parse_pairs,
)
from svit_dataset.generation.prompts import (
    PromptOverBudget,
    build_prompt,
    detail_instruction,
    fit_to_budget,
    load_templates,
    prompt_tokens,
    render_scene,
)
from svit_dataset.generation.run import GenerationConfig
from svit_dataset.generation.verify import (
    BOX_MATCHES_NOTHING,
    FAILED_GENERATION,
    SOURCE_MENTION,
    TRUNCATED,
    UNBALANCED_TAGS,
    UNGROUNDED,
    judge_response,
)
from svit_dataset.release import MalformedTally
from svit_dataset.schema import TASKS

# --- annotations ----------------------------------------------------------------------------------


def _write_vg(folder, objects_order=(1, 2, 3)):
    images = [
        {"image_id": 1, "width": 100, "height": 200, "url": "https://x/VG_100K/1.jpg", "coco_id": 11},
        {"image_id": 2, "width": 50, "height": 50, "url": "https://x/VG_100K_2/2.jpg", "coco_id": None},
        {"image_id": 3, "width": 10, "height": 10, "url": "https://x/VG_100K/3.jpg", "coco_id": 33},
    ]
    objects = {
        1: [{"object_id": 1, "x": 10, "y": 20, "w": 30, "h": 40, "names": ["man"]}] * 2,  # a duplicate
        2: [{"object_id": 2, "x": 40, "y": 40, "w": 20, "h": 20, "name": "dog"}],  # v1.0 `name`, overflows
        3: [{"object_id": 3, "x": "bad"}],
    }
    (folder / "image_data.json").write_text(json.dumps(images))
    (folder / "objects.json").write_text(
        json.dumps([{"image_id": i, "objects": objects[i]} for i in objects_order])
    )
    regions = [
        {"id": 1, "regions": [{"phrase": "a  man walking", "x": 0, "y": 0, "width": 100, "height": 100}]},
        {"id": 2, "regions": []},
    ]  # image 3 has no entry
    (folder / "region_descriptions.json").write_text(json.dumps(regions))
    captions = {
        "images": [],
        "annotations": [
            {"image_id": 11, "caption": "A man walks."},
            {"image_id": 99, "caption": "Another image."},
            {"image_id": 11, "caption": " A man\nin a park. "},
        ],
    }
    (folder / "captions.json").write_text(json.dumps(captions))


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 2, 1)])
def test_vg_reader_joins_normalizes_and_links_coco(tmp_path, order):
    _write_vg(tmp_path, order)
    counts: dict = {}
    scenes = list(iter_vg_scenes(tmp_path, [tmp_path / "captions.json"], counts=counts))
    assert [s.image_id for s in scenes] == [1, 2, 3]
    one, two, three = scenes
    assert one.captions == ("A man walks.", "A man in a park.")
    assert one.objects == (("man", (0.1, 0.1, 0.4, 0.3)),)  # pixel x,y,w,h -> [0,1]; duplicate dropped
    assert one.regions == (("a man walking", (0.0, 0.0, 1.0, 0.5)),)
    assert two.image_path == "VG_100K_2/2.jpg" and two.captions == ()
    assert two.objects == (("dog", (0.8, 0.8, 1.0, 1.0)),)  # clamped to the image
    assert three.objects == () and three.regions == ()
    assert counts["bad_objects"] == 1 and counts["without_regions"] == 1 and counts["with_captions"] == 1


def test_vg_reader_selection_and_errors(tmp_path):
    _write_vg(tmp_path)
    scenes = list(iter_vg_scenes(tmp_path, wanted=lambda i: i != 1, max_images=1))
    assert [s.image_id for s in scenes] == [2]
    (tmp_path / "objects.json").unlink()
    with pytest.raises(SvitInputError, match="missing objects.json"):
        list(iter_vg_scenes(tmp_path))


def test_bundled_annotations_give_scenes_with_captions():
    scenes = list(
        iter_vg_scenes(bundled.ANNOTATIONS_DIR, [bundled.ANNOTATIONS_DIR / "captions_train2017.json"])
    )
    assert len(scenes) == 36
    assert sum(bool(s.captions) for s in scenes) == 24
    assert all(s.objects and s.regions for s in scenes)


def test_scenes_jsonl_round_trip_and_bad_lines(tmp_path):
    scene = Scene(
        7,
        640,
        480,
        "VG_100K/7.jpg",
        ("A cat.",),
        (("cat", (0.1, 0.2, 0.3, 0.4)),),
        (("a cat", (0, 0, 1, 1)),),
    )
    path = tmp_path / "scenes.jsonl"
    write_scenes_jsonl([scene], path)
    assert list(iter_scenes_jsonl(path)) == [scene]
    with open(path, "a") as f:
        f.write('{"image_id": 8, "objects": [{"name": "dog", "box": [10, 20, 30, 40]}]}\n')
        f.write("not json\n")
    tally = MalformedTally(path, max_fraction=1.0)
    assert [s.image_id for s in iter_scenes_jsonl(path, tally)] == [7]
    assert tally.malformed == 2 and "normalized" in tally.first
    with pytest.raises(SvitFormatError, match="scenes.jsonl"):
        list(iter_scenes_jsonl(path, MalformedTally(path, max_fraction=0.1)))


# --- prompts --------------------------------------------------------------------------------------


def test_paper_templates_verbatim_and_versioned():
    t = load_templates()
    assert t.version.startswith("paper-v1@")
    assert len(t.detail_instructions) == 34
    assert t.detail_instructions[0] == "Can you provide a comprehensive description of the image?"
    assert t.detail_instructions[-1] == "Disclose every detail you see in the image."
    assert (
        "Design three conversations between you and a person asking about this image."
        in t.system["conversation"]
    )
    assert (
        'In the conversation, you are called "GPT". The person talking with you is called "User".'
        in t.system["conversation"]
    )
    assert (
        "Create 15 plausible question and answer pairs about the image with provided information."
        in t.system["complex_reasoning"]
    )
    assert (
        "The task is creating 10 question and answer pairs of specific regions in the image"
        in t.system["referring_qa"]
    )
    assert '"<st>man<ed>[x1, y1, x2, y2]"' in t.system["referring_qa"]
    assert "Only describe the things that you are sure about." in t.system["detail_description"]
    for task in ("complex_reasoning", "referring_qa"):
        assert t.system[task].endswith("Desired format: Question: ... Answer: ... Question: ... Answer: ...")
    # the instruction is fixed by (seed, image)
    assert detail_instruction(t, 5, 0) == detail_instruction(t, 5, 0)
    assert len({detail_instruction(t, i, 0) for i in range(200)}) > 20


def test_user_templates(tmp_path):
    for task in TASKS:
        (tmp_path / f"{task}.txt").write_text(f"my {task} prompt")
    with pytest.raises(SvitInputError, match="detail_instructions.txt"):
        load_templates(tmp_path)
    (tmp_path / "detail_instructions.txt").write_text("Describe it.\n")
    first = load_templates(tmp_path)
    assert first.system["conversation"] == "my conversation prompt"
    (tmp_path / "conversation.txt").write_text("edited")
    assert load_templates(tmp_path).version != first.version


SCENE = Scene(
    1,
    100,
    100,
    "VG_100K/1.jpg",
    ("A man and a dog.",),
    (("man", (0.1, 0.1, 0.5, 0.9)), ("dog", (0.6, 0.5, 0.9, 0.9)), ("leash", (0.45, 0.5, 0.62, 0.6))),
    (
        ("a man walking", (0.1, 0.1, 0.5, 0.9)),
        ("tiny spot", (0.0, 0.0, 0.01, 0.01)),
        ("whole park", (0, 0, 1, 1)),
    ),
)


def test_render_has_region_boxes_only_for_referring():
    t = load_templates()
    ref = build_prompt(SCENE, "referring_qa", t, 6000)
    conv = build_prompt(SCENE, "conversation", t, 6000)
    assert ref.messages[0] == {"role": "system", "content": t.system["referring_qa"]}
    assert "a man walking: [0.100, 0.100, 0.500, 0.900]" in ref.messages[1]["content"]
    user = conv.messages[1]["content"]
    assert "\na man walking\n" in user and "man: [0.100, 0.100, 0.500, 0.900]" in user
    assert user.startswith("(1) captions:\nA man and a dog.\n\n(2) objects:\n")
    assert ref.trimmed == {} and ref.prompt_tokens == prompt_tokens(
        t.system["referring_qa"], ref.messages[1]["content"]
    )


def test_budget_drops_small_regions_then_small_objects_keeping_order():
    system = "s" * 40
    full = prompt_tokens(system, render_scene(SCENE, True))
    # one token short: the smallest region goes first
    shown, trimmed = fit_to_budget(SCENE, system, full - 1, True)
    assert trimmed == {"regions": 1}
    assert [p for p, _ in shown.regions] == ["a man walking", "whole park"]
    # no room for any region: then objects, smallest first, order kept
    bare = prompt_tokens(
        system, render_scene(Scene(1, 1, 1, "", SCENE.captions, SCENE.objects[:2], ()), True)
    )
    shown, trimmed = fit_to_budget(SCENE, system, bare, True)
    assert trimmed == {"regions": 3, "objects": 1}
    assert [n for n, _ in shown.objects] == ["man", "dog"]
    assert prompt_tokens(system, render_scene(shown, True)) <= bare
    captions_only = prompt_tokens(system, render_scene(Scene(1, 1, 1, "", SCENE.captions), True))
    assert fit_to_budget(SCENE, system, captions_only, True)[1] == {"regions": 3, "objects": 3}
    with pytest.raises(PromptOverBudget, match="max-prompt-tokens"):
        fit_to_budget(SCENE, system, captions_only - 1, True)


# --- parsing --------------------------------------------------------------------------------------

CONVERSATIONS = "\n".join(
    [
        f"Conversation {c}:\nTopic: topic {c}\n"
        + "\n".join(f"User: q{c}{k}?\nGPT: a{c}{k}." for k in range(5))
        for c in (1, 2, 3)
    ]
)


def test_parse_conversations_and_shape():
    parsed = parse_conversations(CONVERSATIONS)
    assert [c.topic for c in parsed.conversations] == ["topic 1", "topic 2", "topic 3"]
    assert parsed.conversations[1].pairs[4] == ("q24?", "a24.")
    problem, shaped = check_shape("conversation", parsed)
    assert problem is None and shaped.pairs == 15
    # markdown decorations, no headers
    md = "\n".join(
        f"**Topic:** t{c}\n" + "\n".join(f"- **User:** q{k}\n- **GPT:** a{k}\nmore a{k}" for k in range(5))
        for c in range(3)
    )
    parsed = parse_conversations(md)
    assert len(parsed.conversations) == 3 and parsed.conversations[0].pairs[0] == ("q0", "a0\nmore a0")
    short = CONVERSATIONS.rsplit("User:", 1)[0]
    assert check_shape("conversation", parse_conversations(short))[0] == TOO_FEW_PAIRS


def test_parse_pairs_variants():
    text = "\n\n".join(f"{k + 1}. Question {k + 1}: q{k}?\nAnswer: a{k}." for k in range(16))
    parsed = parse_pairs(text)
    assert parsed.pairs == 16 and parsed.conversations[0].pairs[3] == ("q3?", "a3.")
    problem, shaped = check_shape("complex_reasoning", parsed)
    assert problem is None and shaped.pairs == 15  # cut to the asked count
    stray = "Answer: orphan\nQuestion: q\nQuestion: q2\nAnswer: a2"
    assert parse_pairs(stray).pairs == 1 and parse_pairs(stray).stray == 2
    assert check_shape("referring_qa", parse_pairs("Question: q\nAnswer: a"))[0] == TOO_FEW_PAIRS
    empty_answer = "\n".join(f"Question: q{k}\nAnswer: {'' if k == 3 else 'a'}" for k in range(10))
    assert check_shape("referring_qa", parse_pairs(empty_answer))[0] == MALFORMED


# --- checks ---------------------------------------------------------------------------------------


def _referring(answer_box="[0.100, 0.100, 0.500, 0.900]"):
    pairs = [
        f"Question: Where is the <st>dog<ed> [0.600, 0.500, 0.900, 0.900]?\nAnswer: Near the <st>man<ed> {answer_box}."
        for _ in range(10)
    ]
    return "\n".join(pairs)


def test_judge_grounding_against_scene_boxes():
    assert judge_response("referring_qa", _referring(), "stop", SCENE, 0.5)[0] is None
    # a region box counts too, and a near copy passes the IoU threshold
    assert (
        judge_response("referring_qa", _referring("[0.000, 0.000, 1.000, 1.000]"), "stop", SCENE, 0.5)[0]
        is None
    )
    assert judge_response("referring_qa", _referring("[0.12, 0.1, 0.5, 0.88]"), "stop", SCENE, 0.5)[0] is None
    reason, detail, _ = judge_response("referring_qa", _referring("[0.7, 0.0, 0.8, 0.1]"), "stop", SCENE, 0.5)
    assert reason == BOX_MATCHES_NOTHING and "best IoU" in detail
    no_box = _referring().replace("<st>man<ed> [0.100, 0.100, 0.500, 0.900]", "<st>man<ed>")
    assert judge_response("referring_qa", no_box, "stop", SCENE, 0.5)[0] == UNGROUNDED
    plain = "\n".join("Question: Where?\nAnswer: There." for _ in range(10))
    assert judge_response("referring_qa", plain, "stop", SCENE, 0.5)[0] == UNGROUNDED
    broken = _referring().replace("<ed> [0.6", " [0.6", 1)
    assert judge_response("referring_qa", broken, "stop", SCENE, 0.5)[0] == UNBALANCED_TAGS


@pytest.mark.parametrize(
    "text",
    [
        "According to the captions, a man walks.",
        "The bounding box shows a dog.",
        "Based on the region descriptions, it is a park.",
        "From the given information, the man is tall.",
        'The "objects" list has a dog.',
    ],
)
def test_source_mentions_are_caught(text):
    response = "\n".join(f"Question: q{k}?\nAnswer: {text if k == 4 else 'fine.'}" for k in range(15))
    assert judge_response("complex_reasoning", response, "stop", SCENE, 0.5)[0] == SOURCE_MENTION


def test_clean_text_passes_and_failures_are_named():
    clean = "\n".join(
        f"Question: Why is the man smiling {k}?\nAnswer: The sign on the description board says hello."
        for k in range(15)
    )
    assert judge_response("complex_reasoning", clean, "stop", SCENE, 0.5)[0] is None
    assert judge_response("complex_reasoning", clean, "length", SCENE, 0.5)[0] == TRUNCATED
    refusal = "It seems like your message is empty. Could you share the details?"
    assert judge_response("detail_description", refusal, "stop", SCENE, 0.5)[0] == FAILED_GENERATION
    reason, _, shaped = judge_response(
        "detail_description", "Description: A man walks a dog.", "stop", SCENE, 0.5
    )
    assert reason is None and shaped.conversations[0].pairs == [("", "A man walks a dog.")]


# --- client helpers, limiter ----------------------------------------------------------------------


def test_retry_after_and_redact():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 0 <= retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1e-9
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None
    secret = "my-very-secret-token"
    assert redact(f"bad key {secret} and sk-proj-ABCDEFGH12345678", [secret]) == "bad key *** and ***"


class LateClock:
    """`time.monotonic` and `asyncio.sleep` for the rate limiter, on a clock of the test's own: every sleep ends
    `lag` seconds late, as on a busy event loop, whatever the machine's load really is."""

    def __init__(self, lag: float):
        self.now, self.lag = 0.0, lag

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.lag


@pytest.mark.parametrize("lag", [0.0, 0.004, 0.009])
def test_rate_limiter_holds_the_rate(monkeypatch, lag):
    """100 per second: 101 admissions take 1 s (the first and the tolerance's one are free), never sooner; a
    wake-up up to the tolerance (10 ms) late is absorbed, not added up."""
    clock = LateClock(lag)
    monkeypatch.setattr(generation_client, "time", clock)
    monkeypatch.setattr(generation_client.asyncio, "sleep", clock.sleep)
    limiter, admitted = RateLimiter(6000), []

    async def admit():
        await limiter.acquire()
        admitted.append(clock.now)

    async def burst(n):
        await asyncio.gather(*(admit() for _ in range(n)))

    asyncio.run(burst(102))
    assert all(at >= (k - 1) * 0.01 - 1e-9 for k, at in enumerate(admitted))  # never ahead of the rate
    assert 0.95 <= admitted[-1] <= 1.1 and admitted[-1] == pytest.approx(1.0 + lag)
    with pytest.raises(SvitInputError):
        RateLimiter(0)


def test_rate_limiter_holds_the_rate_on_the_real_clock():
    """The same burst on the event loop's own clock: never faster (a busy machine can only make it slower)."""

    async def burst(limiter, n):
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(n)))
        return time.monotonic() - start

    assert asyncio.run(burst(RateLimiter(6000), 102)) >= 0.95


# --- ledger, prices -------------------------------------------------------------------------------


def test_ledger_resume_points_and_torn_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.append(
        {"t": "attempt", "key": "1/conversation", "attempt": 1, "usage": [10, 5], "reason": "captions"}
    )
    ledger.append(
        {"t": "done", "key": "2/conversation", "attempts": 1, "usage": [10, 5], "record": {"image_id": 2}}
    )
    ledger.append(
        {"t": "failed", "key": "3/conversation", "attempts": 0, "usage": [0, 0], "reason": "api_error"}
    )
    ledger.append(
        {"t": "failed", "key": "4/conversation", "attempts": 3, "usage": [9, 9], "reason": "source_mention"}
    )
    ledger.close()
    with open(path, "ab") as f:
        f.write(b'{"t": "done", "key": "1/conv')  # killed mid-write
    reopened = Ledger(path)
    assert path.read_bytes().endswith(b"\n")  # the torn line was cut
    assert reopened.resume_point("1/conversation") == (1, (10, 5))
    assert reopened.is_final("2/conversation") and reopened.is_final("4/conversation")
    assert not reopened.is_final("3/conversation")  # api errors are retried by the next run
    assert reopened.resume_point("9/conversation") == (0, (0, 0))
    reopened.close()
    path.write_text('{"t": "done"}\n')
    with pytest.raises(SvitFormatError, match="not a ledger line"):
        scan(path)


def test_prices(tmp_path):
    table = load_prices()
    assert price_for("gpt-4o-mini-2024-07-18", table)[0] == "gpt-4o-mini"
    assert price_for("llama-3-70b", table) is None
    custom = tmp_path / "p.json"
    custom.write_text(json.dumps({"models": {"llama-3": {"input": 1, "output": 2}}}))
    assert price_for("llama-3-70b", load_prices(custom)) == ("llama-3", {"input": 1.0, "output": 2.0})
    assert cost_usd(1_000_000, 500_000, {"input": 1.0, "output": 2.0}) == 2.0
    custom.write_text("{}")
    with pytest.raises(SvitFormatError, match="models"):
        load_prices(custom)


def test_ledger_keeps_the_judgement_of_attempt_lines(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    line = {"t": "attempt", "key": "1/referring_qa", "attempt": 3, "usage": [9, 9]}
    ledger.append({**line, "reason": "box_matches_nothing", "detail": "box 1 matches nothing"})
    assert ledger.last_judgement("1/referring_qa") == ("box_matches_nothing", "box 1 matches nothing")
    ledger.close()
    state = scan(path)["1/referring_qa"]
    assert (state.status, state.reason, state.detail) == (
        "attempt",
        "box_matches_nothing",
        "box 1 matches nothing",
    )
    assert Ledger(path).last_judgement("1/referring_qa") == ("box_matches_nothing", "box 1 matches nothing")


@pytest.mark.parametrize("failed_first", [True, False])
def test_merged_states_done_in_one_shard_beats_failed_in_another(tmp_path, failed_first):
    failed = {
        "t": "failed",
        "key": "1/conversation",
        "attempts": 3,
        "usage": [9, 9],
        "reason": "source_mention",
    }
    done = {"t": "done", "key": "1/conversation", "attempts": 1, "usage": [3, 3], "record": {"image_id": 1}}
    attempt = {"t": "attempt", "key": "2/conversation", "attempt": 1, "usage": [1, 1], "reason": "x"}
    failed2 = {"t": "failed", "key": "2/conversation", "attempts": 3, "usage": [5, 5], "reason": "x"}
    names = ["ledger.jsonl", "ledger.shard-0-of-2.jsonl", "ledger.shard-1-of-2.jsonl"]
    lines = [failed, done] if failed_first else [done, failed]
    for name, ledger_lines in zip(names, ([lines[0], attempt], [lines[1]], [failed2]), strict=True):
        (tmp_path / name).write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in ledger_lines))
    states = {key: state for _, key, state in merged_states(tmp_path)}
    assert states["1/conversation"].status == "done"
    assert states["2/conversation"].status == "failed"  # a failure over a pending attempt
    counts = collect_outputs(tmp_path, ("conversation",))
    assert counts["done"] == {"conversation": 1} and counts["failed"] == 1 and counts["pending"] == 0


def test_atomic_writes_leave_no_temporary_file_on_error(tmp_path):
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "summary.json", {"x": object()})
    state = KeyState("done", 1, (1, 1), offset=0, length=10)
    with pytest.raises(FileNotFoundError):
        _write_task_file(tmp_path / "conversation.json", [(1, tmp_path / "no-ledger.jsonl", state)])

    def scenes():
        yield Scene(1, 10, 10, "VG_100K/1.jpg")
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        write_scenes_jsonl(scenes(), tmp_path / "scenes.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_select_images_reads_image_data_once(tmp_path, monkeypatch):
    _write_vg(tmp_path)
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        opened.append(Path(file).name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    images = select_images(tmp_path, wanted=lambda i: i != 2)
    assert [(m.image_id, m.coco_id, m.image_path) for m in images] == [
        (1, 11, "VG_100K/1.jpg"),
        (3, 33, "VG_100K/3.jpg"),
    ]
    assert opened.count("image_data.json") == 1


def test_vg_reader_counts_every_skipped_annotation(tmp_path):
    _write_vg(tmp_path)
    images = json.loads((tmp_path / "image_data.json").read_text())
    (tmp_path / "image_data.json").write_text(json.dumps(images + images[:1]))  # image 1 twice
    objects = json.loads((tmp_path / "objects.json").read_text())
    objects[1]["objects"].append({"x": 0, "y": 0, "w": 5, "h": 5, "names": [""]})
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    counts: dict = {}
    assert [s.image_id for s in iter_vg_scenes(tmp_path, counts=counts)] == [1, 2, 3]
    assert counts["duplicate_images"] == 1 and counts["unnamed_objects"] == 1 and counts["bad_objects"] == 1


def test_price_flags_go_together_in_the_config(tmp_path):
    client = ClientSettings(model="m")
    with pytest.raises(SvitInputError, match="go together"):
        GenerationConfig(tmp_path, client, price_input=1.0)
    with pytest.raises(SvitInputError, match="--price-input must be 0 or more, got -1.0"):
        GenerationConfig(tmp_path, client, price_input=-1.0, price_output=1.0)
    config = GenerationConfig(tmp_path, client, price_input=1.0, price_output=2.0)
    assert config.price() == ("--price-input/--price-output", {"input": 1.0, "output": 2.0})


@pytest.mark.parametrize(
    "body",
    [
        {"choices": ["text"]},
        {"choices": [{"message": ["text"]}]},
        {"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]},
        {"choices": [{"message": {"content": "hi"}}], "usage": ["no"]},
        ["not", "an", "object"],
    ],
)
def test_client_rejects_replies_of_other_shapes(body, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    client = ChatClient(ClientSettings(model="m"))
    with pytest.raises(TypeError):
        client._result(body, 10)
    assert client.stats.ok == 0
    ok = client._result({"choices": [{"message": {"content": None}, "finish_reason": 1}], "model": 7}, 10)
    assert (ok.text, ok.finish_reason, ok.response_model) == ("", "", "m")
