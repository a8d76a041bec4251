"""What a run writes: release-format records with provenance, the task files, the failure report, cost.

Output folder (`svit build --input OUT` reads it like upstream's `data/`):

    OUT/<task>.json            one JSON list per task, upstream's record shape, sorted by image id
    OUT/failures.json          every item that did not make it: image, task, reason, detail, attempts
    OUT/generation_summary.json  counts, failures by reason, tokens, estimated cost, this session's rates
    OUT/run.json               the settings that shape the output (a resumed run must match them)
    OUT/ledger*.jsonl          the resume ledger(s), one per shard

Provenance rides along in each record under `"provenance"` (the release reader ignores unknown
keys): model asked and model answering, prompt version, sampling parameters and seed, attempts,
token usage over all attempts, and what the token budget trimmed. It holds no time stamps, so a
resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import write_json_atomic
from svit_dataset.generation.ledger import ledger_files, merged_states, read_record
from svit_dataset.generation.parse import ParsedResponse
from svit_dataset.jsonlist import loads_json, write_json_list
from svit_dataset.release import RELEASE_SPEAKERS
from svit_dataset.schema import ASSISTANT, DETAIL_DESCRIPTION, TASKS, USER

logger = logging.getLogger(__name__)

FAILURES_FILE = "failures.json"
SUMMARY_FILE = "generation_summary.json"
DEFAULT_PRICES = Path(__file__).parent / "prices.json"


def release_record(
    image_id: int, task: str, parsed: ParsedResponse, instruction: str, provenance: dict
) -> dict:
    """Upstream's record shape: `{"image_id", "conversations": [{"content": [{"from", "value"}...]}]}`."""
    conversations = []
    for conversation in parsed.conversations:
        content = []
        for question, answer in conversation.pairs:
            asked = instruction if task == DETAIL_DESCRIPTION else question
            content.append({"from": RELEASE_SPEAKERS[USER], "value": asked})
            content.append({"from": RELEASE_SPEAKERS[ASSISTANT], "value": answer})
        item: dict = {"content": content}
        if conversation.topic:
            item["topic"] = conversation.topic
        conversations.append(item)
    return {"image_id": image_id, "conversations": conversations, "provenance": provenance}


def check_run_folder(output_dir: Path, overwrite: bool = False) -> None:
    """Refuse to write into a folder holding release-format files that no generation run wrote there
    (no ledger beside them): they may be someone's data. `overwrite` replaces them."""
    if overwrite or not output_dir.is_dir() or ledger_files(output_dir):
        return
    ours = [f"{t}.json" for t in TASKS] + [FAILURES_FILE, SUMMARY_FILE]
    found = [name for name in ours if (output_dir / name).exists()]
    if found:
        raise SvitInputError(
            f"--output {output_dir} already holds {', '.join(found)}, not written by svit generate "
            "(no ledger). Choose an empty --output, or pass --overwrite to replace them."
        )


def collect_outputs(output_dir: str | Path, tasks: tuple[str, ...] = TASKS, overwrite: bool = False) -> dict:
    """(Re)write `<task>.json` and `failures.json` from every ledger in `output_dir`; returns counts.

    Records are read back one at a time by their offset in the ledger, so memory holds only the index.
    """
    output_dir = Path(output_dir)
    check_run_folder(output_dir, overwrite)
    if not ledger_files(output_dir):
        raise SvitInputError(
            f"--output {output_dir}: no ledger (ledger*.jsonl) to collect from; pass the --output of a "
            "svit generate run"
        )
    done: dict[str, list[tuple[int, Path, object]]] = {t: [] for t in TASKS}
    failures = []
    pending = 0
    usage = [0, 0]
    for path, key, state in merged_states(output_dir):
        image_id, task = key.split("/", 1)
        usage[0] += state.usage[0]
        usage[1] += state.usage[1]
        if state.status == "done":
            done.setdefault(task, []).append((int(image_id), path, state))
        elif state.status == "failed":
            failures.append(
                {
                    "image_id": int(image_id),
                    "task": task,
                    "reason": state.reason,
                    "detail": state.detail,
                    "attempts": state.attempts,
                    "retried_on_resume": not state.final,
                }
            )
        else:
            pending += 1
    counts = {}
    for task in TASKS:
        items = sorted(done.get(task, []), key=lambda x: x[0])
        if not items and task not in tasks and not (output_dir / f"{task}.json").exists():
            continue
        _write_task_file(output_dir / f"{task}.json", items)
        counts[task] = len(items)
    failures.sort(key=lambda f: (f["image_id"], TASKS.index(f["task"]) if f["task"] in TASKS else 99))
    write_json_atomic(output_dir / FAILURES_FILE, failures)
    return {
        "done": counts,
        "failed": len(failures),
        "failed_by_reason": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "pending": pending,
        "prompt_tokens": usage[0],
        "completion_tokens": usage[1],
    }


def _write_task_file(path: Path, items: list) -> None:
    write_json_list(path, (read_record(ledger_path, state) for _, ledger_path, state in items))


# --- price table ----------------------------------------------------------------------------------


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The default table, overridden by the entries of `path` (same shape: {"models": {name: {input, output}}})."""
    table = dict(_read_prices(DEFAULT_PRICES))
    if path:
        table.update(_read_prices(Path(path)))
    return table


def _read_prices(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        raise SvitInputError(f"--prices {path}: not found")
    try:
        models = loads_json(path.read_bytes(), f"--prices {path}")["models"]
        return {
            str(name): {
                "input": float(p["input"]),
                "output": float(p["output"]),
                **{k: float(p[k]) for k in ("batch_input", "batch_output") if k in p},
            }
            for name, p in models.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SvitFormatError(
            f'--prices {path}: expected {{"models": {{"<model>": {{"input": USD per 1M, "output": USD per 1M}}}}}}'
        ) from None


def price_for(model: str, table: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]] | None:
    """(matched name, price) by exact name, else the longest table name that `model` starts with."""
    if model in table:
        return model, table[model]
    matches = [name for name in table if model.startswith(name)]
    if not matches:
        return None
    name = max(matches, key=len)
    return name, table[name]


# The Batch API's discount on the online price (OpenAI: half), for a model whose entry names no batch price.
BATCH_DISCOUNT = 0.5


def batch_price(price: dict[str, float] | None) -> dict[str, float] | None:
    """The Batch API price of a table entry: its `batch_input`/`batch_output`, else the online price halved."""
    if price is None:
        return None
    return {side: price.get(f"batch_{side}", price[side] * BATCH_DISCOUNT) for side in ("input", "output")}


def cost_usd(prompt_tokens: int, completion_tokens: int, price: dict[str, float] | None) -> float | None:
    if price is None:
        return None
    return round((prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1e6, 4)
