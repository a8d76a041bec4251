"""Fuzz the readers, parsers and commands that take untrusted input, with randomized malformed data (fixed seed).

    python bench/fuzz.py [--family NAME ...] [--cases 1000] [--records 3000] [--files 200] [--strings 3000]
                         [--seed 0]

Every case is classed as clean, traceback (an exception the CLI would print as an internal error, exit 1) or
silent loss (a wrong or lost result without a word); the newer families also count `refused though valid` (an
over-strict check, or an over-lax oracle: listed, not a defect) and `slow`. Each family's oracle is written
apart from the code under test. Goal: zero tracebacks, zero silent losses.

1. records: valid release records mutated at random (missing keys, wrong types, ids out of range or in
   non-ASCII digits, empty turns, unknown speakers, unbalanced tags, bad boxes, unicode, huge whitespace...),
   read by the build's reader; the expected count is computed independently with the standard json module.
2. files: valid release files damaged at random (truncated, garbage bytes, NaN, invalid UTF-8, BOM, wrong top
   level, nesting 10,000 deep): read in full or refused with SvitFormatError, in under 2 s each.
3. strings: random sequences of tags, boxes, brackets, numbers, words and whitespace runs, parsed by
   `parse_grounded_text` and the processor's post-processing.
4. train (bench/fuzz_families/train.py): numeric flags and recipe YAML of `svit train`, up to the first work.
5. eval (fuzz_families/eval.py): MME folders and results folders, POPE files, RefCOCO tables through
   `svit eval` with generation stubbed; scores checked against our own scoring.
6. cards (fuzz_families/cards.py): results.json files into `svit card model` and `svit eval card`.
7. space (fuzz_families/space.py): the Space's request handler and space.json against a tiny model.
`--cases` sizes families 4-7 (1,000 each by default); `--family` picks families (default: all).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

# bench/ itself: the families of the newer surfaces live in bench/fuzz_families/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from svit_dataset.boxes import BOX_PATTERN  # noqa: E402
from svit_dataset.errors import SvitError  # noqa: E402
from svit_dataset.grounded_text import parse_grounded_text  # noqa: E402
from svit_dataset.quality import QualityReport  # noqa: E402
from svit_dataset.reader import iter_samples  # noqa: E402
from svit_dataset.vg import ImageIndex  # noqa: E402

GOOD_TURNS = [
    ("user", "What is on the <st>table<ed> [0.1, 0.5, 0.9, 0.95]?"),
    ("gpt", "A <st>red cup<ed> [0.2, 0.55, 0.3, 0.7] and two <st>plates<ed> [0.4, 0.6, 0.5, 0.7], [0.6, 0.6, 0.7, 0.7]."),
    ("user", "Is it daytime?"),
    ("gpt", "Yes, the room is lit by sunlight."),
]  # fmt: skip
ODD_VALUES = [
    None, True, 7, -1, 2**63, 2**70, 1.5, 1e300, "", "²", "١٢", "12", " 12 ", "0x1f", [], {}, "\x00", "😀", " " * 5000, "<st>", "<ed>", "[0.1, 0.2]", "[2.0, -1, 0.5, 0.1]", "It seems like your message is empty",
]  # fmt: skip


def valid_record(rng: random.Random, image_id: int) -> dict:
    conversations = []
    for _ in range(rng.randint(1, 3)):
        turns = GOOD_TURNS[: 2 * rng.randint(1, 2)]
        conversations.append({"content": [{"from": s, "value": v} for s, v in turns]})
    return {"image_id": image_id, "conversations": conversations}


def mutate(rng: random.Random, record: dict) -> object:
    """One random fault (or none) somewhere in the record."""
    kind = rng.randrange(12)
    odd = rng.choice(ODD_VALUES)
    if kind == 0:
        return odd  # the record itself is not an object
    if kind == 1:
        record["image_id"] = odd
    elif kind == 2:
        record.pop(rng.choice(["image_id", "conversations"]))
    elif kind == 3:
        record["conversations"] = odd
    elif kind == 4:
        record["conversations"][0] = odd
    elif kind == 5:
        record["conversations"][0]["content"] = odd
    elif kind == 6:
        turn = rng.choice(record["conversations"][0]["content"])
        turn[rng.choice(["from", "value"])] = odd
    elif kind == 7:
        record["conversations"][0]["content"].pop()
    elif kind == 8:
        record["conversations"][0]["topic"] = odd
    elif kind == 9:
        turn = rng.choice(record["conversations"][0]["content"])
        turn.pop(rng.choice(["from", "value"]))
    elif kind == 10:
        record["conversations"].append(json.loads(json.dumps(record["conversations"][0])))  # duplicate
    return record


def expected_units(record: object) -> int:
    """What the reader must account for: conversations of a well-formed record, else one."""
    if not isinstance(record, dict):
        return 1
    image_id, conversations = record.get("image_id"), record.get("conversations")
    if isinstance(image_id, str) and image_id.strip().isascii() and image_id.strip().isdigit():
        image_id = int(image_id.strip())
    if not (isinstance(image_id, int) and not isinstance(image_id, bool) and 0 <= image_id < 2**63):
        return 1
    if not isinstance(conversations, list):
        return 1
    for c in conversations:
        if not isinstance(c, dict) or not isinstance(c.get("content"), list):
            return 1
        for t in c["content"]:
            if not (
                isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str)
            ):
                return 1
        if "topic" in c and c["topic"] and not isinstance(c["topic"], str):
            return 1
    return len(conversations)


def fuzz_records(rng: random.Random, n: int, folder: Path, stats: Counter, failures: list) -> int:
    """Release files of mutated records, read by the build's reader; returns bytes read."""
    records = [mutate(rng, valid_record(rng, rng.randrange(1, 1000))) for _ in range(n)]
    read = 0
    for start in range(0, n, 100):
        chunk = records[start : start + 100]
        path = folder / f"records-{start}.json"
        path.write_text(json.dumps(chunk, ensure_ascii=rng.random() < 0.5), "utf-8")
        read += path.stat().st_size
        reports: dict = defaultdict(QualityReport)
        stats["record cases"] += len(chunk)
        try:
            for _ in iter_samples({"conversation": path}, ImageIndex(), reports, max_bad_fraction=1.0):
                pass
        except SvitError as err:
            stats["record files refused (clean)"] += 1
            failures.append(f"(refused, clean) {path.name}: {str(err)[:200]}")
            continue
        except Exception:  # noqa: BLE001 - counting defects is the point
            stats["tracebacks"] += 1
            failures.append(f"{path.name}: {traceback.format_exc(limit=3)}")
            continue
        accounted = sum(r.seen + r.excluded for r in reports.values())
        expected = sum(map(expected_units, chunk))
        if accounted != expected:
            stats["silent losses"] += abs(expected - accounted)
            failures.append(f"{path.name}: {expected} units, {accounted} accounted")
        stats["records kept or counted (clean)"] += len(chunk)
    return read


def damage(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(8)
    cut = rng.randrange(1, len(data))
    if kind == 7:  # deep nesting (the file of brackets, or inside a record): refused, memory flat
        depth = rng.choice([1000, 5000, 10000])  # 100,000 grew to 24 GB before the reader bounded depth
        if rng.random() < 0.5:
            return b"[" * depth + b"]" * depth
        return data.replace(b'{"image_id"', b'{"deep": ' + b"[" * depth + b"]" * depth + b', "image_id"', 1)
    if kind == 0:
        return data[:cut]  # truncated
    if kind == 1:
        return data[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[cut:]
    if kind == 2:
        return data.replace(b'"image_id": 1', b'"image_id": NaN', 1)
    if kind == 3:
        return data[:cut] + b"\xff\xfe" + data[cut:]
    if kind == 4:
        return b"\xef\xbb\xbf" + data  # a BOM: must be read in full
    if kind == 5:
        return b'{"records": ' + data + b"}"
    return data.replace(b"[", b"[" * rng.randint(2, 50), 1)


def fuzz_files(rng: random.Random, n: int, folder: Path, stats: Counter, failures: list) -> int:
    read = 0
    for k in range(n):
        records = [valid_record(rng, i) for i in range(1, rng.randint(2, 30))]
        path = folder / f"file-{k}.json"
        path.write_bytes(damage(rng, json.dumps(records).encode()))
        read += path.stat().st_size
        stats["file cases"] += 1
        reports: dict = defaultdict(QualityReport)
        started = time.perf_counter()
        try:
            for _ in iter_samples({"conversation": path}, ImageIndex(), reports, max_bad_fraction=1.0):
                pass
            stats["files read (clean)"] += 1
        except SvitError:
            stats["files refused (clean)"] += 1
        except Exception:  # noqa: BLE001
            stats["tracebacks"] += 1
            failures.append(f"{path.name}: {traceback.format_exc(limit=3)}")
        if time.perf_counter() - started > 2:  # a file of a few KB: seconds mean work that grows with depth
            stats["slow files"] += 1
            failures.append(f"{path.name}: read in {time.perf_counter() - started:.1f} s")
    return read


TOKENS = ["<st>", "<ed>", "[", "]", ", ", ",", " ", "  ", "\t", "\n", "\u00a0", "0.5", "-1", "1e9", "0.", "ball",
          "the red cup", "[0.1, 0.2, 0.3, 0.4]", "[0.1,0.2,0.3,0.4]", "[1, 2, 3]", "[0.9, 0.1, 0.2, 0.3]", "<s", "t>"]  # fmt: skip


def fuzz_strings(rng: random.Random, n: int, stats: Counter, failures: list, processor=None) -> int:
    read = 0
    for k in range(n):
        pieces = [rng.choice(TOKENS) for _ in range(rng.randint(1, 60))]
        if rng.random() < 0.05:
            pieces.append(rng.choice([" ", "<st>", "[", "1"]) * rng.randint(1000, 20000))
        text = "".join(pieces)
        read += len(text.encode())
        stats["string cases"] += 1
        try:
            clean, entities = parse_grounded_text(text)
            if processor is not None:
                processor.post_process_generation(
                    text, image_size=(rng.randint(1, 2000), rng.randint(1, 2000))
                )
        except Exception:  # noqa: BLE001
            stats["tracebacks"] += 1
            failures.append(f"string {k}: {traceback.format_exc(limit=3)}")
            continue
        boxes_in = len(BOX_PATTERN.findall(text))
        boxes_out = sum(len(e[2]) for e in entities) + len(BOX_PATTERN.findall(clean))
        spans_ok = all(clean[s:e] == phrase for phrase, (s, e), _ in entities)
        if boxes_in != boxes_out or not spans_ok:
            stats["silent losses"] += 1
            failures.append(
                f"string {k}: {boxes_in} boxes in, {boxes_out} out, spans ok {spans_ok}: {text[:120]!r}"
            )
        else:
            stats["strings parsed (clean)"] += 1
    return read


OLD_FAMILIES = ("records", "files", "strings")
NEW_FAMILIES = ("train", "eval", "cards", "space")  # bench/fuzz_families/<name>.py
FAMILIES = OLD_FAMILIES + NEW_FAMILIES


def run_old_families(args, rng: random.Random, chosen: list[str]) -> int:
    """The three reader/parser families; returns their defects (tracebacks + silent losses)."""
    stats: Counter = Counter()
    failures: list[str] = []
    processor = None
    if "strings" in chosen and not args.no_processor:
        from svit_model.tiny import build_tiny_svit_llava

        processor = build_tiny_svit_llava()[1]
    started = time.perf_counter()
    read = 0
    with tempfile.TemporaryDirectory() as tmp:
        if "records" in chosen:
            read += fuzz_records(rng, args.records, Path(tmp), stats, failures)
        if "files" in chosen:
            read += fuzz_files(rng, args.files, Path(tmp), stats, failures)
    if "strings" in chosen:
        read += fuzz_strings(rng, args.strings, stats, failures, processor)
    seconds = time.perf_counter() - started
    cases = stats["record cases"] + stats["file cases"] + stats["string cases"]
    print(f"[{', '.join(chosen)}] cases tried: {cases:,} ({stats['record cases']:,} records, "
          f"{stats['file cases']:,} files, {stats['string cases']:,} grounded strings), seed {args.seed}")  # fmt: skip
    for key in sorted(k for k in stats if "clean" in k):
        print(f"  {key}: {stats[key]:,}")
    print(f"  tracebacks: {stats['tracebacks']}")
    print(f"  silent losses: {stats['silent losses']}")
    print(f"  slow files (over 2 s): {stats['slow files']}")
    print(f"  time: {seconds:.2f} s for {read / 2**20:.2f} MB = {seconds / max(read / 2**20, 1e-9):.2f} s/MB")
    for failure in failures[:10]:
        print("  ---", failure)
    return stats["tracebacks"] + stats["silent losses"]


def run_new_family(name: str, cases: int, seed: int):
    """One family of bench/fuzz_families on `cases` cases in a fresh temporary folder; returns its Tally."""
    import importlib

    from fuzz_families.common import Tally

    module = importlib.import_module(f"fuzz_families.{name}")
    tally = Tally(name)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        module.run(random.Random(f"{name}-{seed}"), cases, tally, Path(tmp))
    print(tally.report(time.perf_counter() - started), flush=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--family",
        action="append",
        choices=FAMILIES,
        help="run only this family (repeatable); default: all",
    )
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--strings", type=int, default=3000)
    parser.add_argument("--cases", type=int, default=1000, help="cases of each of " + ", ".join(NEW_FAMILIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-processor", action="store_true", help="skip the tiny processor's post-processing"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # every skipped record logs a warning: thousands here
    import datasets

    datasets.disable_progress_bars()  # a bar per Parquet file of a case: thousands here
    chosen = args.family or list(FAMILIES)
    defects = 0
    old = [name for name in OLD_FAMILIES if name in chosen]
    if old:
        defects += run_old_families(args, random.Random(args.seed), old)
    for name in NEW_FAMILIES:
        if name in chosen:
            defects += run_new_family(name, args.cases, args.seed).defects
    return 1 if defects else 0


if __name__ == "__main__":
    raise SystemExit(main())
