"""Family `cards`: random `results.json` files fed to the model card writer (hub_cards/model_card.py) through
`svit card model RUN --results F...` and `svit eval card F... --model-dir DIR`, run in-process by the CLI's `main`.

results.json files are drawn with NaN, infinities, strings, booleans, nulls, huge integers, nested values and
missing keys as metrics, unknown benchmarks, other models' names, deep nesting, broken JSON and Latin-1 bytes;
the target is a training run, a plain model folder or a dataset folder; `--model-id` is sometimes no Hub id.

Our oracle, written apart from hub_cards: a card may be written only when every metric it indexes is a finite
number, every results file is of this model (or cannot be told), the target is a model and `--model-id` a Hub id.
- refused with one line (exit 2) when one of those fails, or written when none does: clean;
- written though one fails, or written with a non-finite value in `model-index`, or an indexed metric of the
  files missing from the written card: silent loss;
- exit 1: traceback; refused though none fails: refused_valid.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from fuzz_families.common import Tally, run_cli

MME_SUBTASKS = ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                "artwork", "OCR", "commonsense_reasoning", "numerical_calculation", "text_translation",
                "code_reasoning"]  # fmt: skip
# what a card indexes of each benchmark (the keys `svit eval` writes): our own list, as the issue states it
INDEXED = {
    "mme": ["perception", "cognition"],
    "pope": ["accuracy", "f1", "yes_ratio"],
    "grounding": ["acc@0.5", "mean_iou"],
}
BAD_VALUES = [
    float("nan"),
    float("inf"),
    -float("inf"),
    "0.5",
    "high",
    True,
    None,
    10**400,
    [0.5],
    {"v": 0.5},
]
GOOD_VALUES = [0.0, 0.5, 1, 1234.5678, 1e300, -3.25, 0.123456789]
HUB_IDS = ["org/svit-tiny", "someone/other-model"]


def finite(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


class Expect:
    def __init__(self):
        self.reasons: list[str] = []  # why the card must be refused; empty: it must be written
        self.maybe = False  # a refusal is fine too (our oracle cannot tell)
        self.indexed: list[float] = []  # values that must be in model-index (rounded to 4 places)

    def refuse(self, why: str) -> None:
        self.reasons.append(why)


def metrics_for(rng: random.Random, benchmark: str, expect: Expect) -> dict:
    """Metrics of one benchmark, a few of them bad."""

    def value(key: str, indexed: bool):
        if rng.random() < 0.15:
            bad = rng.choice(BAD_VALUES)
            if indexed:
                expect.refuse(f"{key} = {bad!r}")
            return bad
        good = rng.choice(GOOD_VALUES)
        if indexed:
            expect.indexed.append(round(float(good), 4))
        return good

    if benchmark == "pope":
        categories = {}
        for category in ("random", "popular", "adversarial"):
            keys = ["accuracy", "precision", "recall", "f1", "yes_ratio"]
            if rng.random() < 0.1:  # a metric not measured: nothing to index, nothing lost
                keys.remove(rng.choice(keys))
            values = {key: value(key, key in INDEXED["pope"]) for key in keys}
            categories[category] = values
        return {"categories": categories, "accuracy": value("accuracy", False)}
    if benchmark == "mme":
        whole = rng.random() < 0.7
        subtasks = MME_SUBTASKS if whole else rng.sample(MME_SUBTASKS, rng.randint(1, 13))
        metrics = {
            "perception": value("perception", whole),
            "cognition": value("cognition", whole),
            "subtasks": {name: rng.choice(GOOD_VALUES) for name in subtasks},
        }
        if not whole:  # a part of MME: table-only, its values in the body; a bad one is no model-index entry
            expect.maybe = expect.maybe or not all(finite(metrics[k]) for k in ("perception", "cognition"))
        return metrics
    return {"acc@0.5": value("acc@0.5", True), "mean_iou": value("mean_iou", True), "total": 12,
            "missing": rng.choice([0, 2, "x"])}  # fmt: skip


def results_file(rng: random.Random, path: Path, run_dir: Path, target_hub_ids: set, expect: Expect) -> None:
    """One results.json at `path`, maybe damaged; records in `expect` what a card must do with it."""
    fault = rng.choice(["none"] * 6 + ["nested", "broken", "latin1", "not_object", "unknown_benchmark",
                                        "metrics_list", "no_metrics", "huge_file"])  # fmt: skip
    if fault == "nested":
        depth = rng.choice([1000, 100000])
        path.write_text('{"benchmark": "mme", "metrics": ' + "[" * depth + "]" * depth + "}")
        expect.refuse(f"nested {depth} deep")
        return
    if fault == "broken":
        path.write_text('{"benchmark": "mme", "metrics": {"perception": 1.0,')
        expect.refuse("broken JSON")
        return
    if fault == "not_object":
        path.write_text(rng.choice(["[]", "3", "null", '"mme"']))
        expect.refuse("not an object")
        return
    benchmark = rng.choice(list(INDEXED))
    document = {
        "benchmark": benchmark,
        "dataset": {"name": benchmark.upper(), "type": benchmark, "split": "test"},
    }
    model_kind = rng.choice(
        ["run", "run", "relative", "other_folder", "other_hub", "own_hub", "missing", "number"]
    )
    if model_kind == "run":
        document["model"] = str(run_dir)
    elif model_kind == "relative":
        document["model"] = f"./out/{run_dir.name}"  # written elsewhere: told by its name
    elif model_kind == "other_folder":
        other = path.parent / "another-run"
        other.mkdir(exist_ok=True)
        document["model"] = str(other)
        expect.refuse("another folder's results")
    elif model_kind == "other_hub":
        document["model"] = "someone/other-model"
        if target_hub_ids:
            if "someone/other-model" not in target_hub_ids:
                expect.refuse("another Hub model's results")
        else:
            expect.maybe = True  # a folder with no Hub id of its own cannot tell
    elif model_kind == "own_hub":
        document["model"] = "org/svit-tiny"
        if target_hub_ids is not None and "org/svit-tiny" not in target_hub_ids:
            expect.maybe = True
    elif model_kind == "number":
        document["model"] = 7
        expect.maybe = True
    if fault == "unknown_benchmark":
        document["benchmark"] = rng.choice(["vqa", "", 3, None])
        expect.refuse("unknown benchmark")
    if fault == "metrics_list":
        document["metrics"] = [1, 2]
        expect.refuse("metrics not an object")
    elif fault == "no_metrics":
        expect.refuse("no metrics")
    else:
        document["metrics"] = metrics_for(rng, benchmark, expect)
    if fault == "huge_file":
        document["notes"] = "x" * 2_000_000
    text = json.dumps(document, allow_nan=True)
    data = text.encode("utf-8")
    if fault == "latin1":
        data = data.replace(b'"name": "', b'"name": "caf\xe9 ', 1)
        expect.refuse("Latin-1 bytes")
    path.write_bytes(data)


def make_run(folder: Path, rng: random.Random) -> set:
    """A training run folder (svit_run.json as `svit train` writes it); returns its Hub ids."""
    folder.mkdir()
    hub = rng.choice([None, "org/svit-tiny"])
    facts = {
        "base_model": "lmsys/vicuna-7b-v1.5", "init_from": "tiny-stage1", "datasets": ["BAAI/SVIT"],
        "dataset_config": "full", "stage": "finetune", "template": "vicuna_v1", "method": "lora",
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "hyperparameters": {"learning_rate": 2e-3},
        "hub_model_id": hub, "global_step": 12, "counts": {"tokens_trained": 100}, "final_loss": 1.5,
        "loss_curve": None, "summary": "svit train: 12 steps",
    }  # fmt: skip
    (folder / "svit_run.json").write_text(json.dumps(facts))
    return {hub} if hub else set()


def check_card(readme: Path, expect: Expect) -> tuple[str, str]:
    from huggingface_hub import ModelCard

    card = ModelCard.load(readme)
    values = [e.metric_value for e in card.data.eval_results or []]
    bad = [v for v in values if not finite(v)]
    if bad:
        return "silent", f"non-finite model-index value {bad[0]!r}"
    rounded = [round(float(v), 4) for v in values]
    lost = [
        v for v in expect.indexed if not any(math.isclose(v, r, rel_tol=1e-9, abs_tol=1e-12) for r in rounded)
    ]
    if lost:
        return "silent", f"metric {lost[0]} of a results file is not in model-index {rounded[:8]}"
    return "clean", ""


def run(rng: random.Random, n: int, tally: Tally, work: Path) -> None:
    for k in range(n):
        case = work / f"case-{k}"
        case.mkdir()
        expect = Expect()
        target = rng.choice(["run", "run", "run", "model_folder", "dataset_folder"])
        run_dir = case / "tiny-run"
        if target == "run":
            hub_ids = make_run(run_dir, rng)
        else:
            run_dir.mkdir()
            hub_ids = None
            if target == "model_folder":
                (run_dir / "config.json").write_text('{"model_type": "svit_llava"}')
            else:
                (run_dir / "README.md").write_text("---\nlicense: cc-by-4.0\nconfigs: []\n---\n# a dataset\n")
                (run_dir / "build_report.json").write_text("{}")
                expect.refuse("a dataset folder")
        files = []
        for i in range(rng.randint(1, 2)):
            path = case / f"results-{i}.json"
            results_file(rng, path, run_dir, hub_ids, expect)
            files.append(str(path))
        if target == "run" and rng.random() < 0.5:
            argv = ["card", "model", str(run_dir), "--results", *files]
            if rng.random() < 0.4:
                model_id = rng.choice(
                    ["org/svit-tiny", "a/b/c/d", 'org/x"); import os; ("', "", "org/ok-name"]
                )
                argv += ["--model-id", model_id]
                if model_id not in ("org/svit-tiny", "org/ok-name"):
                    expect.refuse(f"--model-id {model_id!r}")
        else:
            argv = ["eval", "card", *files, "--model-dir", str(run_dir)]
        readme = run_dir / "README.md"
        before = readme.read_bytes() if readme.is_file() else None
        code, line = run_cli(argv)
        what = f"{target} {argv[:2]} must refuse: {expect.reasons or 'no'}"
        if code == 1 or (code != 0 and ": error: " not in line):
            outcome, detail = "traceback", line
        elif code == 2:
            if expect.reasons or expect.maybe:
                outcome, detail = "clean", ""
            else:
                outcome, detail = "refused_valid", line
            if readme.is_file() and readme.read_bytes() != before:
                outcome, detail = "silent", "refused, yet README.md changed"
        elif expect.reasons:
            outcome, detail = "silent", "card written"
        else:
            outcome, detail = check_card(readme, expect)
        tally.add(outcome, what, detail, target)
