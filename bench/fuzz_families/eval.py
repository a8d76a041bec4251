"""Family `eval`: damaged benchmark inputs and results folders through `svit eval` (run in-process by the CLI's
`main`, so a verdict is the user's one line and exit code), with the model's generation replaced by a stub.

Four kinds of case:
- `mme-score`: an official-format results folder with random damage (shuffled lines, tabs or line breaks in a
  question, a missing field, 1 or 3 questions for an image, Latin-1 bytes, a gt that is no Yes/No, an empty or
  missing subtask file), and sometimes an `--output` onto or inside the folder;
- `mme`: a release-layout MME folder (images + question files) with damage, through `svit eval mme`, then its
  own results folder scored again by `svit eval mme-score` (what our harness writes, our scorer must read);
- `pope`: POPE question files (JSON lines) with damage (bad JSON, missing keys, odd labels, deep nesting);
- `grounding`: RefCOCO-shaped Parquet tables whose rows lack an expression or hold NaN, infinite, negative or
  three-number boxes.
Numeric flags (--batch-size, --max-new-tokens, --max-failed-fraction) are drawn too, sometimes out of range.

The stub answers from the question's marker `Q<n>` (so an escaped question gets the same answer) and the oracle
scores those answers itself, by the official rules, pairing MME's questions by image name. A case is clean when
it is refused with one line (exit 2), or scored with exactly the oracle's numbers, every row either scored or
counted in `results.json` (`counts.dropped`), every number finite. Anything else is a silent loss, exit 1 a
traceback. An input changed by a run is a silent loss too.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
from pathlib import Path
from unittest import mock

from fuzz_families.common import Tally, run_cli

MME_ANSWERS = ["Yes", "No", "yes.", "No, it is not.", "Not sure", "None", "I think yes", "", "Yes\tno", "y"]
POPE_ANSWERS = ["Yes", "No", "yes, there is.", "No.", "not at all", "There is a cat", "", "no"]
SUBTASKS_POOL = ["existence", "count", "OCR", "code_reasoning", "color"]
PERCEPTION = {"existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
              "artwork", "OCR"}  # fmt: skip
MARKER = re.compile(r"Q(\d+)")


def _answer_index(prompt: str) -> int:
    found = MARKER.search(prompt)
    if found:
        return int(found.group(1))
    return int(hashlib.sha1(prompt.encode()).hexdigest(), 16)


def fake_generate_batch(model, processor, prompts, images, max_new_tokens):
    """The model's answers without a model: chosen by each question's marker (see module docstring)."""
    outputs = []
    for prompt in prompts:
        n = _answer_index(prompt)
        if "bounding box coordinate" in prompt:
            r = random.Random(n)
            x, y = r.random() * 0.8, r.random() * 0.8
            outputs.append(
                r.choice(["", "nothing", f"<st>it<ed> [{x:.3f}, {y:.3f}, {x + 0.1:.3f}, {y + 0.2:.3f}]",
                          f"[{x:.2f},{y:.2f},{x + .2:.2f},{y + .1:.2f}]", "[nan, 0, 1, 1]", "[0.1, 0.2, 0.3]"])
            )  # fmt: skip
        elif "coco" in prompt.lower() or "POPE" in prompt:
            outputs.append(POPE_ANSWERS[n % len(POPE_ANSWERS)])
        else:
            outputs.append(MME_ANSWERS[n % len(MME_ANSWERS)])
    return outputs


# --- The oracle: MME's official rules, written again ---------------------------------------------------------


def official_label(pred: str) -> str:
    pred = pred.lower()
    if pred in ("yes", "no"):
        return pred
    return "yes" if "yes" in pred[:4] else "no" if "no" in pred[:4] else "other"


def results_field(output: str) -> str:
    """What a results file can hold of an answer: one line, no tabs (LLaVA's writer strips it)."""
    return " ".join(output.strip().replace("\t", " ").split("\n")).strip()


def mme_scores(subtasks: dict[str, list[tuple[str, str, str]]]) -> dict[str, float]:
    """subtask -> score of (image, gt, pred-as-written) triples, pairs by image (preds keep their newline)."""
    scores = {}
    for name, triples in subtasks.items():
        by_image: dict[str, list[bool]] = {}
        for image, gt, pred in triples:
            by_image.setdefault(image, []).append(official_label(pred + "\n") == gt.lower())
        right = sum(sum(v) for v in by_image.values())
        both = sum(all(v) for v in by_image.values())
        scores[name] = 100 * right / len(triples) + 100 * both / len(by_image)
    return scores


def close(a, b) -> bool:
    return isinstance(a, int | float) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def non_finite(value, where: str = "") -> str | None:
    """The path of the first non-finite number in a JSON value, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "."
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := non_finite(v, f"{where}/{k}"))), None)
    if isinstance(value, list):
        return next((p for i, v in enumerate(value) if (p := non_finite(v, f"{where}/{i}"))), None)
    return None


# --- Cases -------------------------------------------------------------------------------------------------


class Case:
    """What a case expects: `refuse` (True: must be refused; None: either way is fine when right) and, when it
    may succeed, what the scores must be."""

    def __init__(self, kind: str, what: str):
        self.kind, self.what = kind, what
        self.refuse: bool | None = False
        self.expected: dict | None = None  # subtask or metric -> value
        self.total: int | None = None  # items that must be scored
        self.dropped = 0  # rows that must be counted as dropped
        self.protected: dict[Path, bytes] = {}  # inputs that must not change


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (rng.randint(1, 40), rng.randint(1, 40)), (rng.randrange(256), 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def results_folder_case(rng: random.Random, folder: Path, k: int) -> tuple[list[str], Case]:
    """`svit eval mme-score` of a results folder with one random fault (or none)."""
    names = rng.sample(SUBTASKS_POOL, rng.randint(1, 3))
    lines: dict[str, list[str]] = {}
    triples: dict[str, list[tuple[str, str, str]]] = {}
    for name in names:
        lines[name], triples[name] = [], []
        for i in range(rng.randint(1, 4)):
            for q in range(2):
                gt, pred = rng.choice(["Yes", "No"]), rng.choice(MME_ANSWERS).replace("\t", " ")
                lines[name].append(f"{i:04d}.png\tIs it Q{q}?\t{gt}\t{pred}\n")
                triples[name].append((f"{i:04d}.png", gt, pred))
    fault = rng.choice(["none", "none", "shuffle", "tab", "newline", "missing_field", "odd", "three", "latin1",
                        "gt", "empty", "missing_file", "crlf", "output_inside", "output_onto", "output_exists"])  # fmt: skip
    case = Case("mme-score", fault)
    case.expected = mme_scores(triples)
    victim = rng.choice(names)
    rows = lines[victim]
    if fault == "shuffle":
        rng.shuffle(rows)  # pairing by image: the same scores, or refused
        case.refuse = None
    elif fault == "tab":
        rows[0] = rows[0].replace("Is it", "Is\tit", 1)
        case.refuse = True
    elif fault == "newline":
        rows[0] = rows[0].replace("Is it", "Is\nit", 1)
        case.refuse = True
    elif fault == "missing_field":
        rows[0] = rows[0].rsplit("\t", 1)[0] + "\n"
        case.refuse = True
    elif fault == "odd":
        rows.pop(rng.randrange(len(rows)))
        case.refuse = True
    elif fault == "three":
        if len(rows) >= 4:  # 3 questions for the first image, 1 for the last: an even count, mispaired
            rows[-1] = rows[0].split("\t", 1)[0] + "\t" + rows[-1].split("\t", 1)[1]
        else:  # one image: a third question
            rows.append(rows[0].replace("Q0", "Q2"))
        case.refuse = True
    elif fault == "gt":
        rows[0] = rows[0].replace("\tYes\t", "\tMaybe\t").replace("\tNo\t", "\tMaybe\t")
        case.refuse = True
    elif fault == "empty":
        rows.clear()
        case.refuse = True
    elif fault == "crlf":
        lines[victim] = [r.replace("\n", "\r\n") for r in rows]
    results = folder / f"results-{k}"
    results.mkdir()
    for name, found in lines.items():
        if fault == "missing_file" and name == victim:
            case.refuse = True
            continue
        data = "".join(found).encode("utf-8")
        if fault == "latin1" and name == victim:
            data = data.replace(b"Is it", "Is \xe9t\xe9".encode("latin-1"), 1)
            case.refuse = None  # read as Latin-1 and scored right, or refused
        (results / f"{name}.txt").write_bytes(data)
    output = folder / f"scores-{k}.json"
    if fault == "output_inside":
        output, case.refuse = results / "scores.json", True
    elif fault == "output_onto":
        output, case.refuse = results / f"{victim}.txt", True
    elif fault == "output_exists":
        output.write_text("my notes\n")
        case.refuse = True
    case.protected = {p: p.read_bytes() for p in [*results.iterdir(), output] if p.is_file()}
    argv = ["eval", "mme-score", str(results), "--output", str(output), "--subtasks", ",".join(names)]
    return argv, case


def _flags(rng: random.Random, case: Case) -> list[str]:
    """Random numeric flags of `svit eval`; an out-of-range one must be refused."""
    argv = []
    rules = {
        "--batch-size": (["0", "-1", "1", "2", "8", "1.5", "nan", "100000000"], lambda v: 1 <= v <= 4096),
        "--max-new-tokens": (["0", "-5", "1", "16", "100000000", "1e3", "inf"], lambda v: 1 <= v <= 4096),
        "--max-failed-fraction": (["nan", "-0.1", "0", "0.5", "1", "2", "inf"], lambda v: 0 <= v <= 1),
    }
    for flag in rng.sample(sorted(rules), rng.randint(0, 2)):
        texts, ok = rules[flag]
        text = rng.choice(texts)
        try:
            value = float(text) if flag == "--max-failed-fraction" else int(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not ok(value):
            case.refuse = True
        argv += [flag, text]
        case.what += f" {flag} {text}"
    return argv


def mme_case(rng: random.Random, folder: Path, k: int, model: str) -> tuple[list[str], Case]:
    """`svit eval mme` of a release-layout folder with one random fault (or none)."""
    data = folder / f"mme-{k}"
    names = rng.sample(SUBTASKS_POOL, rng.randint(1, 2))
    fault = rng.choice(["none", "none", "none", "one", "three", "tab", "latin1", "answer", "no_image",
                        "bad_image", "long", "crlf", "bom", "output_inside"])  # fmt: skip
    case = Case("mme", fault)
    triples: dict[str, list[tuple[str, str, str]]] = {}
    marker = rng.randrange(1000)
    victim = rng.choice(names)
    for name in names:
        sub = data / name
        sub.mkdir(parents=True)
        triples[name] = []
        for i in range(rng.randint(1, 3)):
            questions = []
            for _q in range(2):
                marker += 1
                gt = rng.choice(["Yes", "No"])
                questions.append((f"Is there a thing Q{marker}?", gt))
                pred = results_field(MME_ANSWERS[marker % len(MME_ANSWERS)])
                if fault == "bad_image" and name == victim and i == 0:
                    pred = ""  # an image that does not load: an empty answer, scored wrong
                triples[name].append((f"{i}.png", gt, pred))
            text = "".join(f"{q}\t{a}\n" for q, a in questions)
            (sub / f"{i}.png").write_bytes(_png(rng))
            first = name == victim and i == 0
            if first and fault == "one":
                text, case.refuse = text.splitlines(keepends=True)[0], True
            elif first and fault == "three":
                text, case.refuse = text + text.splitlines(keepends=True)[0], True
            elif first and fault == "tab":
                text, case.refuse = text.replace("a thing", "a\tthing", 1), True
            elif first and fault == "answer":
                text, case.refuse = text.replace("\tYes", "\tMaybe", 1).replace("\tNo", "\tMaybe", 1), True
            elif first and fault == "long":
                text, case.refuse = text.replace("a thing", "word " * 20000, 1), True
            elif first and fault == "crlf":
                text = text.replace("\n", "\r\n")
            data_bytes = text.encode("utf-8")
            if first and fault == "latin1":
                data_bytes, case.refuse = (
                    data_bytes.replace(b"a thing", "\xe9t\xe9".encode("latin-1"), 1),
                    None,
                )
            if first and fault == "bom":
                data_bytes = b"\xef\xbb\xbf" + data_bytes
            (sub / f"{i}.txt").write_bytes(data_bytes)
            if first and fault == "no_image":
                (sub / f"{i}.png").unlink()
                case.refuse = True
            if first and fault == "bad_image":
                (sub / f"{i}.png").write_bytes(b"not an image")
                case.refuse = None  # counted as failed (wrong answers) under the gate, or refused by it
    case.expected = mme_scores(triples)
    output = data / "out" if fault == "output_inside" else folder / f"mme-out-{k}"
    case.refuse = True if fault == "output_inside" else case.refuse
    case.protected = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    argv = ["eval", "mme", "--model", model, "--data", str(data), "--output", str(output),
            "--subtasks", ",".join(names), "--prompt-suffix", "", "--no-progress"]  # fmt: skip
    if fault == "bad_image":
        argv += ["--max-failed-fraction", "1"]
    else:
        argv += _flags(rng, case)
    return argv, case


def pope_case(rng: random.Random, folder: Path, k: int, model: str) -> tuple[list[str], Case]:
    data, images = folder / f"pope-{k}", folder / f"pope-images-{k}"
    data.mkdir()
    images.mkdir()
    fault = rng.choice(["none", "none", "json", "key", "label", "nested", "not_object", "latin1", "no_image",
                        "duplicate", "blank"])  # fmt: skip
    case = Case("pope", fault)
    right = total = 0
    marker = rng.randrange(1000)
    for category in ("random", "popular", "adversarial"):
        lines = []
        for i in range(rng.randint(1, 3)):
            marker += 1
            label = rng.choice(["yes", "no"])
            name = f"{category}-{i}.png"
            (images / name).write_bytes(_png(rng))
            q = {"question_id": i, "image": name, "text": f"Is there a cat in this coco image Q{marker}?",
                 "label": label}  # fmt: skip
            lines.append(json.dumps(q))
            answer = POPE_ANSWERS[marker % len(POPE_ANSWERS)].strip()
            said = _pope_said(answer)
            # an image that does not load is a wrong answer (if the gate lets the run score at all)
            right += said == label and not (fault == "no_image" and category == "random" and i == 0)
            total += 1
        if category == "random" and fault != "none":
            if fault == "json":
                lines[0], case.refuse = lines[0][:-3], True
            elif fault == "key":
                lines[0], case.refuse = json.dumps({"image": "x.png", "text": "Q1"}), True
            elif fault == "label":
                lines[0], case.refuse = lines[0].replace('"label": "yes"', '"label": "maybe"').replace(
                    '"label": "no"', '"label": "maybe"'), True  # fmt: skip
            elif fault == "nested":
                depth = rng.choice([1000, 20000])
                lines[0], case.refuse = "[" * depth + "]" * depth, True
            elif fault == "not_object":
                lines[0], case.refuse = rng.choice(["[1, 2]", "null", "3", '"text"']), True
            elif fault == "latin1":
                lines[0], case.refuse = lines[0].replace("cat", "caf\udce9", 1), None
            elif fault == "no_image":
                (images / "random-0.png").unlink()
                case.refuse = None  # over the default 1% gate; scored wrong under a raised one
            elif fault == "duplicate":
                lines.append(lines[0])
                case.refuse = True  # two answers for one question id
            elif fault == "blank":
                lines.insert(0, "   ")
        path = data / f"coco_pope_{category}.json"
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    case.expected = {"accuracy": right / total}
    case.total = total
    output = folder / f"pope-out-{k}"
    case.protected = {p: p.read_bytes() for p in [*data.iterdir(), *images.iterdir()]}
    argv = ["eval", "pope", "--model", model, "--data", str(data), "--images", str(images), "--output",
            str(output), "--prompt-suffix", "", "--no-progress", *_flags(rng, case)]  # fmt: skip
    return argv, case


def _pope_said(answer: str) -> str:
    """LLaVA's eval_pope reading, written again: first sentence, commas out, words; no/not/No is `no`."""
    text = answer.split(".")[0] if "." in answer else answer
    words = text.replace(",", "").split(" ")
    return "no" if {"No", "not", "no"} & set(words) else "yes"


def grounding_case(rng: random.Random, folder: Path, k: int, model: str) -> tuple[list[str], Case]:
    import datasets

    rows = {"question_id": [], "image": [], "bbox": [], "expression": []}
    case = Case("grounding", "")
    good = bad_rows = 0
    faults = []
    for i in range(rng.randint(2, 6)):
        png = _png(rng)
        bbox = [rng.uniform(0, 5), rng.uniform(0, 3), rng.uniform(1, 10), rng.uniform(1, 5)]
        expression = f"the thing {i}"
        fault = rng.choice(["none"] * 6 + ["nan", "inf", "three", "negative", "no_expression", "empty_list"])
        if fault == "nan":
            bbox[rng.randrange(4)] = float("nan")
        elif fault == "inf":
            bbox[rng.randrange(4)] = float("inf")
        elif fault == "three":
            bbox = bbox[:3]
        elif fault == "negative":
            bbox[2] = -abs(bbox[2]) - 1
        elif fault == "no_expression":
            expression = rng.choice(["", "   "])
        elif fault == "empty_list":
            expression = None
        if fault == "none":
            good += 1
        else:
            bad_rows += 1
            faults.append(fault)
        rows["question_id"].append(f"q{i}")
        rows["image"].append({"bytes": png, "path": None})
        rows["bbox"].append(bbox)
        rows["expression"].append(expression)
    features = datasets.Features(
        {"question_id": datasets.Value("string"), "image": datasets.Image(),
         "bbox": datasets.Sequence(datasets.Value("float64")), "expression": datasets.Value("string")}
    )  # fmt: skip
    path = folder / f"refcoco-{k}.parquet"
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    case.what = ", ".join(faults) or "none"
    case.total, case.dropped = good, bad_rows
    case.refuse = None if bad_rows else False  # the dropped-rows gate may refuse; else counted
    case.protected = {path: path.read_bytes()}
    output = folder / f"grounding-out-{k}"
    argv = ["eval", "grounding", "--model", model, "--data", str(path), "--output", str(output),
            "--no-progress", "--max-failed-fraction", rng.choice(["1", "0.5", "0.01"])]  # fmt: skip
    return argv, case


# --- Running and judging -------------------------------------------------------------------------------------


def judge(case: Case, code: int, line: str, argv: list[str]) -> tuple[str, str]:
    """(outcome, detail) of a finished case."""
    changed = [str(p) for p, data in case.protected.items() if not p.is_file() or p.read_bytes() != data]
    if changed:
        return "silent", f"input changed: {changed[0]}"
    if code == 1 or "internal error" in line:
        return "traceback", line
    if code == 2:
        if line.startswith("svit eval") and ": error: " in line:
            return ("clean", "") if case.refuse is not False else ("refused_valid", line)
        return "traceback", f"exit 2 without one clean line: {line!r}"
    if code != 0:
        return "traceback", f"exit {code}: {line}"
    if case.refuse is True:
        return "silent", "accepted"
    output = Path(argv[argv.index("--output") + 1])
    if case.kind == "mme-score":
        return _judge_scores(case, json.loads(output.read_text()), "scores")
    document = json.loads((output / "results.json").read_text())
    if (where := non_finite(document)) is not None:
        return "silent", f"non-finite number in results.json at {where}"
    if case.kind == "mme":
        outcome = _judge_scores(case, document["metrics"], "results.json")
        if outcome[0] != "clean":
            return outcome
        names = argv[argv.index("--subtasks") + 1]
        scores = output.parent / f"{output.name}-rescored.json"
        code, line = run_cli(["eval", "mme-score", str(output / "mme_results"), "--output", str(scores),
                              "--subtasks", names])  # fmt: skip
        if code != 0:
            return "silent", f"our scorer refused the results folder our harness wrote: {line}"
        return _judge_scores(case, json.loads(scores.read_text()), "rescored")
    metrics = document["metrics"]
    dropped = sum((document.get("counts") or {}).get("dropped", {}).values())
    if case.kind == "pope":
        if metrics.get("total") != case.total or not close(
            metrics.get("accuracy"), case.expected["accuracy"]
        ):
            return (
                "silent",
                f"accuracy {metrics.get('accuracy')} of {metrics.get('total')}, expected {case.expected}",
            )
        return "clean", ""
    total = metrics.get("total")
    if total != case.total or dropped != case.dropped:
        return "silent", f"{total} scored + {dropped} counted dropped; expected {case.total} + {case.dropped}"
    if not all(0 <= v <= 1 for key, v in metrics.items() if key in ("acc@0.5", "mean_iou")):
        return "silent", f"grounding metrics out of [0, 1]: {metrics}"
    return "clean", ""


def _judge_scores(case: Case, scores: dict, what: str) -> tuple[str, str]:
    got = scores.get("subtasks") or {}
    wrong = {n: (got.get(n), v) for n, v in case.expected.items() if not close(got.get(n), v)}
    if wrong or set(got) != set(case.expected):
        return "silent", f"{what}: subtask scores (got, expected) {wrong or sorted(got)}"
    perception = sum(v for n, v in case.expected.items() if n in PERCEPTION)
    if not close(scores.get("perception"), perception):
        return "silent", f"{what}: perception {scores.get('perception')}, expected {perception}"
    return "clean", ""


def run(rng: random.Random, n: int, tally: Tally, work: Path) -> None:
    import svit_model.evaluation.harness as harness
    import svit_model.evaluation.run as eval_run
    from svit_model.tiny import build_tiny_svit_llava, save_tiny_svit_llava

    model_dir = save_tiny_svit_llava(work / "tiny-model")
    loaded = build_tiny_svit_llava()

    def load_for_eval(model_path, dtype=None, device=None):
        return loaded

    with (
        mock.patch.object(eval_run, "load_for_eval", load_for_eval),
        mock.patch.object(harness, "generate_batch", fake_generate_batch),
        mock.patch("svit_model.evaluation.mme.mme_bar_chart", lambda *a, **k: None),
    ):
        for k in range(n):
            kind = rng.choices(["mme-score", "mme", "pope", "grounding"], [4, 3, 2, 2])[0]
            if kind == "mme-score":
                argv, case = results_folder_case(rng, work, k)
            elif kind == "mme":
                argv, case = mme_case(rng, work, k, str(model_dir))
            elif kind == "pope":
                argv, case = pope_case(rng, work, k, str(model_dir))
            else:
                argv, case = grounding_case(rng, work, k, str(model_dir))
            code, line = run_cli(argv)
            outcome, detail = judge(case, code, line, argv)
            tally.add(outcome, f"{case.kind} {case.what}", detail, case.kind)
