"""Crafted inputs in the released SVIT format, for tests."""

from __future__ import annotations

import json
from pathlib import Path

from svit_dataset.schema import TASKS


def qa(question: str, answer: str, user: str = "user", gpt: str = "gpt") -> list[dict]:
    return [{"from": user, "value": question}, {"from": gpt, "value": answer}]


def conversation(*turn_lists: list[dict], topic: str | None = None) -> dict:
    content = [turn for turns in turn_lists for turn in turns]
    return {"content": content} | ({"topic": topic} if topic else {})


def record(image_id, *conversations: dict) -> dict:
    return {"image_id": image_id, "conversations": list(conversations)}


def write_release(folder: Path, records_by_task: dict[str, list], fill_missing: bool = True) -> Path:
    """Write `<task>.json` files; tasks not given get one valid record so a full build can run."""
    folder.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        if task in records_by_task:
            data = records_by_task[task]
        elif fill_missing:
            data = [record(1, conversation(qa("What is this?", "A red ball.")))]
        else:
            continue
        text = data if isinstance(data, str) else json.dumps(data)
        (folder / f"{task}.json").write_text(text)
    return folder
