"""SVIT-mix-665K: LLaVA-v1.5-mix-665K with its LLaVA-Instruct-150K records replaced by core_150k.

Identifying the LLaVA-Instruct records. Ids do not do it: the mix reuses COCO image ids as record
ids across sources, and LLaVA-Instruct-150K itself repeats an id for the conversation, the detail
description and the complex reasoning of one image. A mix record is a LLaVA-Instruct record when its
id AND its conversation (every turn's speaker and text, with the `<image>` token removed and spaces
trimmed, since the mix moves `<image>` in some records) equal those of a record of the
LLaVA-Instruct-150K file given. Records that share an id with an instruct record but not its
conversation are kept and counted (`same_id_other_conversation`).

Order: the core_150k records come first (in task order), then the kept mix records in their file
order; trainers shuffle.

Rows in the canonical schema (`MIX_FEATURES` = the sample schema + `source`):
- `messages`: user/assistant turns in LLaVA-1.5 form (core_150k: boxes in the padded-square frame,
  no `<st>`/`<ed>`, grounding suffixes, as `svit export llava`), WITHOUT the `<image>` token;
- `images`: empty (the mix's COCO, GQA, OCR-VQA, TextVQA and VG images are not ours to embed);
- `image_path`: the LLaVA `image` path (`coco/train2017/...`, `vg/VG_100K/...`), "" for text-only;
- `image_id`: the VG id for core_150k rows, the image file's number for other rows when it is one,
  else null; `width`/`height`: known for core_150k rows only;
- `task`: the SVIT task for core_150k rows, `llava_mix` for the others;
- `source`: `svit` for core_150k rows, else the first folder of the image path (`coco`, `gqa`,
  `ocr_vqa`, `textvqa`, `vg`) or `text` for text-only records;
- `id`: the record's id; a repeated id gets `#2`, `#3`... so ids stay unique (counted).
`write_mix_llava_json` writes the same records as LLaVA-1.5 training JSON, kept records verbatim.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import orjson
import pyarrow as pa

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.export_llava import IMAGE_TOKEN, to_llava_record
from svit_dataset.schema import ASSISTANT, SAMPLE_FEATURES, USER

logger = logging.getLogger(__name__)

LLAVA_MIX_TASK = "llava_mix"
SVIT_SOURCE = "svit"
TEXT_SOURCE = "text"
MIX_FEATURES = datasets.Features({**SAMPLE_FEATURES, "source": datasets.Value("string")})
_ROLE = {"human": USER, "gpt": ASSISTANT}
_CHUNK = 1 << 22


def iter_json_list(path: str | Path) -> Iterator[object]:
    """The elements of a top-level JSON list, streamed with the C decoder (4 MB at a time)."""
    path = Path(path)
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buf = f.read(_CHUNK)
        pos = len(buf) - len(buf.lstrip("\ufeff \t\r\n"))
        if buf[pos : pos + 1] != "[":
            raise SvitFormatError(f"{path}: expected a JSON list (LLaVA training JSON), found {buf[pos:pos + 20]!r}")
        pos += 1
        index = 0
        eof = False
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf) - 1 and not eof:
                more = f.read(_CHUNK)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
                continue
            if pos < len(buf) and buf[pos] == "]":
                return
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as err:
                if eof:
                    raise SvitFormatError(
                        f"{path}: invalid or truncated JSON at record {index} ({err.msg}); "
                        "download the file again"
                    ) from None
                more = f.read(_CHUNK)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
                continue
            if end == len(buf) and not eof:
                # a number or literal could continue in the next chunk: records are objects, so
                # this only happens for a malformed file; read on and decode again
                more = f.read(_CHUNK)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
                continue
            yield item
            index += 1
            pos = end


def conversation_key(record: dict) -> bytes:
    """Identity of a LLaVA record: its id and its turns, `<image>` removed and text trimmed."""
    turns = [(t.get("from"), str(t.get("value", "")).replace(IMAGE_TOKEN, "").strip()) for t in record["conversations"]]
    return hashlib.blake2b(orjson.dumps([str(record.get("id")), turns]), digest_size=12).digest()


def _check_record(record: object) -> str | None:
    """Why a LLaVA record cannot be used, or None."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return "no 'conversations' list"
    for t in turns:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str) or t.get("from") not in _ROLE:
            return "a turn without a human/gpt 'from' and a string 'value'"
    if "image" in record and not isinstance(record["image"], str):
        return "'image' is not a string"
    return None


def read_instruct_keys(path: str | Path) -> tuple[set[bytes], set[str], int]:
    """Keys and ids of every record of LLaVA-Instruct-150K, and its record count."""
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"--llava-instruct {path}: not found (llava_instruct_150k.json)")
    keys: set[bytes] = set()
    ids: set[str] = set()
    n = 0
    for n, record in enumerate(iter_json_list(path), 1):  # noqa: B007
        why = _check_record(record)
        if why:
            raise SvitFormatError(f"{path}: record {n - 1} is {why}; pass LLaVA-Instruct-150K's own file")
        keys.add(conversation_key(record))
        ids.add(str(record.get("id")))
    return keys, ids, n


def _image_number(path: str) -> int | None:
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def llava_row(record: dict, row_id: str) -> dict:
    """A kept LLaVA mix record as a MIX_FEATURES row."""
    image = record.get("image") or ""
    return {
        "id": row_id,
        "image_id": _image_number(image) if image else None,
        "task": LLAVA_MIX_TASK,
        "messages": [
            {"role": _ROLE[t["from"]], "content": t["value"].replace(IMAGE_TOKEN, "").strip()}
            for t in record["conversations"]
        ],
        "images": [],
        "image_path": image,
        "width": None,
        "height": None,
        "topic": "",
        "source": image.split("/", 1)[0] if "/" in image else (TEXT_SOURCE if not image else "other"),
    }


def svit_row(sample: dict, llava: dict) -> dict:
    """A core_150k sample (canonical) and its LLaVA-1.5 record as a MIX_FEATURES row."""
    return {
        "id": sample["id"],
        "image_id": sample["image_id"],
        "task": sample["task"],
        "messages": [
            {"role": _ROLE[t["from"]], "content": t["value"].replace(IMAGE_TOKEN, "").strip()}
            for t in llava["conversations"]
        ],
        "images": [],
        "image_path": llava["image"],
        "width": sample["width"],
        "height": sample["height"],
        "topic": sample.get("topic") or "",
        "source": SVIT_SOURCE,
    }


class MixWriter:
    """Rows of the mix to a Parquet sink (a callable taking a pyarrow Table), in batches, and the
    same records to an optional LLaVA-1.5 JSON file (temp + rename on `close`)."""

    def __init__(self, write_table, llava_json: str | Path | None = None, batch_rows: int = 5000):
        self.write_table = write_table
        self.schema = MIX_FEATURES.arrow_schema
        self.rows: list[dict] = []
        self.batch_rows = batch_rows
        self.count = 0
        self.by_source: Counter = Counter()
        self.seen_ids: dict[str, int] = {}
        self.renamed_ids = 0
        self.json_path = Path(llava_json) if llava_json else None
        self._json = None
        if self.json_path:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.json_path.with_name(f".{self.json_path.name}.tmp-{os.getpid()}")
            self._json = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()/abort()
            self._json.write("[")

    def unique_id(self, row_id: str) -> str:
        k = self.seen_ids.get(row_id, 0) + 1
        self.seen_ids[row_id] = k
        if k == 1:
            return row_id
        self.renamed_ids += 1
        return f"{row_id}#{k}"

    def add(self, row: dict, llava_record: dict) -> None:
        row["id"] = self.unique_id(row["id"])
        self.rows.append(row)
        self.by_source[row["source"]] += 1
        if self._json is not None:
            self._json.write(",\n" if self.count else "\n")
            self._json.write(json.dumps(llava_record, ensure_ascii=False))
        self.count += 1
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        if self._json is not None:
            self._json.write("\n]\n")
            self._json.close()
            os.replace(self._tmp, self.json_path)
            self._json = None

    def abort(self) -> None:
        if self._json is not None:
            self._json.close()
            self._tmp.unlink(missing_ok=True)
            self._json = None


def add_core_samples(writer: MixWriter, samples: Iterable[dict], rng: random.Random, image_prefix: str) -> int:
    """core_150k samples (canonical rows with width/height) into the mix, in LLaVA-1.5 form."""
    n = 0
    for sample in samples:
        llava = to_llava_record(sample, rng, image_prefix)
        writer.add(svit_row(sample, llava), llava)
        n += 1
    return n


def add_llava_mix(
    writer: MixWriter,
    mix_path: str | Path,
    instruct_path: str | Path,
    max_bad_fraction: float = 0.001,
) -> dict:
    """Every LLaVA mix record that is not a LLaVA-Instruct-150K record; returns the counts."""
    mix_path = Path(mix_path)
    if not mix_path.is_file():
        raise SvitInputError(f"--llava-mix {mix_path}: not found (llava_v1_5_mix665k.json)")
    keys, instruct_ids, n_instruct = read_instruct_keys(instruct_path)
    replaced = same_id_other = malformed = records = 0
    first_bad = ""
    matched_keys: set[bytes] = set()
    for index, record in enumerate(iter_json_list(mix_path)):
        records += 1
        why = _check_record(record)
        if why:
            malformed += 1
            first_bad = first_bad or f"record {index}: {why}"
            logger.warning("%s record %d skipped: %s", mix_path.name, index, why)
            continue
        key = conversation_key(record)
        if key in keys:
            replaced += 1
            matched_keys.add(key)
            continue
        record_id = str(record["id"]) if "id" in record else f"llava-{index}"
        if record_id in instruct_ids:
            same_id_other += 1
        writer.add(llava_row(record, record_id), record)
    if malformed > max_bad_fraction * max(records, 1):
        raise SvitFormatError(
            f"{mix_path}: {malformed} of {records} records are malformed (first at {first_bad}), over "
            f"the limit of {max_bad_fraction:.2%}. Fix the file or raise --max-bad-fraction."
        )
    return {
        "llava_mix_records": records,
        "llava_instruct_records": n_instruct,
        "llava_instruct_distinct": len(keys),
        "replaced": replaced,
        "instruct_not_found_in_mix": len(keys) - len(matched_keys),
        "same_id_other_conversation": same_id_other,
        "malformed": malformed,
        "kept_llava": records - replaced - malformed,
    }
