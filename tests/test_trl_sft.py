"""Stock TRL `SFTTrainer` trains the tiny SVIT-LLaVA on rows of the SVIT sample schema, unchanged.

The processor pads images (LLaVA-1.5's `pad` mode), so the trained assistant text carries each box moved into
its image's padded square.
"""

from __future__ import annotations

import math

import datasets
import pytest
import torch
from PIL import Image

from svit_dataset.boxes import move_boxes_in_text
from svit_dataset.schema import (
    ASSISTANT,
    COMPLEX_REASONING,
    CONVERSATION,
    DETAIL_DESCRIPTION,
    REFERRING_QA,
    SAMPLE_FEATURES,
    USER,
    sample_id,
    vg_image_path,
)
from tests.tiny_llava import (
    CHAT_TEMPLATE,
    VICUNA_SYSTEM,
    build_tiny_svit_llava,
    corpus_from_rows,
    train_few_steps,
)
from tests.train_fixtures import png

MAX_STEPS = 3


def _row(image_id, task, turns, width, height, shapes, topic=""):
    messages = [{"role": USER if i % 2 == 0 else ASSISTANT, "content": text} for i, text in enumerate(turns)]
    return {
        "id": sample_id(image_id, task, 0),
        "image_id": image_id,
        "task": task,
        "messages": messages,
        "images": [{"bytes": png(width, height, shapes), "path": None}],
        "image_path": vg_image_path(image_id),
        "width": width,
        "height": height,
        "topic": topic,
    }


def make_rows() -> list[dict]:
    ball = ("ellipse", "red", (0.125, 0.300, 0.450, 0.812))
    box = ("rectangle", "blue", (0.600, 0.100, 0.900, 0.500))
    return [
        _row(
            1,
            CONVERSATION,
            [
                "What colour is the ball?",
                "The ball is red.",
                "What is to its right?",
                "A blue box is to the right of the ball.",
            ],
            64,
            48,
            [ball, box],
            topic="Colours and positions of the toys.",
        ),
        _row(
            2,
            REFERRING_QA,
            [
                "Where is the red ball? Answer with a bounding box.",
                "<st>red ball<ed> [0.125, 0.300, 0.450, 0.812]",
                "And the blue box?",
                "<st>blue box<ed> [0.600, 0.100, 0.900, 0.500]",
            ],
            64,
            48,
            [ball, box],
        ),
        _row(
            3,
            COMPLEX_REASONING,
            ["Could the ball roll off the table?", "Yes: the ball is round and nothing holds it in place."],
            40,
            60,
            [ball],
        ),
        _row(
            4,
            DETAIL_DESCRIPTION,
            ["Describe the image in detail.", "A blue box lies on a grey floor, alone in the upper right."],
            50,
            50,
            [box],
        ),
    ]


@pytest.fixture(scope="module")
def dataset() -> datasets.Dataset:
    return datasets.Dataset.from_list(make_rows(), features=SAMPLE_FEATURES)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """Train once for the module: (trainer, parameters before, vision tower calls during training)."""
    model, processor = build_tiny_svit_llava(corpus_from_rows(dataset.select_columns(["messages"])), seed=0)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    vision_calls = []
    hook = model.model.vision_tower.register_forward_hook(
        lambda module, args, output: vision_calls.append(args[0].shape if args else None)
    )
    try:
        trainer = train_few_steps(
            dataset, tmp_path_factory.mktemp("sft"), max_steps=MAX_STEPS, model=model, processor=processor
        )
    finally:
        hook.remove()
    return trainer, before, vision_calls


def test_dataset_has_the_schema(dataset):
    assert dataset.features == SAMPLE_FEATURES
    assert isinstance(dataset[0]["images"][0], Image.Image)


def test_fixture_is_deterministic_and_vicuna_formatted(dataset):
    corpus = corpus_from_rows(dataset)
    model_a, processor_a = build_tiny_svit_llava(corpus, seed=3)
    model_b, processor_b = build_tiny_svit_llava(corpus, seed=3)
    assert processor_a.tokenizer.get_vocab() == processor_b.tokenizer.get_vocab()
    state_b = model_b.state_dict()
    assert all(torch.equal(value, state_b[name]) for name, value in model_a.state_dict().items())
    assert processor_a.chat_template["default"] == processor_a.tokenizer.chat_template == CHAT_TEMPLATE

    messages = dataset[1]["messages"]
    text = processor_a.tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        f"<s>{VICUNA_SYSTEM} USER: Where is the red ball? Answer with a bounding box. "
        "ASSISTANT: <st>red ball<ed> [0.125, 0.300, 0.450, 0.812]</s>"
        "USER: And the blue box? ASSISTANT: <st>blue box<ed> [0.600, 0.100, 0.900, 0.500]</s>"
    )
    prompt = processor_a.tokenizer.apply_chat_template(
        messages[:1], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("bounding box. ASSISTANT:")


def test_sft_trains_with_images_and_finite_loss(trained):
    trainer, before, vision_calls = trained
    assert trainer.state.global_step == MAX_STEPS
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == MAX_STEPS
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)

    # The images reached the model: the vision tower ran on every step, on a batch of 2 images.
    assert len(vision_calls) == MAX_STEPS
    assert all(shape == (2, 3, 28, 28) for shape in vision_calls)

    after = dict(trainer.model.named_parameters())
    changed = {name for name, value in before.items() if not torch.equal(value, after[name].detach())}
    for part in ("multi_modal_projector.", "vision_tower.", "language_model.", "lm_head."):
        assert any(part in name for name in changed), f"no parameter of {part} changed"


def test_assistant_only_labels(trained, dataset):
    trainer, _, _ = trained
    processor = trainer.processing_class
    tokenizer = processor.tokenizer
    batch = next(iter(trainer.get_train_dataloader()))
    # Only `messages` and `images` reached the collator, which made pixel values and image tokens of them.
    assert batch["pixel_values"].shape == (2, 3, 28, 28)
    assert ((batch["input_ids"] == processor.image_token_id).sum(dim=1) == 4).all()

    # What the model is trained to write: each assistant turn with its boxes in the image's padded square.
    assistant_turns = {
        tuple(
            move_boxes_in_text(m["content"], row["width"], row["height"], to_padded=True)[0]
            for m in row["messages"]
            if m["role"] == ASSISTANT
        )
        for row in dataset
    }
    for input_ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained_positions = (labels != -100).nonzero().flatten().tolist()
        assert trained_positions, "every label is -100"
        assert torch.equal(labels[trained_positions], input_ids[trained_positions])
        # Split the trained positions into runs: each run is one assistant turn and its </s>.
        runs, start = [], trained_positions[0]
        for prev, pos in zip(trained_positions, trained_positions[1:] + [None], strict=True):
            if pos != prev + 1:
                runs.append(tokenizer.decode(input_ids[start : prev + 1]))
                start = pos
        assert all(run.endswith(tokenizer.eos_token) for run in runs), runs
        # A turn's first token carries the space of "ASSISTANT: " before it (byte-level BPE), nothing more.
        turns = tuple(run.removesuffix(tokenizer.eos_token).removeprefix(" ") for run in runs)
        assert turns in assistant_turns, turns
        # Everything else (system prompt, user turns, image tokens, padding) is masked.
        assert processor.image_token_id not in labels.tolist()
