"""One generation harness for every benchmark: batched greedy generation with left padding, a resumable JSONL
ledger of predictions, items split across `accelerate launch` processes.

    records = generate_predictions(model, processor, items, output_dir, record=benchmark.record)

Each process appends the predictions of its share of the pending items to `predictions/part-<rank>.jsonl`,
one line per item (id, prompt, raw output, parsed answer, reference, image size), flushed and fsynced per
batch. A rerun reads every part first: finished items are never generated again, and a line cut short by a
kill is dropped (its item is generated again). When all processes are done, the main one writes
`predictions.jsonl` (benchmark order) atomically and returns the records.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_path
from svit_dataset.jsonlist import check_json_depth
from svit_model.loading import loading

logger = logging.getLogger(__name__)

LEDGER_DIR = "predictions"
PREDICTIONS_FILE = "predictions.jsonl"


@dataclass
class EvalItem:
    """One question of a benchmark: `image()` loads its image (lazily: a benchmark never sits in memory)."""

    id: str
    question: str  # as the benchmark writes it (MME's results files repeat it)
    prompt: str  # what the model is asked: the question, a template, plus the prompt suffix
    image: Callable[[], Any]
    reference: Any = None
    meta: dict = field(default_factory=dict)


@dataclass
class GenerationStats:
    total: int
    done_before: int  # answered by an earlier run (read from the ledger)
    generated: int  # by this process in this run
    failed: int  # items whose image did not load: recorded with an empty output (scored wrong)


def image_file(path: Path) -> Callable[[], Any]:
    """An `EvalItem.image` that opens an image file when the item is generated, not before."""

    def load():
        from PIL import Image

        return Image.open(path)

    return load


def with_suffix(question: str, suffix: str) -> str:
    """LLaVA-1.5's prompt: the question, a newline, then the suffix (e.g. its short-answer instruction)."""
    return f"{question}\n{suffix}" if suffix else question


# --- Loading --------------------------------------------------------------------------------------------


def load_for_eval(model_path: str | os.PathLike, dtype: str | None = None, device: str | None = None):
    """(model, processor) of any checkpoint svit produces: SVIT-LLaVA (full, converted), a LoRA run (loaded
    unmerged through transformers' peft integration), a plain `llava` export."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import svit_model  # noqa: F401  (registers svit_llava with the Auto classes)

    expected = "a checkpoint folder or Hub id (SVIT-LLaVA, a LoRA run, a llava export)"
    with loading("--model", model_path, expected):
        model = AutoModelForImageTextToText.from_pretrained(
            str(model_path), dtype=getattr(torch, dtype) if dtype else None
        )
        processor = AutoProcessor.from_pretrained(str(model_path))
    if device is None:  # this process's device: under `accelerate launch`, one GPU per process
        device = process_state().device
    return model.to(device).eval(), processor


def check_device(device: str | None) -> None:
    """Refuse a `--device` torch does not know or this process does not have (`cuda` without CUDA), before the
    model is loaded: torch would fail deep inside `.to()` or the first forward pass."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SvitInputError(
            f"--device {device}: not a device ({reason}); pass cpu, cuda, cuda:1, mps..."
        ) from None
    if parsed.type == "cpu":
        return
    backend = getattr(torch, parsed.type, None) if parsed.type != "mps" else torch.backends.mps
    available = backend is not None and hasattr(backend, "is_available") and backend.is_available()
    if not available:
        raise SvitInputError(
            f"--device {device}: no {parsed.type} device in this process; pass --device cpu, or leave it out "
            "(the accelerator found, else cpu)"
        )
    count = getattr(backend, "device_count", None)
    if parsed.index is not None and count is not None and parsed.index >= count():
        raise SvitInputError(f"--device {device}: this process sees {count()} {parsed.type} device(s)")


def check_unique_ids(items: Sequence[EvalItem]) -> None:
    """Refuse items sharing an id, naming them: the ledger keeps one answer per id, so the others would be
    scored with an answer to another question."""
    seen: set[str] = set()
    twice = list(dict.fromkeys(item.id for item in items if item.id in seen or seen.add(item.id)))
    if twice:
        raise SvitInputError(
            f"the benchmark has {len(twice)} duplicate question id(s): {', '.join(map(repr, twice[:5]))}"
            f"{', ...' if len(twice) > 5 else ''}; every question needs its own id (fix its question_id)"
        )


def check_question_lengths(processor, items: Sequence[EvalItem], max_tokens: int) -> None:
    """Refuse, before any generation, a question longer than `max_tokens` tokens (image aside): attention grows
    with the square of the length (a 20,000-word question took 51 GB on CPU). Text far beyond what the limit
    can hold is refused by its length in characters, without tokenizing it (no token is 64 characters long)."""
    char_limit = 64 * max_tokens
    for item in items:
        if len(item.prompt) > char_limit:
            raise SvitInputError(
                f"{item.id}: question of {len(item.prompt)} characters, beyond --max-question-tokens "
                f"{max_tokens}; shorten it or raise the limit"
            )
    prompts = [item.prompt for item in items]
    tokenizer = getattr(processor, "tokenizer", processor)
    for start in range(0, len(prompts), 1024):
        lengths = map(
            len,
            tokenizer(prompts[start : start + 1024], add_special_tokens=False, verbose=False)["input_ids"],
        )
        for item, length in zip(items[start : start + 1024], lengths, strict=True):
            if length > max_tokens:
                raise SvitInputError(
                    f"{item.id}: question of {length} tokens, beyond --max-question-tokens {max_tokens}; "
                    "shorten it or raise the limit"
                )


# --- The ledger -----------------------------------------------------------------------------------------


def _part_path(output_dir: Path, rank: int) -> Path:
    return output_dir / LEDGER_DIR / f"part-{rank:05d}.jsonl"


def read_part(path: Path, repair: bool = False) -> list[dict]:
    """Complete records of one ledger part; with `repair`, a last line cut short by a kill is cut off the file."""
    data = path.read_bytes()
    check_json_depth(data, path)  # one line nested deep enough would make json.loads recurse out of the stack
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(json.loads(line))
        except ValueError:
            break
        good += len(line)
    if good < len(data):
        logger.warning("%s: dropping %d bytes of an unfinished line (a killed run)", path, len(data) - good)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(good)
    return records


def read_ledger(output_dir: str | os.PathLike) -> dict[str, dict]:
    """id -> record of every prediction in `output_dir`'s ledger parts; an item whose image failed and was
    retried later has its answer, not its failure."""
    records: dict[str, dict] = {}
    for part in sorted((Path(output_dir) / LEDGER_DIR).glob("part-*.jsonl")):
        for record in read_part(part):
            if record["id"] not in records or "error" in records[record["id"]]:
                records[record["id"]] = record
    return records


def _append(path: Path, records: Sequence[dict]) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


# --- Generation -----------------------------------------------------------------------------------------


def generate_batch(
    model, processor, prompts: Sequence[str], images: Sequence, max_new_tokens: int
) -> list[str]:
    """Greedy answers to one batch of (image, prompt) user turns, left-padded; raw decoded text (special tokens
    skipped, `<st>`/`<ed>` kept). An entry of `images` may be a list: that prompt's images, in order."""
    import torch

    conversations = [
        [
            {
                "role": "user",
                "content": [
                    *(
                        {"type": "image", "image": im}
                        for im in (image if isinstance(image, list) else [image])
                    ),
                    {"type": "text", "text": prompt},
                ],
            }
        ]
        for prompt, image in zip(prompts, images, strict=True)
    ]
    tokenizer = processor.tokenizer
    # left padding: new tokens follow every prompt directly (passed per call: the processor is not changed)
    inputs = processor.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"},
    )
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,  # a training run may have saved use_cache=False (TRL turns it off to train)
            pad_token_id=tokenizer.pad_token_id,
        )
    return processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def shard(items: Sequence, rank: int, world: int) -> Sequence:
    """This process's contiguous share of `items` (sizes differ by at most one)."""
    per, extra = divmod(len(items), world)
    start = rank * per + min(rank, extra)
    return items[start : start + per + (rank < extra)]


def process_state():
    """accelerate's `PartialState` of this process, one of `WORLD_SIZE` under `accelerate launch` or torchrun.

    Without an accelerator, accelerate sees several processes only when told the run is on CPU (then gloo);
    a state that still disagrees with `WORLD_SIZE` is refused: the processes would each generate everything
    into the same ledger part."""
    import torch
    from accelerate import PartialState

    world = int(os.environ.get("WORLD_SIZE", "1"))
    state = PartialState(cpu=world > 1 and not torch.cuda.is_available())
    if state.num_processes != world:
        on_cpu = "" if torch.cuda.is_available() else " (on CPU, with ACCELERATE_USE_CPU=true)"
        raise SvitInputError(
            f"WORLD_SIZE is {world} but accelerate sees {state.num_processes} process(es); launch with "
            f"`accelerate launch` (or torchrun) and one device per process{on_cpu}"
        )
    return state


def _process_layout():
    """(rank, world, barrier) of this process under `accelerate launch` (one process otherwise)."""
    state = process_state()
    return state.process_index, state.num_processes, state.wait_for_everyone


def _load_image(item: EvalItem):
    try:
        return item.image().convert("RGB"), None
    except Exception as err:  # a damaged image is one wrong answer, counted; the run goes on
        return None, f"{type(err).__name__}: {err}"


def predict_batch(
    model, processor, batch: Sequence[EvalItem], record: Callable, max_new_tokens: int
) -> list[dict]:
    """The ledger lines of one batch: id, prompt, raw output and the benchmark's fields; an item whose image
    does not load gets an empty output and its error (the benchmark scores it wrong)."""
    loaded = [_load_image(item) for item in batch]
    good = [i for i, (image, _) in enumerate(loaded) if image is not None]
    outputs = dict.fromkeys(range(len(batch)), "")
    if good:
        texts = generate_batch(
            model, processor, [batch[i].prompt for i in good], [loaded[i][0] for i in good], max_new_tokens
        )
        outputs.update(zip(good, texts, strict=True))
    lines = []
    for i, item in enumerate(batch):
        image, error = loaded[i]
        size = image.size if image is not None else None
        line = {"id": item.id, "prompt": item.prompt, "output": outputs[i], **record(item, outputs[i], size)}
        if error:
            line["error"] = error
            logger.warning("%s: image did not load (%s); counted wrong", item.id, error)
        lines.append(line)
    return lines


def generate_predictions(
    model,
    processor,
    items: Sequence[EvalItem],
    output_dir: str | os.PathLike,
    *,
    record: Callable[[EvalItem, str, tuple[int, int] | None], dict],
    batch_size: int = 8,
    max_new_tokens: int = 16,
    layout: tuple[int, int, Callable[[], None]] | None = None,
    progress: bool = True,
) -> tuple[dict[str, dict] | None, GenerationStats]:
    """Generate every item not yet in the ledger of `output_dir`; returns (id -> record on the main process,
    None on the others; this process's stats).

    `record(item, output, image_size)` gives the benchmark's fields (parsed answer, reference). `layout` is
    (rank, world, barrier), by default accelerate's `PartialState`.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise SvitInputError(f"--batch-size {batch_size}: pass 1 or more")
    check_unique_ids(items)
    ids = [item.id for item in items]
    output_dir = Path(output_dir)
    rank, world, barrier = layout or _process_layout()
    part = _part_path(output_dir, rank)
    part.parent.mkdir(parents=True, exist_ok=True)
    if part.exists():
        read_part(part, repair=True)
    barrier()  # every process repaired its part before any reads the ledger
    done = read_ledger(output_dir)
    barrier()  # every process read the same ledger before any appends
    # an item whose image did not load is tried again: the image may be there now (a fixed --images path)
    pending = [item for item in items if item.id not in done or "error" in done[item.id]]
    mine = shard(pending, rank, world)
    stats = GenerationStats(total=len(items), done_before=len(items) - len(pending), generated=0, failed=0)
    if stats.done_before:
        logger.info("resuming: %d of %d items already predicted", stats.done_before, len(items))
    bar = tqdm(total=len(mine), desc="generating", unit="item", disable=not progress or rank != 0)
    for batch in _chunks(mine, batch_size):
        lines = predict_batch(model, processor, batch, record, max_new_tokens)
        stats.failed += sum("error" in line for line in lines)
        _append(part, lines)
        stats.generated += len(batch)
        bar.update(len(batch))
    bar.close()
    barrier()
    if rank != 0:
        return None, stats
    records = read_ledger(output_dir)
    missing = [item.id for item in items if item.id not in records]
    if missing:
        raise SvitInputError(
            f"{output_dir}: {len(missing)} items have no prediction after generation (first {missing[0]})"
        )
    with atomic_path(output_dir / PREDICTIONS_FILE) as tmp:
        tmp.write_text(
            "".join(json.dumps(records[i], ensure_ascii=False) + "\n" for i in ids), encoding="utf-8"
        )
    return {i: records[i] for i in ids}, stats
