"""bench/fuzz.py cannot rot: every family runs a few cases end to end, and each oracle still catches a defect
planted on purpose (a fuzzer that calls everything clean would pass the first test alone)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import fuzz  # noqa: E402
from fuzz_families import cards, common, space, train  # noqa: E402
from fuzz_families import eval as eval_family  # noqa: E402

from svit_dataset.errors import SvitInputError  # noqa: E402


@pytest.mark.parametrize("family", fuzz.NEW_FAMILIES)
def test_each_new_family_runs_and_classes_every_case(family, tmp_path, capsys):
    tally = fuzz.run_new_family(family, 6, seed=1)
    c = tally.counts
    assert c["cases"] == 6
    assert c["clean"] + c["traceback"] + c["silent"] + c["refused_valid"] + c["slow"] == 6
    assert f"[{family}] cases 6:" in capsys.readouterr().out


def test_the_old_families_run_through_the_entry_point(capsys):
    code = fuzz.main(["--family", "records", "--family", "files", "--family", "strings", "--records", "100",
                      "--files", "5", "--strings", "50", "--no-processor"])  # fmt: skip
    out = capsys.readouterr().out
    assert "cases tried: 155" in out
    assert code in (0, 1)


def test_attempt_tells_a_clean_refusal_from_a_traceback():
    with pytest.raises(common.Refused), common.attempt():
        raise SvitInputError("--flag 3: pass 1 or more")
    with pytest.raises(common.Defect, match="KeyError"), common.attempt():
        {}["missing"]  # noqa: B018
    with pytest.raises(common.Defect, match="RecursionError"), common.attempt():
        json.loads("[" * 100_000 + "]" * 100_000)


def test_train_oracle_knows_invalid_values():
    assert not train.valid_value("learning_rate", float("nan"))
    assert not train.valid_value("max_steps", -5)
    assert not train.valid_value("per_device_train_batch_size", 0)
    assert not train.valid_value("projector_lr", -1.0)
    assert not train.valid_value("lora_r", 1.5)
    assert not train.valid_value("seed", 2**40)
    assert train.valid_value("max_steps", -1) and train.valid_value("projector_lr", None)
    assert train.valid_value("logging_steps", 0.5) and not train.valid_value("logging_steps", 1.5)


def test_eval_oracle_pairs_mme_by_image_and_flags_wrong_scores(tmp_path):
    adjacent = [("a", "Yes", "yes"), ("b", "No", "no"), ("a", "No", "no"), ("b", "Yes", "no")]
    # paired by name: a is right twice (acc+ 1 of 2 images), b once
    assert eval_family.mme_scores({"existence": adjacent})["existence"] == pytest.approx(
        100 * 3 / 4 + 100 / 2
    )
    argv, case = eval_family.results_folder_case(random.Random(3), tmp_path, 0)
    output = Path(argv[argv.index("--output") + 1])
    name = next(iter(case.expected))
    output.write_text(json.dumps({"subtasks": {name: -1.0}, "perception": 0.0}))
    case.refuse = False
    case.protected = {}
    assert eval_family.judge(case, 0, "", argv)[0] == "silent"
    assert eval_family.judge(case, 1, "svit eval: internal error: x", argv)[0] == "traceback"


def test_cards_oracle_flags_a_non_finite_or_lost_metric(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "---\nmodel-index:\n- name: m\n  results:\n  - task: {type: t}\n    dataset: {name: d, type: d}\n"
        "    metrics:\n    - {type: acc, value: .nan}\n---\n"
    )
    expect = cards.Expect()
    assert cards.check_card(readme, expect)[0] == "silent"
    readme.write_text(readme.read_text().replace(".nan", "0.5"))
    assert cards.check_card(readme, expect)[0] == "clean"
    expect.indexed.append(0.25)
    assert cards.check_card(readme, expect)[0] == "silent"


def test_space_oracle_bounds_the_answer():
    from svit_model.tiny import build_tiny_svit_llava

    _, processor = build_tiny_svit_llava()
    from PIL import Image

    image = Image.new("RGB", (10, 10))
    assert space._check_answer(processor, [("hi", None)], image, "hi", image, 4) is None
    assert "characters" in space._check_answer(processor, [], image, "x" * 10_000, image, 4)
