"""SVIT-LLaVA grounded chat: ask about an image, see each grounded phrase highlighted and its boxes drawn.

One file, two homes: `svit app --model CKPT` serves it from the svit package, and `svit space RUN OUT` copies it
as the `app.py` of a Hub Space folder, where svit is not installed. There the model loads as remote code
(`trust_remote_code=True`: the checkpoint carries its processor's code) and the drawing module ships beside
this file as `svit_draw.py`; the Space's settings (model folder, referring question, generation length,
example images) come from `space.json`.

Answers are parsed by the checkpoint's own processor (`post_process_generation`), which moves the boxes out of
the padded square the model reads and writes in, back into the uploaded image's pixels. Phrase colours and box
colours come from one table, `PALETTE` of the drawing module, by entity index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

# Before gradio is imported: the app never phones home (no analytics, no version check).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:  # inside the svit package
    from svit_model.draw import PALETTE, draw_entities
except ImportError:  # a Space folder: `svit space` wrote the drawing module beside this file
    from svit_draw import PALETTE, draw_entities

SETTINGS_FILE = "space.json"
CHAT, REFERRING = "chat", "referring"
# Stated limits of a public app: one request holds the model (and a Space's only worker) for as long as it
# generates, so neither the question nor the answer may be as long as a visitor likes. A question of 2,000
# characters is a long paragraph (some 500 tokens); 1,024 new tokens are several long answers' worth.
MAX_QUESTION_CHARS = 2000
MAX_NEW_TOKENS_LIMIT = 1024


@dataclass(frozen=True)
class AppSettings:
    """What the app needs besides the model; a Space reads it from `space.json` beside `app.py`."""

    model: str = "model"  # checkpoint folder (relative to the Space folder) or Hub id
    title: str = "SVIT-LLaVA grounded chat"
    # The referring mode's question; `svit space` / `svit app` fill in SVIT's grounding instruction.
    referring_template: str = "Where is {phrase}?"
    max_new_tokens: int = 128
    examples: tuple[str, ...] = ()  # image paths, relative to the Space folder or absolute
    description: str = ""

    def __post_init__(self):
        # A hand-edited space.json is refused when the app starts, not on a visitor's first question.
        if max_new_tokens_problem(self.max_new_tokens):
            raise ValueError(f"{SETTINGS_FILE}: max_new_tokens {max_new_tokens_problem(self.max_new_tokens)}")

    @classmethod
    def read(cls, folder: str | os.PathLike) -> AppSettings:
        """The settings in `folder/space.json`; fields it does not name keep their defaults."""
        path = Path(folder) / SETTINGS_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:  # svit's depth-checked reader is not importable in a Space folder
            raise ValueError(
                f"{path}: nested too deeply to be settings; write it again with svit space"
            ) from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: holds a {type(values).__name__}, not a JSON object of settings")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        if "examples" in values:
            examples = values["examples"]
            if not isinstance(examples, list) or not all(isinstance(item, str) for item in examples):
                raise ValueError(f"{path}: examples must be a list of image paths, got {examples!r:.80}")
            values["examples"] = tuple(examples)
        return cls(**values)

    def to_json(self) -> str:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({**values, "examples": list(self.examples)}, indent=1, ensure_ascii=False) + "\n"


@dataclass
class Answer:
    """A generated answer ready to show: the highlighted text, its colour table and the drawn image."""

    raw: str  # what the model wrote, tags and boxes included (boxes in the padded square)
    spans: list[tuple[str, str | None]]  # (text, label) pieces of the clean text, label None between phrases
    colours: dict[str, str] = field(default_factory=dict)  # label -> PALETTE colour
    drawn: object = None  # PIL image with every entity's boxes in its colour


def max_new_tokens_problem(value) -> str | None:
    """What is wrong with `value` as the longest answer in tokens, None when it is fine."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NEW_TOKENS_LIMIT:
        return f"is {value!r}; it must be a whole number from 1 to {MAX_NEW_TOKENS_LIMIT}"
    return None


# --- Pure functions: the text and image shown for a generated answer -----------------------------------------


def referring_prompt(phrase: str, template: str) -> str:
    """The referring mode's question for what the user typed ("the red car" -> "Where is the red car? ...")."""
    phrase = phrase.strip().rstrip("?.!").strip()
    return template.format(phrase=phrase)


def question_prompt(mode: str, text: str, settings: AppSettings, image_token: str) -> str:
    """What the model is asked: the question as typed (chat), or the referring question about what was typed.
    ValueError with the message to show when there is nothing to ask, or when the text holds `image_token` (the
    processor's, `processor.image_token`: the app puts the image in the prompt, never a visitor)."""
    if not (text or "").strip():
        raise ValueError("Type a question (or, in referring mode, what to find).")
    if len(text) > MAX_QUESTION_CHARS:  # refused before the model sees it: answered at once, nothing held
        raise ValueError(
            f"The question is {len(text):,} characters long; this app takes at most {MAX_QUESTION_CHARS:,}. "
            "Shorten it and ask again."
        )
    if image_token in text:  # the processor would read it as a second image with no pixels
        raise ValueError(f"The question may not contain {image_token}: the image is attached for you.")
    return referring_prompt(text, settings.referring_template) if mode == REFERRING else text.strip()


def entity_labels(entities: Sequence) -> list[str]:
    """One label per entity: its phrase, numbered when a phrase repeats, since a label names one colour."""
    labels, seen = [], {}
    for phrase, _span, _boxes in entities:
        name = phrase or "(no phrase)"
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return labels


def entity_colours(entities: Sequence) -> dict[str, str]:
    """label -> colour, in `draw_entities`' order: entity i is drawn in `PALETTE[i % len(PALETTE)]`."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(entity_labels(entities))}


def highlighted_spans(clean_text: str, entities: Sequence) -> list[tuple[str, str | None]]:
    """`clean_text` cut into (text, label) pieces for `gr.HighlightedText`: each entity's span carries its
    label, the text between spans None. Spans index `clean_text`; one that overlaps an earlier one is left
    unhighlighted (its boxes are still drawn)."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    located = sorted(zip(entity_labels(entities), entities, strict=True), key=lambda item: item[1][1][0])
    for label, (_phrase, (start, end), _boxes) in located:
        if start < position or end <= start:
            continue
        if start > position:
            pieces.append((clean_text[position:start], None))
        pieces.append((clean_text[start:end], label))
        position = end
    if position < len(clean_text):
        pieces.append((clean_text[position:], None))
    return pieces


def display_image(image, min_long_side: int = 512):
    """`image` enlarged (aspect kept) until its longer side is `min_long_side`, so that boxes and labels drawn
    on a small image stay readable; larger images are returned as they are."""
    scale = min_long_side / max(image.size)
    if scale <= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), resample=3)  # bicubic


def render_answer(raw: str, image, processor) -> Answer:
    """The model's text as shown: parsed by the checkpoint's processor into the clean text and entities (boxes
    normalized to `image`, out of the model's padded frame), highlighted, and drawn in the same colours on
    `display_image(image)`."""
    clean, entities = processor.post_process_generation(raw.strip(), image_size=image.size, normalized=True)
    return Answer(
        raw=raw.strip(),
        spans=highlighted_spans(clean, entities),
        colours=entity_colours(entities),
        drawn=draw_entities(display_image(image), entities, normalized=True),
    )


# --- The model --------------------------------------------------------------------------------------------


def model_source(settings: AppSettings, folder: str | os.PathLike) -> str:
    """What `settings.model` names: the folder inside the Space folder when there is one (`model`, as `svit
    space` copies it), else a Hub id (`svit space --model-id ORG/NAME`), loaded from the Hub."""
    local = Path(folder) / settings.model
    return str(local) if local.is_dir() else settings.model


def load_model(path: str | os.PathLike):
    """(model, processor) of a SVIT-LLaVA checkpoint folder or Hub id, on `best_device()`, without svit: the
    checkpoint's own code (`trust_remote_code=True`)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=True)
    model = AutoModelForImageTextToText.from_pretrained(str(path), trust_remote_code=True)
    return model.to(best_device()).eval(), processor


def best_device() -> str:
    """The first GPU when there is one (a Space on GPU hardware), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def ask_model(model, processor, image, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy answer to `prompt` about `image`, decoded with `<st>`/`<ed>` kept."""
    import torch

    conversation = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    ).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,  # a training run may have saved use_cache=False
            pad_token_id=processor.tokenizer.pad_token_id,
        )
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


# --- The Blocks -------------------------------------------------------------------------------------------


def build_demo(model, processor, settings: AppSettings = AppSettings(), folder: str | os.PathLike = "."):
    """The Gradio Blocks: image (upload or example) + mode + question in, highlighted answer + drawn image +
    raw answer out. `folder` is what relative example paths are relative to."""
    import gradio as gr

    def respond(image, mode: str, text: str):
        if image is None:
            raise gr.Error("Upload an image or pick an example first.")
        try:
            prompt = question_prompt(mode, text, settings, processor.image_token)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        image = image.convert("RGB")
        answer = render_answer(
            ask_model(model, processor, image, prompt, settings.max_new_tokens), image, processor
        )
        return gr.HighlightedText(value=answer.spans, color_map=answer.colours), answer.drawn, answer.raw

    examples = [[str(Path(folder, path))] for path in settings.examples]
    with gr.Blocks(title=settings.title) as demo:
        gr.Markdown(f"# {settings.title}\n{settings.description}".strip())
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="pil",
                    sources=["upload", "clipboard"],
                    label="Image",
                    height=360,
                    elem_id="svit-image",
                )
                if examples:
                    gr.Examples(examples=examples, inputs=[image], label="Example images")
                mode = gr.Radio(
                    [("Chat: ask anything", CHAT), ("Referring: where is ...?", REFERRING)],
                    value=CHAT,
                    label="Mode",
                    elem_id="svit-mode",
                )
                question = gr.Textbox(
                    label="Question (referring mode: the thing to find)",
                    placeholder="What is in the image? / the red car",
                    info=f"at most {MAX_QUESTION_CHARS:,} characters",
                    elem_id="svit-question",
                )
                ask = gr.Button("Ask", variant="primary", elem_id="svit-ask")
            with gr.Column():
                highlighted = gr.HighlightedText(
                    label="Answer", show_inline_category=False, elem_id="svit-answer"
                )
                # PNG: the box colours reach the browser exactly (the default WebP is lossy)
                drawn = gr.Image(
                    type="pil",
                    format="png",
                    label="Boxes",
                    height=360,
                    interactive=False,
                    elem_id="svit-boxes",
                )
                raw = gr.Textbox(label="Raw answer", interactive=False, elem_id="svit-raw")
        gr.on([ask.click, question.submit], respond, [image, mode, question], [highlighted, drawn, raw])
    return demo


def main() -> None:
    """`python app.py` in a Space folder: its settings, its model, served where GRADIO_SERVER_NAME/PORT say."""
    folder = Path(__file__).resolve().parent
    settings = AppSettings.read(folder)
    model, processor = load_model(model_source(settings, folder))
    build_demo(model, processor, settings, folder).launch(allowed_paths=[str(folder)])


if __name__ == "__main__":
    main()
