"""LLaVA's conversation format: its speakers, its image token, and the move between its records and chat messages.

A LLaVA-1.5 training record (LLaVA-Pretrain, LLaVA-1.5's mix, `svit export llava`):

    {"id": str, "image": "coco/train2017/....jpg", "conversations": [{"from": "human"|"gpt", "value": str}, ...]}

with `<image>` in the first human turn (LLaVA-1.5 writes it first, on a line of its own). Chat messages (the
sample schema's `messages`, what TRL and the processor take) are `{"role": "user"|"assistant", "content": str}`
without `<image>`: the processor places the image itself.
"""

from __future__ import annotations

from collections.abc import Callable

from svit_dataset.schema import ASSISTANT, USER

IMAGE_TOKEN = "<image>"
"""LLaVA's image placeholder: in LLaVA records, in the tokenizer (a special token) and in rendered prompts."""

LLAVA_ROLES = {"human": USER, "gpt": ASSISTANT}
"""A LLaVA turn's `from` -> the chat role."""

LLAVA_SPEAKERS = {role: speaker for speaker, role in LLAVA_ROLES.items()}
"""A chat role -> the LLaVA turn's `from`."""

LLAVA_TURN_SHAPE = "{'from': 'human'|'gpt', 'value': str}"
"""A LLaVA turn in words, for errors about a record that holds something else."""

LLAVA_JSON = "LLaVA training JSON (one list of {'id', 'image', 'conversations'} records)"
"""A LLaVA file in words: what `jsonlist.iter_json_list(path, expected=LLAVA_JSON)` asks for when `path` is no list."""


def with_image_token(text: str) -> str:
    """`text` as LLaVA-1.5 writes the first human turn: the image token on a line of its own before it."""
    return f"{IMAGE_TOKEN}\n{text}"


def strip_image_token(text: str) -> str:
    """A LLaVA turn's text without its image token and the newline beside it, trimmed."""
    return (
        text.replace(IMAGE_TOKEN + "\n", "").replace("\n" + IMAGE_TOKEN, "").replace(IMAGE_TOKEN, "").strip()
    )


def llava_turn(role: str, text: str) -> dict:
    """One chat turn (`role` user or assistant) as a LLaVA turn."""
    return {"from": LLAVA_SPEAKERS[role], "value": text}


def llava_messages(record: dict, clean: Callable[[str], str] = strip_image_token) -> list[dict]:
    """The chat messages of a LLaVA record, each turn's text through `clean` (default: `strip_image_token`).

    Raises ValueError saying what is wrong: no `conversations` list, or the first turn that is not a LLaVA turn.
    """
    turns = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(turns, list) or not turns:
        raise ValueError("no 'conversations' list")
    messages = []
    for turn in turns:
        role = LLAVA_ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise ValueError(f"a turn is not {LLAVA_TURN_SHAPE}: {str(turn)[:80]}")
        messages.append({"role": role, "content": clean(turn["value"])})
    return messages


__all__ = [
    "IMAGE_TOKEN",
    "LLAVA_JSON",
    "LLAVA_ROLES",
    "LLAVA_SPEAKERS",
    "LLAVA_TURN_SHAPE",
    "llava_messages",
    "llava_turn",
    "strip_image_token",
    "with_image_token",
]
