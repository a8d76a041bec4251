"""SvitLlavaProcessor: boxes move into the padded square and back, grounding tokens, templates, saving."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image

from svit_dataset.boxes import (
    BOX_PATTERN,
    format_box,
    move_boxes_in_text,
    to_pixels,
    upstream_expand_to_square,
)
from svit_model import SvitLlavaProcessor
from svit_model.processing_svit_llava import PLAIN_TEMPLATE, VICUNA_SYSTEM
from svit_model.tiny import build_tiny_processor

SIZES = {
    "wide": (640, 480),
    "tall": (480, 640),
    "square": (500, 500),
    "odd wide": (333, 250),
    "odd tall": (251, 1000),
}


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture(scope="module")
def processor(tiny_processor):
    return tiny_processor


def _random_boxes(rng: random.Random, n: int) -> list[tuple[float, ...]]:
    boxes = []
    for _ in range(n):
        x1, x2 = sorted(round(rng.random(), 3) for _ in range(2))
        y1, y2 = sorted(round(rng.random(), 3) for _ in range(2))
        boxes.append((x1, y1, x2, y2))
    return boxes


def _text_in_model_frame(processor, text: str, image: Image.Image) -> str:
    """What the model reads: the processor's input ids decoded, image placeholders dropped."""
    inputs = processor(images=image, text=f"<image>\n{text}", return_tensors="pt")
    decoded = processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=True)
    return decoded.split("\n", 1)[1]


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_boxes_round_trip_within_half_a_pixel(processor, size):
    width, height = size
    image = Image.new("RGB", size, (10, 200, 30))
    boxes = _random_boxes(random.Random(width * height), 25)
    text = " ".join(f"<st>thing {i}<ed> {format_box(box)}" for i, box in enumerate(boxes))
    model_text = _text_in_model_frame(processor, text, image)
    assert model_text != text or width == height  # the boxes moved (or the frame is the same)

    # The padded frame is the LLaVA-1.5 export's: upstream's pixel-rounded conversion agrees with ours
    # within its half-pixel rounding and the last written digit.
    side = max(size)
    for box, written in zip(boxes, BOX_PATTERN.finditer(model_text), strict=True):
        ours = [float(v) for v in written.groups()]
        upstream = upstream_expand_to_square(box, width, height)
        assert all(abs(a - b) <= 0.5 / side + 1e-3 + 1e-9 for a, b in zip(ours, upstream, strict=True))

    # And back: the parsed boxes are the original ones, in pixels, within half a pixel.
    clean, entities = processor.post_process_generation(model_text, image_size=size)
    assert clean == " ".join(f"thing {i}" for i in range(len(boxes)))
    for box, (_phrase, _span, (parsed,)) in zip(boxes, entities, strict=True):
        expected = to_pixels(box, width, height)
        assert all(abs(a - b) <= 0.5 for a, b in zip(parsed, expected, strict=True)), (parsed, expected)


def test_without_padding_boxes_stay(tokenizer):
    plain = build_tiny_processor(tokenizer, pad=False)
    text = "<st>ball<ed> [0.28, 0.34, 0.4, 0.71]"
    assert _text_in_model_frame(plain, text, Image.new("RGB", (64, 48))) == text
    assert plain.to_model_frame(text, (64, 48)) == text


def test_per_call_do_pad_false_keeps_boxes(processor):
    text = "<image>\n<st>ball<ed> [0.28, 0.34, 0.4, 0.71]"
    inputs = processor(images=Image.new("RGB", (64, 48)), text=text, images_kwargs={"do_pad": False})
    assert processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=True).endswith(text[8:])


def test_each_sample_uses_its_own_image(processor):
    text = "<image>\n<st>a<ed> [0.000, 0.000, 1.000, 1.000]"
    images = [Image.new("RGB", (200, 100)), Image.new("RGB", (100, 200)), Image.new("RGB", (50, 50))]
    inputs = processor(images=images[:2], text=[text, text, "no image, [0.1, 0.2, 0.3, 0.4]"], padding=True)
    decoded = processor.tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=True)
    assert decoded[0].endswith("[0.000, 0.250, 1.000, 0.750]")
    assert decoded[1].endswith("[0.250, 0.000, 0.750, 1.000]")
    # Text-only samples have no image frame: their boxes stay as written.
    assert decoded[2] == "no image, [0.1, 0.2, 0.3, 0.4]"
    square = processor(images=images[2], text=text)
    assert processor.tokenizer.decode(square["input_ids"][0], skip_special_tokens=True).endswith(text[8:])


def test_boxes_in_a_multi_image_sample_are_refused(processor):
    with pytest.raises(ValueError, match="one image"):
        processor(images=[Image.new("RGB", (20, 10))] * 2, text="<image><image> [0.1, 0.2, 0.3, 0.4]")


def test_multi_image_box_check_only_searches(processor, monkeypatch):
    """Whether a multi-image sample holds boxes is a search, not a rewrite of its text."""
    import svit_model.processing_svit_llava as processing

    calls = []

    def spy(text, width, height, **kwargs):
        calls.append((width, height))
        return move_boxes_in_text(text, width, height, **kwargs)

    monkeypatch.setattr(processing, "move_boxes_in_text", spy)
    processor(images=[Image.new("RGB", (20, 10))] * 2, text="<image><image> two images, no box")
    assert calls == [(20, 10)]
    with pytest.raises(ValueError, match="one image"):
        processor(images=[Image.new("RGB", (20, 10))] * 2, text="<image><image> [0.1, 0.2, 0.3, 0.4]")
    assert calls == [(20, 10)]


def test_grounding_tokens_are_single_and_survive_decoding(processor):
    tokenizer = processor.tokenizer
    text = "<st>red ball<ed> [0.125, 0.300, 0.450, 0.812]"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<st>")
    assert tokenizer.convert_tokens_to_ids("<ed>") in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert "<image>" in tokenizer.all_special_tokens and "<st>" not in tokenizer.all_special_tokens


def test_processor_refuses_a_tokenizer_without_grounding_tokens(processor):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "<image>": 1}, unk_token="<unk>")),
        unk_token="<unk>",
    )
    with pytest.raises(ValueError, match="add_svit_tokens"):
        SvitLlavaProcessor(image_processor=processor.image_processor, tokenizer=bare, patch_size=14)


def test_assistant_mask_follows_boxes_that_change_length(processor):
    """Two-decimal boxes become three-decimal ones: the assistant mask must still cover exactly the answer."""
    image = Image.new("RGB", (64, 48), (200, 10, 10))
    question = "Is [0.1, 0.2, 0.3, 0.4] a ball?"
    answer = "Yes: <st>a ball<ed> [0.28, 0.34, 0.4, 0.71], and [0.5, 0.5, 0.6, 0.6]."
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        {"role": "user", "content": [{"type": "text", "text": "And [0.9, 0.9, 1, 1]?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "No [0.9, 0.9, 1.0, 1.0]."}]},
    ]
    out = processor.apply_chat_template(
        [messages], tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    tokenizer = processor.tokenizer
    runs, current = [], []
    for token, flag in zip(ids.tolist(), mask.tolist(), strict=True):
        if flag:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    moved = [move_boxes_in_text(t, 64, 48, to_padded=True)[0] for t in (answer, "No [0.9, 0.9, 1.0, 1.0].")]
    assert runs == [f" {moved[0]}</s>", f" {moved[1]}</s>"]
    assert len(moved[0]) != len(answer)
    full = tokenizer.decode(ids)
    assert full.startswith(f"<s>{VICUNA_SYSTEM} USER: <image>")
    assert move_boxes_in_text(question, 64, 48, to_padded=True)[0] in full


def test_the_assistant_mask_equals_transformers_own_walk_over_tensor_offsets(processor):
    """Ours walks the token offsets as lists (10x faster in TRL's collator); the mask is transformers' own."""
    from transformers.processing_utils import ProcessorMixin

    class TensorWalk(SvitLlavaProcessor):
        _adjust_assistant_masks_indices = ProcessorMixin._adjust_assistant_masks_indices

    walk = TensorWalk(image_processor=processor.image_processor, tokenizer=processor.tokenizer, patch_size=14)
    chats = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": Image.new("RGB", size)}, {"type": "text", "text": q}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": a}]},
        ]
        for size, q, a in [
            ((64, 48), "Where is [0.1, 0.2, 0.3, 0.4]?", "Here: <st>it<ed> [0.28, 0.34, 0.4, 0.71]."),
            ((20, 40), "Colour?", "Red."),
        ]
    ]
    kwargs = dict(tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True)
    ours = processor.apply_chat_template(chats, processor_kwargs={"padding": True}, **kwargs)
    theirs = walk.apply_chat_template(chats, processor_kwargs={"padding": True}, **kwargs)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["assistant_masks"], theirs["assistant_masks"])
    assert 0 < int(ours["assistant_masks"][1].sum()) < int(ours["assistant_masks"][0].sum())


def test_chat_templates(processor):
    messages = [
        {"role": "user", "content": "<image>\nDescribe the image."},
        {"role": "assistant", "content": "A red square."},
    ]
    vicuna = processor.apply_chat_template(messages)
    assert vicuna == f"<s>{VICUNA_SYSTEM} USER: <image>\nDescribe the image. ASSISTANT: A red square.</s>"
    prompt = processor.apply_chat_template(messages[:1], add_generation_prompt=True)
    assert prompt.endswith("Describe the image. ASSISTANT:")
    assert processor.apply_chat_template(messages, chat_template="plain") == "<s><image>A red square.\n"
    assert processor.chat_template["plain"] == PLAIN_TEMPLATE
    image = Image.new("RGB", (30, 20))
    blocks = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "Caption it."}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A square."}]},
    ]
    out = processor.apply_chat_template(
        [blocks], chat_template="plain", tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = torch.tensor(out["input_ids"][0])
    mask = torch.tensor(out["assistant_masks"][0]).bool()
    assert processor.tokenizer.decode(ids[mask]) == "A square.\n"
    assert (ids == processor.image_token_id).sum() == 4


def test_save_and_load_round_trip(processor, tmp_path):
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is SvitLlavaProcessor
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.chat_template == processor.chat_template
    assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert loaded.pads_images
    image = Image.new("RGB", (40, 30), (1, 2, 3))
    text = "<image>\n<st>a<ed> [0.1, 0.2, 0.3, 0.4]"
    a, b = (
        processor(images=image, text=text, return_tensors="pt"),
        loaded(images=image, text=text, return_tensors="pt"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
