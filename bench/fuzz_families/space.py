"""Family `space`: what a visitor sends the grounded-chat Space (svit_model/space/app.py), and what a hand-edited
`space.json` holds, against a tiny model built in code (svit_model.tiny), without a browser.

- request cases: the app's own request handler (`respond`, taken from the Blocks `build_demo` makes) called
  with images of odd sizes and modes (or none), modes that are no mode, and questions of random length and
  content (empty, whitespace, control characters, `<image>`/`<st>` tokens, up to 100,000 characters);
- settings cases: `AppSettings.read` of a random `space.json` (max_new_tokens 0, negative, huge, a float, a
  string, null, NaN; unknown keys; examples that are no list; broken or deeply nested JSON).

Our oracle, written apart from the app: a request is clean when it is answered (raw answer no longer than the
settings allow, highlighted text that is the parsed answer, a drawn image) or refused with a visible message
(`gr.Error`); a question over 10,000 characters must be refused before generation (unbounded work otherwise),
as must a request without image or question. Settings are clean when refused with a message (ValueError or
our own error) or read with a sound `max_new_tokens` (a whole number from 1 to 100,000: our bound of "not
unbounded"). A request taking over 5 s is `slow`.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from fuzz_families.common import Defect, Refused, Tally, attempt

QUESTION_BITS = ["What is it?", "Where is the red ball", "<st>", "<ed>", "<image>", "[0.1, 0.2, 0.3, 0.4]", "\x00",
                 "\t", "\n", "😀", "¿", "​", " ", "the dog", "?", "</s>", "<s>", "USER:", "ASSISTANT:"]  # fmt: skip
MODES = ["chat", "referring", "chat", "referring", "", None, "REFERRING", 3]
IMAGE_MODES = ["RGB", "RGB", "RGBA", "L", "P", "1", "I;16", "CMYK", "LA", "I", "F"]
SIZES = [(1, 1), (1, 300), (300, 1), (28, 28), (64, 48), (513, 7), (2000, 3)]
LONGEST_ACCEPTED = 10_000  # characters: beyond, a public app must refuse before generating
SLOW_S = 5.0


def random_question(rng: random.Random) -> str | None:
    shape = rng.random()
    if shape < 0.05:
        return rng.choice([None, "", "   ", "\n\t"])
    if shape < 0.15:
        return "word " * rng.choice([400, 1999, 2001, 4000, 20000])
    return "".join(rng.choice(QUESTION_BITS) for _ in range(rng.randint(1, 12)))


def random_image(rng: random.Random):
    from PIL import Image

    if rng.random() < 0.05:
        return None
    mode = rng.choice(IMAGE_MODES)
    size = rng.choice(SIZES) if rng.random() < 0.5 else (rng.randint(1, 120), rng.randint(1, 120))
    return Image.new(mode, size)


class Demos:
    """The request handler of the app's Blocks, one per answer length (built once each)."""

    def __init__(self, model, processor):
        self.model, self.processor, self.built = model, processor, {}

    def respond(self, max_new_tokens: int):
        from svit_model.space.app import AppSettings, build_demo

        if max_new_tokens not in self.built:
            demo = build_demo(self.model, self.processor, AppSettings(max_new_tokens=max_new_tokens))
            fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
            self.built[max_new_tokens] = next(f.fn for f in fns if getattr(f.fn, "__name__", "") == "respond")
        return self.built[max_new_tokens]


def request_case(rng: random.Random, demos: Demos, tally: Tally) -> None:
    import gradio as gr

    max_new_tokens = rng.choice([1, 4, 8])
    image, mode, text = random_image(rng), rng.choice(MODES), random_question(rng)
    what = (f"image {None if image is None else (image.mode, image.size)}, mode {mode!r}, "
            f"question {text[:40] + '...' if text and len(text) > 40 else text!r} ({len(text or '')} chars)")  # fmt: skip
    must_refuse = image is None or not (text or "").strip() or len(text) > LONGEST_ACCEPTED
    started = time.perf_counter()
    try:
        with attempt((gr.Error,)):
            shown, drawn, raw = demos.respond(max_new_tokens)(image, mode, text)
    except gr.Error:
        tally.add("clean", what, "", "request")
        return
    except Refused as err:  # our own error type: clean for `svit app`, yet a Space page shows no such message
        tally.add("clean", what, err.message, "request")
        return
    except Defect as err:
        tally.add("traceback", what, err.text, "request")
        return
    seconds = time.perf_counter() - started
    if must_refuse:
        tally.add("silent", what, f"answered in {seconds:.1f} s", "request")
        return
    problem = _check_answer(demos.processor, shown, drawn, raw, image, max_new_tokens)
    if problem:
        tally.add("silent", what, problem, "request")
    elif seconds > SLOW_S:
        tally.add("slow", what, f"{seconds:.1f} s", "request")
    else:
        tally.add("clean", what, "", "request")


def _check_answer(processor, shown, drawn, raw: str, image, max_new_tokens: int) -> str | None:
    """What is wrong with a shown answer, None when nothing is."""
    # re-encoding decoded bytes may take more tokens than were generated: bound the characters instead
    longest = _longest_token_chars(processor.tokenizer)
    if len(raw) > max_new_tokens * longest:
        return f"raw answer of {len(raw)} characters with max_new_tokens {max_new_tokens} (tokens <= {longest} chars)"
    clean, _ = processor.post_process_generation(raw.strip(), image_size=image.size, normalized=True)
    value = getattr(shown, "value", shown)
    pieces = value if isinstance(value, list) else []
    text = "".join(p[0] if isinstance(p, list | tuple) else p.get("token", "") for p in pieces)
    if text != clean:
        return f"highlighted text {text[:60]!r} is not the parsed answer {clean[:60]!r}"
    if not hasattr(drawn, "size"):
        return f"drawn image is {type(drawn).__name__}"
    return None


_LONGEST: dict[int, int] = {}


def _longest_token_chars(tokenizer) -> int:
    if id(tokenizer) not in _LONGEST:
        _LONGEST[id(tokenizer)] = max(len(tokenizer.decode([i])) for i in range(len(tokenizer)))
    return _LONGEST[id(tokenizer)]


SETTINGS_VALUES = [
    0,
    -1,
    1,
    64,
    128,
    1024,
    1025,
    100_000,
    10**8,
    1.5,
    64.0,
    "64",
    None,
    True,
    float("nan"),
    [],
]


def settings_case(rng: random.Random, folder: Path, k: int, tally: Tally) -> None:
    from svit_model.space.app import AppSettings

    case = folder / f"space-{k}"
    case.mkdir()
    values: dict = {"model": "model", "title": "t"}
    fault = rng.choice(["tokens", "tokens", "tokens", "unknown", "examples", "title", "broken", "nested", "list",
                        "missing", "none"])  # fmt: skip
    valid = True
    if fault == "tokens":
        value = rng.choice(SETTINGS_VALUES)
        values["max_new_tokens"] = value
        whole = isinstance(value, int) and not isinstance(value, bool)
        # up to 512 tokens: a sound answer length; beyond, an app may state a lower cap (judged by what was read)
        valid = True if whole and 1 <= value <= 512 else None if whole and value <= 100_000 else False
    elif fault == "unknown":
        values["max_tokens"] = 5  # a misspelt key: ignored is fine, refused is fine
        valid = None
    elif fault == "examples":
        values["examples"] = rng.choice([3, "a.png", None, {"a": 1}, [1, 2]])
        valid = None if isinstance(values["examples"], str | list) else False
    elif fault == "title":
        values["title"] = rng.choice([None, 3, ["x"]])
        valid = None
    path = case / "space.json"
    if fault == "broken":
        path.write_text('{"model": "model", ', encoding="utf-8")
        valid = False
    elif fault == "nested":
        path.write_text('{"examples": ' + "[" * 100000 + "]" * 100000 + "}", encoding="utf-8")
        valid = False
    elif fault == "list":
        path.write_text("[1, 2]", encoding="utf-8")
        valid = False
    elif fault != "missing":
        path.write_text(json.dumps(values, allow_nan=True), encoding="utf-8")
    else:
        valid = False
    what = f"space.json {fault}: {json.dumps(values, allow_nan=True)[:80]}"
    try:
        with attempt((ValueError,)):
            settings = AppSettings.read(case)
    except ValueError as err:  # what the Space's log shows at start; `svit app` turns it into its one line
        tally.add("clean" if valid is not True else "refused_valid", what, str(err), "settings")
        return
    except Refused as err:
        tally.add("clean" if valid is not True else "refused_valid", what, err.message, "settings")
        return
    except Defect as err:
        tally.add("traceback", what, err.text, "settings")
        return
    tokens = settings.max_new_tokens
    sound = isinstance(tokens, int) and not isinstance(tokens, bool) and 1 <= tokens <= 100_000
    if valid is False or not sound:
        tally.add("silent", what, f"read, max_new_tokens {tokens!r}", "settings")
    else:
        tally.add("clean", what, "", "settings")


def run(rng: random.Random, n: int, tally: Tally, work: Path) -> None:
    import os

    import torch

    from svit_model.tiny import build_tiny_svit_llava

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: threads only add overhead on a shared machine
    os.environ.setdefault("GRADIO_TEMP_DIR", str(work / "gradio"))  # gradio's copies stay in the case folder
    demos = Demos(*build_tiny_svit_llava())
    try:
        for k in range(n):
            if rng.random() < 0.7:
                request_case(rng, demos, tally)
            else:
                settings_case(rng, work, k, tally)
    finally:
        torch.set_num_threads(threads)
