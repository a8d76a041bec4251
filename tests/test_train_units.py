"""`svit train` without training: labels, templates, data sources, LoRA scope, recipes and bad input.

Every bad input stops with a one-line error before any model is loaded (`load_model` is replaced by a trap).
"""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from peft import get_peft_model

from svit_cli.jobs.train import parse_train_arguments
from svit_cli.main import main
from svit_dataset.boxes import move_boxes_in_text, upstream_expand_to_square_text
from svit_dataset.errors import SvitError, SvitInputError
from svit_dataset.schema import ASSISTANT, SAMPLE_FEATURES
from svit_model.processing_svit_llava import VICUNA_V1_TEMPLATE
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows
from svit_model.training.collator import DROP_REASONS, SvitCollator, trained_spans
from svit_model.training.data import load_training_data
from svit_model.training.model import lora_config, set_trainable, trained_prefixes
from svit_model.training.stages import STAGES
from svit_model.training.train import train
from svit_model.training.training_recipes import list_training_recipes
from tests.train_fixtures import grounded_rows, train_args

MARKERLESS = VICUNA_V1_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


@pytest.fixture(scope="module")
def rows():
    return grounded_rows()


@pytest.fixture(scope="module")
def tiny(rows):
    return build_tiny_svit_llava(corpus_from_rows(rows))


@pytest.fixture(scope="module")
def files(tiny_grounded_checkpoint, grounded_dataset):
    """A tiny checkpoint and a dataset folder on disk (of `rows`)."""
    return tiny_grounded_checkpoint, grounded_dataset


def dataset_of(rows):
    return datasets.Dataset.from_list(rows, features=SAMPLE_FEATURES)


def run_train(argv):
    return train(*parse_train_arguments(argv))


# --- labels -----------------------------------------------------------------------------------------------------


def test_trained_label_spans_are_exactly_the_assistant_turns_with_eos(tiny, rows):
    _, processor = tiny
    tokenizer = processor.tokenizer
    batch = SvitCollator(processor, template="default")([dataset_of(rows)[i] for i in range(len(rows))])
    assert batch["svit_dropped"].tolist() == [0] * len(DROP_REASONS)
    for row, input_ids, labels in zip(rows, batch["input_ids"], batch["labels"], strict=True):
        expected = [
            move_boxes_in_text(m["content"], row["width"], row["height"], to_padded=True)[0]
            for m in row["messages"]
            if m["role"] == ASSISTANT
        ]
        spans = [tokenizer.decode(input_ids[start:end]) for start, end in trained_spans(labels)]
        # the space after "ASSISTANT:" is the turn's first token (what generation must write), then text, </s>
        assert spans == [f" {text}{tokenizer.eos_token}" for text in expected]
        trained = labels != -100
        assert torch.equal(labels[trained], input_ids[trained])
        assert not (input_ids[trained] == processor.image_token_id).any()
        assert not (input_ids[trained] == tokenizer.pad_token_id).any()
    # the boxes moved into the padded square: 64x48 pads 8 px above and below
    assert "[0.125, 0.350, 0.450, 0.734]" in tokenizer.decode(batch["input_ids"][0])


def test_plain_template_trains_the_caption_and_its_newline(tiny, rows):
    _, processor = tiny
    row = {
        **rows[0],
        "messages": [
            {"role": "user", "content": "Describe."},
            {"role": "assistant", "content": "A red ball."},
        ],
    }
    batch = SvitCollator(processor, template="plain")([dataset_of([row])[0]])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert text.startswith("<s><image>") and "Describe" not in text
    spans = [
        processor.tokenizer.decode(batch["input_ids"][0][s:e]) for s, e in trained_spans(batch["labels"][0])
    ]
    assert spans == ["A red ball.\n"]


def test_template_without_generation_markers_is_refused(tiny, rows):
    _, processor = tiny
    templates = dict(processor.chat_template)
    processor.chat_template = {**templates, "default": MARKERLESS}
    try:
        with pytest.raises(SvitError, match="no \\{% generation %\\} markers"):
            SvitCollator(processor, template="default")
        processor.chat_template = {"default": templates["default"]}
        with pytest.raises(SvitError, match="no chat template 'plain' \\(it has default\\)"):
            SvitCollator(processor, template="plain")
    finally:
        processor.chat_template = templates


def test_a_batch_that_trains_nothing_raises_and_truncation_keeps_images_whole(tiny, rows):
    _, processor = tiny
    examples = [dataset_of(rows)[i] for i in range(2)]
    full = SvitCollator(processor, template="default")(examples)
    image_end = int((full["input_ids"][0] == processor.image_token_id).nonzero().max()) + 1
    first_answer = trained_spans(full["labels"][0])[0][0]
    # a cut inside the image tokens: the sample is never cut there; a batch of such samples stops
    with pytest.raises(SvitError, match="trains no token .*image_beyond_max_length"):
        SvitCollator(processor, template="default", max_length=image_end - 1)(examples)
    # a cut after the image but before any answer: nothing to train
    with pytest.raises(SvitError, match="no_trained_tokens"):
        SvitCollator(processor, template="default", max_length=first_answer)(examples)
    # a cut inside the first answer: that sample trains its first tokens, and rows are max_length long
    batch = SvitCollator(processor, template="default", max_length=first_answer + 3)(examples)
    assert batch["input_ids"].shape[1] == first_answer + 3
    assert batch["svit_dropped"].tolist() == [0, 0]
    assert (batch["labels"] != -100).sum(dim=1).tolist() == [3, 3]


def test_a_sample_that_trains_nothing_leaves_the_batch_counted(tiny, rows):
    _, processor = tiny
    empty = {**rows[1], "messages": [{"role": "user", "content": "Hi"}]}  # no assistant turn
    examples = [dataset_of(rows)[0], dataset_of([empty])[0]]
    batch = SvitCollator(processor, template="default")(examples)
    assert batch["svit_dropped"].tolist() == [1, 0]
    assert batch["input_ids"].shape[0] == 1 and batch["pixel_values"].shape[0] == 1


# --- data -------------------------------------------------------------------------------------------------------


def write_llava_json(tmp_path, rows, missing=()):
    """LLaVA-1.5 JSON of `rows` (as `svit export llava` writes: `<image>` first, padded boxes) and its images."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    records = []
    for row in rows:
        path = f"vg/{row['image_id']}.png"
        if path not in missing:
            (images / "vg").mkdir(exist_ok=True)
            (images / path).write_bytes(row["images"][0]["bytes"])
        turns = [
            {
                "from": "human" if m["role"] == "user" else "gpt",
                "value": ("<image>\n" if i == 0 else "")
                + upstream_expand_to_square_text(m["content"], row["width"], row["height"]),
            }
            for i, m in enumerate(row["messages"])
        ]
        records.append({"id": row["id"], "image": path, "conversations": turns})
    records.append(
        {
            "id": "text-only",
            "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}],
        }
    )
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(records))
    return path, images


def test_llava_json_boxes_move_into_the_padded_square_exactly_once(tmp_path, tiny, rows):
    _, processor = tiny
    path, images = write_llava_json(tmp_path, rows)
    data = load_training_data(str(path), image_folder=str(images))
    assert data.boxes_in_padded_frame and len(data.dataset) == len(rows) + 1
    first = data.dataset[0]
    assert first["messages"][0]["content"] == rows[0]["messages"][0]["content"]  # `<image>\n` gone
    samples = (
        data.samples()
    )  # images read and boxes moved back to the original image, as the trainer draws them
    assert samples[0]["images"][0].size == (64, 48)
    batch = SvitCollator(processor, template="default")([samples[0], samples[len(rows)]])  # image, text only
    text = processor.tokenizer.decode(batch["input_ids"][0])
    # upstream's padded box (its pixel rounding makes 0.344 of the exact 0.350) comes out as upstream wrote it,
    # in the processor's 3 decimals: moved out and back in, not moved twice
    upstream = upstream_expand_to_square_text("[0.125, 0.300, 0.450, 0.812]", 64, 48)
    assert upstream == "[0.125, 0.344, 0.453, 0.734]"
    assert f"ASSISTANT: <st>red ball<ed> {upstream}</s>" in text
    assert batch["pixel_values"].shape[0] == 1


def test_missing_image_files_stop_or_are_counted(tmp_path, rows):
    path, images = write_llava_json(tmp_path, rows, missing=("vg/12.png",))
    with pytest.raises(SvitInputError, match="1 of 4 images are missing, e.g. .*vg/12.png"):
        load_training_data(str(path), image_folder=str(images))
    data = load_training_data(str(path), image_folder=str(images), drop_missing_images=True)
    assert data.dropped == {"missing_image": 1} and len(data.dataset) == len(rows)
    with pytest.raises(SvitInputError, match="pass --image_folder"):
        load_training_data(str(path))


def test_dataset_without_messages_is_refused(tmp_path):
    folder = tmp_path / "data"
    datasets.Dataset.from_dict({"text": ["a"], "images": [[]]}).to_parquet(str(folder / "train.parquet"))
    with pytest.raises(SvitInputError, match="no `messages` column"):
        load_training_data(str(folder))


# --- LoRA scope -------------------------------------------------------------------------------------------------


def test_lora_goes_to_the_language_model_only_and_the_projector_trains_in_full(tiny):
    from trl import ModelConfig

    model, _ = build_tiny_svit_llava(seed=1)
    stage = STAGES["finetune"]
    config = lora_config(
        ModelConfig(use_peft=True, lora_r=4, lora_target_modules=["q_proj", "fc1"]), stage, False
    )
    peft_model = get_peft_model(model, config)
    lora_modules = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    assert lora_modules and all(".language_model." in name for name in lora_modules)
    # CLIP's attention has q_proj and fc1 too: none of them carries an adapter
    assert not any("vision_tower" in name for name, _ in peft_model.named_parameters() if "lora_" in name)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("multi_modal_projector.modules_to_save" in name for name in trainable)
    assert all("lora_" in name or "multi_modal_projector" in name for name in trainable)
    with pytest.raises(SvitInputError, match="no LoRA"):
        lora_config(ModelConfig(use_peft=True), STAGES["pretrain"], False)


def test_lora_trains_the_rows_of_the_grounding_tokens_in_both_embeddings(tiny):
    from trl import ModelConfig

    from svit_model.training.model import grounding_token_ids

    model, processor = build_tiny_svit_llava(seed=1)
    ids = grounding_token_ids(processor)
    config = lora_config(ModelConfig(use_peft=True, lora_r=4), STAGES["finetune"], False, ids)
    peft_model = get_peft_model(model, config)
    deltas = {n: p for n, p in peft_model.named_parameters() if "trainable_tokens_delta" in n}
    assert {n.split(".token_adapter")[0].rsplit(".", 1)[-1] for n in deltas} == {"embed_tokens", "lm_head"}
    assert all(p.requires_grad and p.shape[0] == len(ids) for p in deltas.values())
    # the LM head's weight, as TRL's fused head reads it, carries the trainable rows
    head = peft_model.get_output_embeddings()
    (torch.randn(3, head.weight.shape[1]) @ head.weight.T).sum().backward()
    assert next(p for n, p in deltas.items() if "lm_head" in n).grad.abs().sum() > 0


def test_stage_prefixes_freeze_the_vision_tower_and_pretrain_trains_only_the_projector():
    model, _ = build_tiny_svit_llava(seed=1)
    set_trainable(model, trained_prefixes(STAGES["pretrain"], False, False))
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad} == {
        "multi_modal_projector"
    }
    set_trainable(model, trained_prefixes(STAGES["finetune"], False, False))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("vision_tower" in n for n in trainable) and any("lm_head" in n for n in trainable)
    set_trainable(model, trained_prefixes(STAGES["finetune"], False, True))
    assert any("vision_tower" in n for n, p in model.named_parameters() if p.requires_grad)


# --- recipes and arguments -------------------------------------------------------------------------------------


def test_every_shipped_recipe_parses_into_the_argument_dataclasses():
    assert {
        "tiny-stage1",
        "tiny-stage2-full",
        "tiny-stage2-lora",
        "svit-v1.5-7b-lora",
        "svit-v1.5-13b-full",
    } <= set(list_training_recipes())
    for name in list_training_recipes():  # the GPU recipes' bf16 needs a GPU, or `use_cpu` on this machine
        script, training, model = parse_train_arguments(["--config", name, "--use_cpu", "true"])
        assert script.stage in STAGES and model.model_name_or_path and training.output_dir
    script, training, model = parse_train_arguments(["--config", "svit-v1.5-13b-lora", "--use_cpu", "true"])
    # LLaVA-1.5's LoRA hyper-parameters
    assert (model.lora_r, model.lora_alpha, training.learning_rate, script.projector_lr) == (
        128,
        256,
        2e-4,
        2e-5,
    )
    assert training.per_device_train_batch_size * 8 == 128 and training.max_length == 2048
    assert (
        training.lr_scheduler_type == "cosine"
        and training.warmup_steps == 0.03
        and training.weight_decay == 0
    )
    script, training, model = parse_train_arguments(
        ["--config", "svit-v1.5-7b-full", "--max_steps", "5", "--use_cpu", "true"]
    )
    assert (training.learning_rate, training.max_steps, script.group_by_modality_length) == (2e-5, 5, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "no-such-recipe"], "--config no-such-recipe: neither a shipped recipe"),
        (
            ["--config", "tiny-stage2-full", "--max_steps", "many"],
            "argument --max_steps/--max-steps: invalid int value: 'many'",
        ),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message, no_model_load):
    try:
        code = main(["train", *argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("svit train: error: ") and message in err[0], err


def test_wrongly_typed_recipe_value_is_named(tmp_path, capsys, no_model_load):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 1.5\nlearning_rate: 0.001\n")
    assert main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"svit train: error: --config {recipe}: max_steps: 1.5 is a float, expected int"]


def test_bad_input_stops_before_the_model_loads(tmp_path, files, rows, no_model_load):
    model_dir, data_dir = files
    # a used output folder without --overwrite_output_dir or a resume
    used = tmp_path / "used"
    (used / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(SvitInputError, match="already holds a run; pass --resume_from_checkpoint last"):
        run_train(train_args(model_dir, data_dir, used))
    # a dataset without `messages`
    no_messages = tmp_path / "no_messages"
    datasets.Dataset.from_dict({"text": ["a"]}).to_parquet(str(no_messages / "train.parquet"))
    with pytest.raises(SvitInputError, match="no `messages` column"):
        run_train(train_args(model_dir, no_messages, tmp_path / "out1"))
    # --overwrite_output_dir deletes the old run only once every check has passed
    with pytest.raises(SvitInputError, match="no `messages` column"):
        run_train(train_args(model_dir, no_messages, used, overwrite_output_dir="true"))
    assert (used / "checkpoint-1").is_dir()
    # an image missing on disk
    path, images = write_llava_json(tmp_path, rows, missing=("vg/13.png",))
    with pytest.raises(SvitInputError, match="images are missing"):
        run_train(train_args(model_dir, path, tmp_path / "out2", image_folder=images))
    # a checkpoint whose template lost its markers
    from transformers import AutoProcessor

    broken = tmp_path / "broken"
    processor = AutoProcessor.from_pretrained(model_dir)
    processor.chat_template = {**processor.chat_template, "default": MARKERLESS}
    processor.save_pretrained(broken)
    with pytest.raises(SvitError, match="no \\{% generation %\\} markers"):
        run_train(train_args(broken, data_dir, tmp_path / "out3"))
    # LoRA in a stage that has none
    with pytest.raises(SvitInputError, match="no LoRA"):
        run_train(train_args(model_dir, data_dir, tmp_path / "out4", recipe="tiny-stage1", use_peft="true"))


def test_sampler_lengths_read_from_arrow(rows):
    from svit_model.training.sampler import modality_lengths

    data = dataset_of([*rows, {**rows[0], "images": [], "image_path": ""}])
    lengths = modality_lengths(data, image_tokens=100)
    words = [sum(len(m["content"].split()) for m in r["messages"]) for r in rows]
    assert lengths == [w + 100 for w in words] + [-words[0]]
    assert np.all(np.array(lengths[:-1]) > 0)


def test_listing_and_accelerate_config_and_svit_model_tiny(tmp_path, capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    assert "tiny-stage2-lora" in out and "svit-v1.5-7b-full" in out and "zero3_offload" in out
    assert main(["train", "--accelerate-config", "zero3"]) == 0
    text = capsys.readouterr().out
    assert "distributed_type: DEEPSPEED" in text and "accelerate_configs/deepspeed/zero3.json" in text
    assert main(["train", "--accelerate-config", "nope"]) == 2
    assert "not shipped" in capsys.readouterr().err
    # --deepspeed takes a shipped config's name
    _, training, _ = parse_train_arguments(["--config", "tiny-stage2-full", "--deepspeed", "zero2"])
    assert str(training.deepspeed).endswith("deepspeed/zero2.json")

    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert main(["model", "tiny", "--output", str(tmp_path / "tiny")]) == 0
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "tiny")
    processor = AutoProcessor.from_pretrained(tmp_path / "tiny")
    assert model.config.model_type == "svit_llava" and set(processor.chat_template) == {"default", "plain"}
    assert main(["model", "tiny", "--output", str(tmp_path / "tiny")]) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_training_on_a_llava_json_counts_what_it_left_out(tmp_path, files, rows):
    model_dir, _ = files
    path, images = write_llava_json(tmp_path, rows, missing=("vg/14.png",))
    result = run_train(
        train_args(
            model_dir,
            path,
            tmp_path / "out",
            image_folder=images,
            drop_missing_images="true",
            max_steps=2,
            per_device_train_batch_size=2,
        )
    )
    assert result.global_step == 2 and result.counts["tokens_trained"] > 0
    assert result.summary.endswith("samples dropped (1 missing_image)")
    card = (tmp_path / "out" / "README.md").exists()
    assert not card  # no card writer given: the library writes no card of its own


def test_bad_input_through_the_command_is_one_line(tmp_path, files, rows, capsys, no_model_load):
    model_dir, data_dir = files
    no_messages = tmp_path / "no_messages"
    datasets.Dataset.from_dict({"text": ["a"]}).to_parquet(str(no_messages / "train.parquet"))
    path, images = write_llava_json(tmp_path, rows, missing=("vg/11.png",))
    used = tmp_path / "used"
    (used / "checkpoint-7").mkdir(parents=True)
    cases = [
        (train_args(model_dir, no_messages, tmp_path / "a"), "no `messages` column"),
        (train_args(model_dir, path, tmp_path / "b", image_folder=images), "1 of 4 images are missing"),
        (train_args(model_dir, data_dir, used), "already holds a run"),
        (
            train_args(model_dir, data_dir, tmp_path / "c", learning_rate="fast"),
            "invalid float value: 'fast'",
        ),
    ]
    capsys.readouterr()
    for argv, message in cases:
        try:
            code = main(["train", *argv])
        except SystemExit as exit_:
            code = exit_.code
        err = capsys.readouterr().err
        # one error line, no traceback (progress bars of `datasets` may precede it)
        assert code == 2 and "Traceback" not in err, err
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and errors[0].startswith("svit train: error: ") and message in errors[0], err


def test_merge_refuses_what_is_not_a_lora_run_or_has_no_base(tmp_path, files, capsys):
    model_dir, _ = files
    assert main(["model", "merge", "--input", str(model_dir), "--output", str(tmp_path / "m")]) == 2
    assert "not a LoRA run" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    assert main(["model", "merge", "--input", str(run), "--output", str(tmp_path / "m")]) == 2
    assert "does not load" in capsys.readouterr().err and not (tmp_path / "m").exists()
