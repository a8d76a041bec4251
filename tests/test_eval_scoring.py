"""The scoring rules of `svit eval` against hand-computed values: MME's official calculation.py (its parsing
quirks included), LLaVA's eval_pope, IoU-based grounding; the shipped `evaluate` modules give the same numbers."""

from __future__ import annotations

import json

import pytest

from svit_cli.main import main
from svit_model.evaluation import refcoco, svit_referring
from svit_model.evaluation.grounded_answers import prediction_iou
from svit_model.evaluation.harness import EvalItem
from svit_model.evaluation.metrics import load_metric
from svit_model.evaluation.mme import MME_SUBTASKS, mme_parse_answer, score_results_folder
from svit_model.evaluation.pope import pope_mean_f1, pope_metrics, pope_parse_answer
from svit_model.evaluation.refcoco import referring_metrics
from svit_model.evaluation.svit_referring import grounded_answer_scores, grounded_qa_metrics

# (gt, pred as written in the 4th column); each pair is one image.
EXISTENCE = [
    ("Yes", "Yes"),  # yes, right
    ("No", "No, there is not"),  # "no, " -> no, right
    ("Yes", "yes."),  # prefix "yes." -> yes, right
    ("No", "Not sure"),  # "not " holds "no" -> no, right (the official quirk)
    ("Yes", "I think yes"),  # "i th" -> other, wrong
    ("No", "None"),  # "none" -> no, right
    ("Yes", ""),  # "\n" -> other, wrong
    ("No", "no.   "),  # "no. " -> no, right
]  # acc 6/8, acc+ 2/4 (images 1 and 2) -> 75 + 50 = 125; yes 2, no 4, other 2
COUNT = [
    ("Yes", "YES"),  # "yes\n" -> yes, right
    ("No", "yes"),  # wrong
    ("yes", "no"),  # wrong
    ("No", "no"),  # the file's last line: no newline, exactly "no", right
]  # acc 2/4, acc+ 0 -> 50; yes 2, no 2
RIGHT = [("Yes", "Yes"), ("No", "No"), ("Yes", "yes"), ("No", "no")]  # 200
WRONG = [("Yes", "No"), ("No", "Yes"), ("Yes", "no"), ("No", "yes")]  # 0
OTHER = [("Yes", "maybe"), ("No", "unclear"), ("Yes", "Sure"), ("No", "a")]  # 0, all other
HALF_IMAGES = [("Yes", "Yes"), ("No", "No"), ("Yes", "No"), ("No", "Yes")]  # acc .5, acc+ .5 -> 100
THREE_OF_FOUR = [("Yes", "Yes"), ("No", "No"), ("Yes", "Yes"), ("No", "Yes")]  # acc .75, acc+ .5 -> 125

CRAFTED = {
    "existence": EXISTENCE,  # 125
    "count": COUNT,  # 50
    "position": RIGHT,
    "color": OTHER,  # 0
    "posters": RIGHT,
    "celebrity": RIGHT,
    "scene": RIGHT,
    "landmark": RIGHT,
    "artwork": RIGHT,
    "OCR": HALF_IMAGES,  # 100
    "commonsense_reasoning": RIGHT,
    "numerical_calculation": WRONG,  # 0
    "text_translation": THREE_OF_FOUR,  # 125
    "code_reasoning": RIGHT,
}
EXPECTED_SCORES = {
    **dict.fromkeys(MME_SUBTASKS, 200.0),
    "existence": 125.0,
    "count": 50.0,
    "color": 0.0,
    "OCR": 100.0,
    "numerical_calculation": 0.0,
    "text_translation": 125.0,
}
EXPECTED_PERCEPTION = 125 + 50 + 200 + 0 + 200 * 5 + 100  # 1475
EXPECTED_COGNITION = 200 + 0 + 125 + 200  # 525


def write_results_folder(folder, crafted=CRAFTED, last_newline=False):
    folder.mkdir(parents=True, exist_ok=True)
    for subtask, pairs in crafted.items():
        lines = [
            f"{i // 2:04d}.png\tQuestion {i}? Please answer yes or no.\t{gt}\t{pred}"
            for i, (gt, pred) in enumerate(pairs)
        ]
        (folder / f"{subtask}.txt").write_text(
            "\n".join(lines) + ("\n" if last_newline else ""), encoding="utf-8"
        )
    return folder


def test_mme_parse_answer_is_the_official_rule():
    # inputs as the official tool has them: lower-cased, with the line's newline
    cases = {
        "yes": "yes",
        "no": "no",
        "yes\n": "yes",
        "no, there is not\n": "no",
        "not sure\n": "no",
        "none\n": "no",
        "nope\n": "no",
        "i think yes\n": "other",
        "\n": "other",
        "": "other",
        "sure, no\n": "other",
        " yes\n": "yes",
        "   no\n": "other",
        "yes, no\n": "yes",
    }
    assert {text: mme_parse_answer(text) for text in cases} == cases


def test_mme_score_of_a_crafted_folder_matches_hand_computed_values(tmp_path):
    scores = score_results_folder(write_results_folder(tmp_path / "results"))
    assert scores["subtasks"] == EXPECTED_SCORES
    assert list(scores["subtasks"]) == list(MME_SUBTASKS)  # the official order
    assert scores["perception"] == pytest.approx(EXPECTED_PERCEPTION)
    assert scores["cognition"] == pytest.approx(EXPECTED_COGNITION)
    existence = scores["details"]["existence"]
    assert (existence["acc"], existence["acc_plus"]) == (0.75, 0.5)
    assert (existence["yes"], existence["no"], existence["other"]) == (2, 4, 2)
    assert (scores["details"]["count"]["yes"], scores["details"]["count"]["no"]) == (2, 2)
    assert scores["details"]["color"]["other"] == 4
    yes = sum(d["yes"] for d in scores["details"].values())
    no = sum(d["no"] for d in scores["details"].values())
    assert scores["yes_no_ratio"] == pytest.approx(yes / no)


def test_mme_score_command_writes_the_scores_json(tmp_path, capsys):
    folder = write_results_folder(tmp_path / "results", last_newline=True)
    assert main(["eval", "mme-score", str(folder), "--output", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["subtasks"] == EXPECTED_SCORES
    assert (scores["perception"], scores["cognition"]) == (EXPECTED_PERCEPTION, EXPECTED_COGNITION)
    assert set(scores["details"]["existence"]) >= {"acc", "acc_plus", "yes", "no", "other"}
    assert "perception 1475.00" in capsys.readouterr().out


def test_mme_metric_module_agrees_with_the_folder(tmp_path):
    predictions, references, subtasks = [], [], []
    for subtask, pairs in CRAFTED.items():
        for gt, pred in pairs:
            predictions.append(pred)
            references.append(gt)
            subtasks.append(subtask)
    scores = load_metric("mme").compute(predictions=predictions, references=references, subtasks=subtasks)
    assert scores["subtasks"] == EXPECTED_SCORES
    assert (scores["perception"], scores["cognition"]) == (EXPECTED_PERCEPTION, EXPECTED_COGNITION)


def test_mme_score_bad_folders_are_one_line_errors(tmp_path, capsys):
    folder = write_results_folder(tmp_path / "partial", {"existence": RIGHT})
    assert main(["eval", "mme-score", str(folder), "--output", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svit eval mme-score: error:") and "count.txt" in err and "--subtasks" in err
    assert len(err.splitlines()) == 1
    # scoring fewer subtasks is asked for explicitly
    argv = ["eval", "mme-score", str(folder), "--output", str(tmp_path / "s.json"), "--subtasks", "existence"]
    assert main(argv) == 0
    capsys.readouterr()

    bad = write_results_folder(tmp_path / "bad", {"existence": [("Yes", "Yes"), ("Maybe", "No")]})
    assert (
        main(
            ["eval", "mme-score", str(bad), "--output", str(tmp_path / "s2.json"), "--subtasks", "existence"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "existence.txt:2" in err and "'Maybe' is neither yes nor no" in err and len(err.splitlines()) == 1

    odd = write_results_folder(tmp_path / "odd", {"existence": RIGHT[:3]})
    with pytest.raises(Exception, match="image .0001.png. has 1 question .*MME asks two questions per image"):
        score_results_folder(odd, "existence")


# --- POPE -------------------------------------------------------------------------------------------------


def test_pope_parse_answer_is_llava_eval_pope():
    cases = {
        "Yes": "yes",
        "Yes, there is a dog.": "yes",
        "No": "no",
        "No, there is not.": "no",
        "There is no dog.": "no",
        "not sure": "no",
        "Not sure": "yes",  # only "No", "not" and "no" count: "Not" does not
        "Yes. No.": "yes",  # the first sentence only
        "Nope, no": "no",  # commas dropped: "Nope no"
        "": "yes",  # an empty answer is "yes" in eval_pope
        "no.": "no",
    }
    assert {text: pope_parse_answer(text) for text in cases} == cases


def test_pope_metrics_hand_computed_with_a_missing_answer():
    labels = ["yes", "yes", "no", "no", "yes", "no", "yes", "no"]
    predictions = ["Yes, there is a dog.", "No", "There is no dog.", "not sure", "", "Yes", None, "No."]
    # TP: 1, 5; FN: 2, 7 (missing); TN: 3, 4, 8; FP: 6
    expected = {
        "accuracy": 5 / 8,
        "precision": 2 / 3,
        "recall": 2 / 4,
        "f1": 4 / 7,
        "yes_ratio": 3 / 8,
        "tp": 2,
        "fp": 1,
        "tn": 3,
        "fn": 2,
        "missing": 1,
        "total": 8,
    }
    assert pope_metrics(predictions, labels) == pytest.approx(expected)
    missing = [p is None for p in predictions]
    module = load_metric("pope").compute(
        predictions=[p or "" for p in predictions], references=labels, missing=missing
    )
    assert {k: module[k] for k in expected} == pytest.approx(expected)


def test_pope_mean_f1_is_the_mean_of_the_categories_f1_whatever_their_sizes():
    """LLaVA's POPE number. random: 4 questions, TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8; popular: 2 questions,
    TP 1, FN 1 -> P 1, R 1/2, F1 2/3. Mean 0.7333; pooled over the 6 questions (TP 3, FP 1, FN 1) F1 is 0.75."""
    labels = ["yes", "yes", "no", "no", "yes", "yes"]
    predictions = ["Yes", "Yes", "Yes", "No", "Yes", "No"]
    categories = ["random"] * 4 + ["popular"] * 2
    result = load_metric("pope").compute(predictions=predictions, references=labels, categories=categories)
    assert result["categories"]["random"]["f1"] == pytest.approx(0.8)
    assert result["categories"]["popular"]["f1"] == pytest.approx(2 / 3)
    assert result["mean_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert result["f1"] == pytest.approx(0.75)  # the pooled F1 stays, reported apart
    assert pope_mean_f1({"random": {"f1": 0.5}}) == 0.5


def test_pope_metrics_never_divide_by_zero():
    assert pope_metrics(["No", "No"], ["no", "no"])["f1"] == 0.0
    assert pope_metrics([], [])["accuracy"] == 0.0


# --- Grounding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ([0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], 0.0),  # touching edges
        ([0.2, 0.2, 0.2, 0.6], [0.0, 0.0, 1.0, 1.0], 0.0),  # zero-area prediction
        ([0.3, 0.3, 0.3, 0.3], [0.3, 0.3, 0.3, 0.3], 0.0),  # both empty
        ([-0.5, -0.5, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5], 1.0),  # out of range: clamped to the image
        ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], 1.0),  # swapped corners: ordered
        ([0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0], 0.5),  # half
        ([0.0, 0.0, 1.5, 1.0], [0.5, 0.0, 1.0, 1.0], 0.5),  # clamped to [0, 1] first: [0, 0, 1, 1]
        (None, [0.0, 0.0, 1.0, 1.0], 0.0),  # missing
        ([0.1, 0.2], [0.0, 0.0, 1.0, 1.0], 0.0),  # unparsable
    ],
)
def test_prediction_iou_edge_cases(prediction, reference, expected):
    assert prediction_iou(prediction, reference) == pytest.approx(expected)


def test_referring_metrics_count_missing_predictions_wrong():
    predictions = [
        [0.0, 0.0, 0.5, 0.5],
        [0.2, 0.2, 0.2, 0.6],
        [-0.5, -0.5, 0.5, 0.5],
        [0.5, 0.5, 0.0, 0.0],
        None,
        [0.0, 0.0, 0.5, 1.0],
    ]
    references = [
        [0.5, 0.0, 1.0, 0.5],
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 0.5, 0.5],
        [0.0, 0.0, 0.5, 0.5],
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 1.0, 1.0],
    ]
    # lenient: IoUs 0, 0, 1 (clipped), 1 (corners ordered), 0 (missing), 0.5: ACC@0.5 3/6 (>= 0.5 counts)
    lenient = {"acc@0.5": 0.5, "mean_iou": 2.5 / 6, "missing": 1, "total": 6, "protocol": "lenient"}
    # strict, as written: 0, 0, 0.25 (0.25 / (1 + 0.25 - 0.25)), 0 (swapped: no intersection), 0, 0.5
    strict = {"acc@0.5": 1 / 6, "mean_iou": 0.75 / 6, "missing": 1, "total": 6, "protocol": "strict"}
    for expected in (lenient, strict):
        protocol = expected["protocol"]
        assert referring_metrics(predictions, references, protocol=protocol) == pytest.approx(expected)
        module = load_metric("refcoco").compute(
            predictions=[p or [] for p in predictions], references=references, protocol=protocol
        )
        assert module == pytest.approx(expected)
    assert referring_metrics(predictions, references)["protocol"] == "strict"  # the default


def test_a_box_reaching_into_the_padding_keeps_its_area_under_the_strict_protocol(tiny_processor):
    """A 64x32 image sits in a 64x64 square with 16 rows of padding above and below. The model's box over the
    whole square is, in the image's frame, [0, -0.5, 1, 1.5]: strict IoU with the whole image 1 / 2 = 0.5
    exactly (ACC@0.5 counts it), lenient 1 (clipped)."""
    from svit_model.evaluation.grounded_answers import first_box_as_written

    box = first_box_as_written(tiny_processor, "<st>it<ed> [0.0, 0.0, 1.0, 1.0]", (64, 32))
    assert box == [0.0, -0.5, 1.0, 1.5]
    assert prediction_iou(box, [0, 0, 1, 1], "strict") == 0.5
    assert prediction_iou(box, [0, 0, 1, 1], "lenient") == 1.0
    assert referring_metrics([box], [[0, 0, 1, 1]])["acc@0.5"] == 1.0
    # swapped corners, written in the padded frame: 0 strict, 1 lenient
    swapped = first_box_as_written(tiny_processor, "[1.0, 0.75, 0.0, 0.25]", (64, 32))
    assert swapped == [1.0, 1.0, 0.0, 0.0]
    assert prediction_iou(swapped, [0, 0, 1, 1], "strict") == 0.0
    assert prediction_iou(swapped, [0, 0, 1, 1], "lenient") == 1.0
    assert first_box_as_written(tiny_processor, "no box here", (64, 32)) is None


def test_grounded_answer_scores_per_entity():
    reference = [
        ("red ball", [[0.1, 0.1, 0.5, 0.5]]),
        ("two cups", [[0.0, 0.0, 0.2, 0.2], [0.6, 0.6, 0.8, 0.8]]),
        ("dog", [[0.5, 0.5, 1.0, 1.0]]),
    ]
    predicted = [
        ("Red  Ball", [[0.1, 0.1, 0.5, 0.5]]),
        ("two cups", [[0.0, 0.0, 0.2, 0.2]]),
        ("cat", [[0.5, 0.5, 1.0, 1.0]]),
    ]
    scores = grounded_answer_scores(predicted, reference)
    assert scores == [(True, 1.0), (True, 0.5), (False, 0.0)]
    unanswered = grounded_answer_scores([], [("dog", [[0.0, 0.0, 1.0, 1.0]])])  # an empty answer: counted
    expected = {"phrase_recall": 2 / 4, "mean_entity_iou": 1.5 / 4, "entity_acc@0.5": 2 / 4, "entities": 4}
    assert grounded_qa_metrics([scores, unanswered]) == pytest.approx(expected)
    as_dicts = [[{"phrase": p, "boxes": b} for p, b in answer] for answer in (predicted, [])]
    refs = [
        [{"phrase": p, "boxes": b} for p, b in answer]
        for answer in (reference, [("dog", [[0.0, 0.0, 1.0, 1.0]])])
    ]
    module = load_metric("svit-referring").compute(predictions=as_dicts, references=refs)
    assert module == pytest.approx(expected)


def test_grounding_record_moves_boxes_out_of_the_padded_square(tiny_processor, tiny_processor_unpadded):
    # an 80 x 40 image: LLaVA-1.5 pads it to 80 x 80, 20 px above and below. The RefCOCO box (x, y, w, h) =
    # (20, 10, 40, 20) px is [0.25, 0.25, 0.75, 0.75] of the image and [0.25, 0.375, 0.75, 0.625] of the square.
    item = EvalItem("r#0", "q", "q", image=None, reference=[20, 10, 40, 20])
    padded = refcoco.make_record(tiny_processor)(item, "[0.25, 0.375, 0.75, 0.625]", (80, 40))
    assert padded["answer"] == pytest.approx([0.25, 0.25, 0.75, 0.75])
    assert padded["reference"] == pytest.approx([0.25, 0.25, 0.75, 0.75])
    assert prediction_iou(padded["answer"], padded["reference"]) == pytest.approx(1.0)
    unpadded = refcoco.make_record(tiny_processor_unpadded)(item, "[0.25, 0.375, 0.75, 0.625]", (80, 40))
    assert unpadded["answer"] == pytest.approx(
        [0.25, 0.375, 0.75, 0.625]
    )  # no padding: the frame is the image's
    assert refcoco.make_record(tiny_processor)(item, "no box here", (80, 40))["answer"] is None

    svit = EvalItem("s#0", "q", "q", image=None, reference="<st>kite<ed> [0.250, 0.250, 0.750, 0.750]")
    record = svit_referring.make_record(tiny_processor)(
        svit, "The <st>kite<ed> [0.25, 0.375, 0.75, 0.625].", (80, 40)
    )
    assert record["answer"][0][0] == "kite" and record["answer"][0][1][0] == pytest.approx(
        [0.25, 0.25, 0.75, 0.75]
    )
    assert record["reference"] == [("kite", [[0.25, 0.25, 0.75, 0.75]])]


def test_strict_scoring_of_predictions_from_an_earlier_version_is_refused_naming_the_way_out(tmp_path):
    """A rerun into an eval folder written before the protocols: its ledger has no box as written."""
    from svit_dataset.errors import SvitInputError
    from svit_model.evaluation.harness import EvalItem
    from svit_model.evaluation.refcoco import Refcoco, RefcocoOptions

    items = [EvalItem(id="1#0", question="q", prompt="q", image=lambda: None, reference=[0, 0, 10, 10])]
    records = {"1#0": {"id": "1#0", "answer": [0.1, 0.1, 0.5, 0.5], "reference": [0.0, 0.0, 0.5, 0.5]}}
    options = RefcocoOptions(model="m", data="d", output=str(tmp_path))
    with pytest.raises(
        SvitInputError, match="earlier svit without the box as written; score them with --protocol lenient"
    ):
        Refcoco(options).score(items, records, tmp_path)
    lenient = Refcoco(RefcocoOptions(model="m", data="d", output=str(tmp_path), protocol="lenient"))
    assert lenient.score(items, records, tmp_path)["mean_iou"] == pytest.approx(0.16 / 0.25)


@pytest.mark.parametrize(
    "answer",
    [
        "<st>it<ed> [0.0, 0.0, 1.0, 1.0]",
        "[1.0, 0.75, 0.0, 0.25]",
        "x [-0.2, 0.1, 1.3, 0.9] y",
        "[0.4, 0.3, 0.6, 0.5]",
    ],
)
def test_the_clamped_answer_is_the_box_as_written_clamped(tiny_processor, answer):
    """RefCOCO's ledger derives its clamped `answer` from the box as written: what post_process_generation
    gives (clamped in the padded square, moved out, clamped again)."""
    from svit_dataset.boxes import clamp_box
    from svit_model.evaluation.grounded_answers import first_box_as_written, predicted_entities

    for size in ((64, 32), (32, 64), (40, 40)):
        written = first_box_as_written(tiny_processor, answer, size)
        expected = next(boxes[0] for _, boxes in predicted_entities(tiny_processor, answer, size) if boxes)
        assert list(clamp_box(written)) == expected
