"""The lmms-eval model `svit_llava` (svit_model/lmms_eval_plugin), run by lmms-eval's own evaluator offline.

lmms-eval is installed by `make setup` without its dependencies (Makefile; what its evaluator imports is in the
dev extra). The tasks are lmms-eval's own MME and RefCOCO (REC) task definitions, included from the installed
package, with only the data made local: Parquet files the test writes. A tiny SVIT-LLaVA is taught one RefCOCO
answer first, on a non-square image, so that what it writes is a box in its padded square.

Checked:
- lmms-eval's MME score of its own predictions equals `svit eval mme-score` of the same predictions; the two
  answer parsers are compared on a list of answers and the ones where they differ are named;
- lmms-eval's RefCOCO IoU and ACC@0.5 equal `svit eval refcoco`'s (strict protocol) on the same checkpoint and
  questions, the box moved back from the padded square on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:
    import lmms_eval
except ImportError as err:  # never skipped: CI runs these tests
    raise ImportError(
        "tests/test_lmms_eval_plugin.py needs lmms-eval: `make setup` installs it "
        '(pip install --no-deps "lmms-eval==0.7.3", with the dev extra)'
    ) from err

import datasets  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tests.cli_runs import run_svit  # noqa: E402

TASKS = Path(lmms_eval.__file__).parent / "tasks"
# lmms-eval's RefCOCO question (tasks/refcoco/utils_rec.py), asked by `svit eval refcoco --prompt` too
LMMS_REFCOCO_PROMPT = (
    "Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, "
    "bottom-right y). All values are floating point numbers bounded between 0 and 1. Please provide the "
    "bounding box coordinate of the region this sentence describes: {expression}"
)
# 64x32: the padded square is 64x64 with 16 rows above and below, so padded and original frames differ in y
WIDE = (64, 32)
TAUGHT_EXPRESSION = "the red block"
TAUGHT_ANSWER = f"<st>{TAUGHT_EXPRESSION.capitalize()}<ed> [0.25, 0.2, 0.75, 0.8]"  # original frame


@pytest.fixture(scope="module", autouse=True)
def process_state_kept():
    """lmms-eval changes this process for good when it runs: PIL loads truncated images without an error
    (lmms_eval/api/task.py, on import) and file locks become process-wide singletons (its evaluator's
    `_enable_reentrant_filelocks`, which a forked process then refuses). Both are put back after this module, so
    the tests that follow (a truncated training image is refused; `svit train` in a fork) see svit's own world."""
    import filelock._api
    from PIL import ImageFile

    truncated, lock_call = ImageFile.LOAD_TRUNCATED_IMAGES, filelock._api.FileLockMeta.__call__
    yield
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    filelock._api.FileLockMeta.__call__ = lock_call
    from lmms_eval import evaluator

    evaluator._enable_reentrant_filelocks._patched = False


def _image(size, color):
    image = Image.new("RGB", size, (30, 30, 30))
    image.paste(color, (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    return image


@pytest.fixture(scope="module")
def taught_run(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint taught the RefCOCO answer on the wide image (boxes moved into the padded square by
    the processor, as in training)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import svit_model  # noqa: F401
    from svit_model.teaching import teach

    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    question = LMMS_REFCOCO_PROMPT.format(expression=TAUGHT_EXPRESSION)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _image(WIDE, (200, 20, 20))},
                {"type": "text", "text": question},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": TAUGHT_ANSWER}]},
    ]
    torch.manual_seed(0)
    teach(model, processor, messages, steps=60)
    folder = tmp_path_factory.mktemp("taught") / "run"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    """An MME-shaped and a RefCOCO-shaped Parquet file, and task YAMLs that include lmms-eval's own tasks."""
    folder = tmp_path_factory.mktemp("lmms_tasks")
    image = datasets.Image()
    mme = datasets.Dataset.from_list(
        [
            {
                "question_id": f"{k}.png",
                "question": q,
                "answer": a,
                "category": category,
                "image": _image((40, 30), c),
            }
            for k, category, c, pairs in [
                (
                    1,
                    "existence",
                    (200, 20, 20),
                    [
                        ("Is there a red block? Please answer yes or no.", "Yes"),
                        ("Is there a dog? Please answer yes or no.", "No"),
                    ],
                ),
                (
                    2,
                    "existence",
                    (20, 200, 20),
                    [
                        ("Is there a green block? Please answer yes or no.", "Yes"),
                        ("Is there a cat? Please answer yes or no.", "No"),
                    ],
                ),
                (
                    3,
                    "commonsense_reasoning",
                    (20, 20, 200),
                    [
                        ("Is it safe to eat the block? Please answer yes or no.", "No"),
                        ("Is the block blue? Please answer yes or no.", "Yes"),
                    ],
                ),
            ]
            for q, a in pairs
        ]
    ).cast_column("image", image)
    refcoco = datasets.Dataset.from_list(
        [
            # bbox: COCO [x, y, w, h] pixels; `answer`: the expressions (lmms-eval explodes them)
            {
                "question_id": 1,
                "bbox": [16.0, 8.0, 32.0, 16.0],
                "answer": [TAUGHT_EXPRESSION],
                "image": _image(WIDE, (200, 20, 20)),
            },
            {
                "question_id": 2,
                "bbox": [4.0, 4.0, 20.0, 24.0],
                "answer": ["the left block", "a block"],
                "image": _image((32, 32), (20, 200, 20)),
            },
        ]
    ).cast_column("image", image)
    mme.to_parquet(folder / "mme.parquet")
    refcoco.to_parquet(folder / "refcoco.parquet")
    yamls = {
        "svit_test_mme": (TASKS / "mme" / "mme.yaml", "mme.parquet"),
        "svit_test_refcoco": (TASKS / "refcoco" / "_default_template_bbox_rec_yaml", "refcoco.parquet"),
    }
    for task, (included, data) in yamls.items():
        (folder / f"{task}.yaml").write_text(
            f"task: {task}\ninclude: {included}\ndataset_path: parquet\n"
            f"dataset_kwargs:\n  data_files:\n    test: {folder / data}\ntest_split: test\n"
        )
    return folder


@pytest.fixture(scope="module")
def lmms_results(taught_run, local_tasks):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    return simple_evaluate(
        model="svit_llava",
        model_args=f"pretrained={taught_run}",
        tasks=["svit_test_mme", "svit_test_refcoco"],
        batch_size=1,
        gen_kwargs="max_new_tokens=48",
        task_manager=TaskManager(verbosity="WARNING", include_path=str(local_tasks)),
        log_samples=True,
        datetime_str="test",
        verbosity="WARNING",
    )


@pytest.mark.slow
def test_lmms_eval_refcoco_iou_equals_svit_eval_under_the_strict_protocol(
    lmms_results, taught_run, local_tasks, tmp_path
):
    ours_dir = tmp_path / "ours"
    done = run_svit(
        ["eval", "refcoco", "--model", str(taught_run), "--data", str(local_tasks / "refcoco.parquet"),
         "--output", str(ours_dir), "--prompt", LMMS_REFCOCO_PROMPT, "--max-new-tokens", "48",
         "--batch-size", "1", "--no-progress"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ours = json.loads((ours_dir / "results.json").read_text())["metrics"]
    theirs = lmms_results["results"]["svit_test_refcoco"]
    samples = lmms_results["samples"]["svit_test_refcoco"]
    answers = [
        s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
        for s in samples
    ]
    # the taught question on the wide image answers a box, moved out of the padded square for lmms-eval
    taught = next(a for s, a in zip(samples, answers, strict=True) if s["doc"]["answer"] == TAUGHT_EXPRESSION)
    assert "[0.25" in taught, answers
    assert ours["protocol"] == "strict" and ours["total"] == 3 == len(samples)
    assert theirs["refcoco_IoU,none"] == pytest.approx(ours["mean_iou"], abs=1e-5)
    assert theirs["refcoco_ACC@0.5,none"] == pytest.approx(ours["acc@0.5"])
    assert 0 < ours["mean_iou"] < 1  # the taught box is not the reference: a real IoU, not a 0 or a 1


@pytest.mark.slow
def test_lmms_eval_mme_score_equals_svit_eval_mme_score_of_its_predictions(lmms_results, tmp_path):
    from svit_model.evaluation.mme import mme_results_field, mme_results_line, score_mme_folder

    samples = lmms_results["samples"]["svit_test_mme"]
    folder = tmp_path / "mme_results"
    folder.mkdir()
    lines: dict[str, list[str]] = {}
    for sample in samples:
        doc, answer = sample["doc"], sample["filtered_resps"]
        answer = answer[0] if isinstance(answer, list) else answer
        lines.setdefault(doc["category"], []).append(
            mme_results_line(doc["question_id"], doc["question"], doc["answer"], mme_results_field(answer))
        )
    for category, found in lines.items():
        (folder / f"{category}.txt").write_text("".join(found))
    scores = score_mme_folder(str(folder), str(tmp_path / "scores.json"), ",".join(lines))
    theirs = lmms_results["results"]["svit_test_mme"]
    assert theirs["mme_perception_score,none"] == pytest.approx(scores["perception"])
    assert theirs["mme_cognition_score,none"] == pytest.approx(scores["cognition"])


# Answers on which MME's two parsers are compared: the official calculation.py's (ours) and lmms-eval's, which
# also drops periods and reads a lone y or n.
ANSWERS = ["Yes", "No", "yes.", "No, there is not.", "YES", "y", "n", "Y.", "The answer is yes", "nope",
           "Not sure", "yes, it is", "none", "", "n.o", "ye s"]  # fmt: skip
PARSERS_DIFFER = {"y": ("yes", "other"), "n": ("no", "other"), "Y.": ("yes", "other"), "n.o": ("no", "other")}


def test_mme_answer_parsers_agree_except_where_named():
    from lmms_eval.tasks.mme.utils import parse_pred_ans

    from svit_model.evaluation.mme import mme_parse_answer, mme_results_field

    differ = {}
    for answer in ANSWERS:
        theirs = parse_pred_ans(answer)
        # ours reads the results file's field, lower-cased, with its line break, as calculation.py does
        ours = mme_parse_answer(mme_results_field(answer).lower() + "\n")
        if theirs != ours:
            differ[answer] = (theirs, ours)
    assert differ == PARSERS_DIFFER


def _predictions(results: dict, task: str) -> list[str]:
    answers = [s["filtered_resps"] for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])]
    return [a[0] if isinstance(a, list) else a for a in answers]


@pytest.mark.slow
def test_a_lora_run_unmerged_answers_as_its_merged_llava_export_under_llava_hf(
    tiny_grounded_checkpoint, grounded_dataset, local_tasks, tmp_path
):
    """The plugin loads a LoRA run with its adapter on (no merge); lmms-eval's own `llava_hf` loads the merged
    run exported as a plain `llava` checkpoint. Both asked lmms-eval's MME and RefCOCO questions, greedily: the
    same answers (boxes left in the model's frame, as llava_hf leaves them). llava_hf tokenizes the rendered
    prompt again with special tokens: the export's templates leave `<s>` to the tokenizer
    (`stock_llava.without_bos_text`), so it sees one, as the plugin does."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from svit_cli.jobs.train import parse_train_arguments
    from svit_model.stock_llava import export_llava_checkpoint
    from svit_model.training.checkpoint import merge_lora_run
    from svit_model.training.train import train
    from tests.train_fixtures import train_args

    argv = train_args(
        tiny_grounded_checkpoint, grounded_dataset, tmp_path / "lora", recipe="tiny-stage2-lora",
        max_steps=2, save_steps=2, learning_rate=1e-2,
    )  # fmt: skip
    run = train(*parse_train_arguments(argv)).output_dir
    assert (run / "adapter_config.json").is_file() and not (run / "model.safetensors").exists()
    export = export_llava_checkpoint(merge_lora_run(run, tmp_path / "merged"), tmp_path / "export")
    tasks = ["svit_test_mme", "svit_test_refcoco"]
    common = dict(
        tasks=tasks, batch_size=1, gen_kwargs="max_new_tokens=24", log_samples=True, datetime_str="test",
        verbosity="WARNING", task_manager=TaskManager(verbosity="WARNING", include_path=str(local_tasks)),
    )  # fmt: skip
    ours = simple_evaluate(model="svit_llava", model_args=f"pretrained={run},box_frame=model", **common)
    stock = simple_evaluate(
        model="llava_hf", model_args=f"pretrained={export},device=cpu,device_map=cpu", **common
    )
    for task in tasks:
        assert _predictions(ours, task) == _predictions(stock, task), task
    assert any(_predictions(ours, "svit_test_mme"))  # answers, not empty strings

    # lmms-eval's results file (what `--output_path` writes: the returned document, samples aside) on the card
    from hub_cards.model_card import add_eval_results

    document = {key: value for key, value in ours.items() if key != "samples"}
    results_file = tmp_path / "lmms_results.json"
    results_file.write_text(json.dumps(document, default=str))
    card = add_eval_results(run, [results_file]).read_text()
    iou = ours["results"]["svit_test_refcoco"]["refcoco_IoU,none"]
    assert (
        f"| svit_test_refcoco | - | test | refcoco_IoU (svit_test_refcoco) | {iou:.4g} | - | lmms-eval |"
        in card
    )
    assert "name: lmms-eval" in card and "refcoco_ACC@0.5" in card  # the model-index, its source named


@pytest.mark.slow
def test_loglikelihood_prefers_the_taught_answer_and_knows_it_is_greedy(taught_run):
    """lmms-eval's multiple-choice tasks pick the continuation of least loss."""
    from lmms_eval.api.instance import Instance

    from svit_model.lmms_eval_plugin.model import SvitLlava

    model = SvitLlava(pretrained=str(taught_run))
    model.task_dict = {"t": {"test": [{"image": _image(WIDE, (200, 20, 20))}]}}
    question = LMMS_REFCOCO_PROMPT.format(expression=TAUGHT_EXPRESSION)
    visual = lambda doc: [doc["image"]]  # noqa: E731
    requests = [
        Instance(
            "loglikelihood",
            (question, continuation, visual, 0, "t", "test"),
            idx=i,
            metadata={"task": "t", "doc_id": 0, "repeats": 1},
        )
        for i, continuation in enumerate([TAUGHT_ANSWER, "A dog on a sofa."])
    ]
    (taught_loss, taught_greedy), (other_loss, other_greedy) = model.loglikelihood(requests)
    assert taught_loss < other_loss and taught_greedy and not other_greedy


def test_mme_totals_agree_on_answers_both_parsers_read_alike(tmp_path):
    """lmms-eval's MME scoring (process_results + aggregation) and `svit eval mme-score` on the same answers,
    chosen among those both parsers read alike: the same perception and cognition totals (acc + acc+ per
    category, summed)."""
    from lmms_eval.tasks.mme.utils import mme_aggregate_results, mme_process_results

    from svit_model.evaluation.mme import mme_results_field, mme_results_line, score_mme_folder

    agreed = [a for a in ANSWERS if a not in PARSERS_DIFFER]
    docs = []  # 3 categories, 2 images each, 2 questions per image, answers drawn in turn from `agreed`
    for c, category in enumerate(["existence", "count", "code_reasoning"]):
        for image in range(2):
            for q, gt in enumerate(["Yes", "No"]):
                answer = agreed[(4 * c + 2 * image + q) % len(agreed)]
                docs.append(
                    {
                        "question_id": f"{image}.png",
                        "question": f"Q{q}?",
                        "answer": gt,
                        "category": category,
                        "pred": answer,
                    }
                )
    theirs: dict[str, list] = {}
    for doc in docs:
        for key, value in mme_process_results(doc, [doc["pred"]]).items():
            theirs.setdefault(key, []).append(value)
    folder = tmp_path / "results"
    folder.mkdir()
    for category in dict.fromkeys(d["category"] for d in docs):
        lines = [
            mme_results_line(d["question_id"], d["question"], d["answer"], mme_results_field(d["pred"]))
            for d in docs
            if d["category"] == category
        ]
        (folder / f"{category}.txt").write_text("".join(lines))
    ours = score_mme_folder(str(folder), str(tmp_path / "scores.json"), "existence,count,code_reasoning")
    assert mme_aggregate_results(theirs["mme_perception_score"]) == pytest.approx(ours["perception"])
    assert mme_aggregate_results(theirs["mme_cognition_score"]) == pytest.approx(ours["cognition"])
    assert 0 < ours["perception"] < 400  # some right, some wrong: the comparison means something


@pytest.mark.parametrize(
    "model_args, message",
    [
        ({"batch_size": "auto"}, "batch_size=auto; pass a whole number"),
        ({"batch_size": 0}, "batch_size=0; pass a whole number"),
        ({"dtype": "float8"}, "dtype=float8; pass one of float32, bfloat16, float16"),
        ({"box_frame": "padded"}, "box_frame=padded; pass one of original, model"),
        ({"temperature": 0}, "unknown model_args temperature"),
    ],
)
def test_bad_model_args_are_one_clear_error_before_the_model_loads(model_args, message):
    from svit_dataset.errors import SvitInputError
    from svit_model.lmms_eval_plugin.model import SvitLlava

    with pytest.raises(SvitInputError, match=message):
        SvitLlava(pretrained="/nonexistent", **model_args)
