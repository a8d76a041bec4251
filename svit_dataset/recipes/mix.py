"""SVIT-mix-665K: LLaVA-v1.5-mix-665K with its LLaVA-Instruct-150K records replaced by core_150k.

Identifying the LLaVA-Instruct records. Ids do not do it: the mix reuses COCO image ids as record
ids across sources, and LLaVA-Instruct-150K itself repeats an id for the conversation, the detail
description and the complex reasoning of one image. A mix record is a LLaVA-Instruct record when its
id AND its conversation (every turn's speaker and text, with the `<image>` token removed and spaces
trimmed, since the mix moves `<image>` in some records) equal those of a record of the
LLaVA-Instruct-150K file given. Records that share an id with an instruct record but not its
conversation are kept and counted (`same_id_other_conversation`).

Order: the kept mix records in their file order, then the core_150k records (in task order);
trainers shuffle.

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
The same records can be written as LLaVA-1.5 training JSON (`svit_dataset.jsonlist.JsonListWriter`), kept records
verbatim, core_150k records as `svit export llava` writes them. Both LLaVA files are read by
`svit_dataset.jsonlist.iter_json_list`, the format's speakers and `<image>` are `svit_dataset.llava_format`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.export_llava import to_llava_record
from svit_dataset.jsonlist import iter_json_list
from svit_dataset.llava_format import IMAGE_TOKEN, LLAVA_JSON, LLAVA_ROLES, LLAVA_SPEAKERS, llava_messages
from svit_dataset.parquet_shards import ShardWriter
from svit_dataset.release import MAX_BAD_FRACTION
from svit_dataset.schema import ASSISTANT, SAMPLE_FEATURES, USER

logger = logging.getLogger(__name__)

LLAVA_MIX_TASK = "llava_mix"
SVIT_SOURCE = "svit"
TEXT_SOURCE = "text"
MIX_FEATURES = datasets.Features({**SAMPLE_FEATURES, "source": datasets.Value("string")})


def turn_text(value: str) -> str:
    """A turn's text as the mix compares and writes it: `<image>` removed, spaces trimmed (the mix
    moves `<image>` in some records). `LlavaColumns.table` applies the same rule to an Arrow column.
    Not `llava_format.strip_image_token`, which also drops a newline beside a token inside the text: the
    mix's rows and its record identity keep this rule (the two agree where LLaVA puts `<image>`)."""
    return value.replace(IMAGE_TOKEN, "").strip()


def conversation_key(record: dict) -> bytes:
    """Identity of a LLaVA record: its id and its turns' speakers and `turn_text`."""
    turns = [(t.get("from"), turn_text(str(t.get("value", "")))) for t in record["conversations"]]
    return hashlib.blake2b(orjson.dumps([str(record.get("id")), turns]), digest_size=12).digest()


def _quick_key(record: dict) -> tuple:
    """A cheap necessary condition for equal `conversation_key`s (id, turns, length of the last
    turn's `turn_text`): most mix records fail it at once."""
    turns = record["conversations"]
    return str(record.get("id")), len(turns), len(turn_text(turns[-1]["value"]))


def _check_record(record: object) -> str | None:
    """Why a LLaVA record cannot be used, or None."""
    try:
        turns = record["conversations"]
        if type(turns) is not list or not turns:
            return "no 'conversations' list"
        for t in turns:
            if t["from"] not in LLAVA_ROLES or type(t["value"]) is not str:
                return "a turn without a human/gpt 'from' and a string 'value'"
        image = record.get("image")
    except (KeyError, TypeError, AttributeError):
        if type(record) is not dict:
            return f"a {type(record).__name__}, not an object"
        if "conversations" not in record:
            return "no 'conversations' list"
        return "a turn without a human/gpt 'from' and a string 'value'"
    if image is not None and type(image) is not str:
        return "'image' is not a string"
    return None


@dataclasses.dataclass
class InstructIndex:
    """LLaVA-Instruct-150K as keys to look mix records up in."""

    keys: set[bytes]
    quick: set[tuple]
    ids: set[str]
    records: int

    def __contains__(self, record: dict) -> bool:
        return _quick_key(record) in self.quick and conversation_key(record) in self.keys


def read_instruct_index(path: str | Path) -> InstructIndex:
    """Every record of LLaVA-Instruct-150K; a malformed record is an error (it is the reference)."""
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"--llava-instruct {path}: not found (llava_instruct_150k.json)")
    index = InstructIndex(set(), set(), set(), 0)
    for n, record in iter_json_list(path, expected=LLAVA_JSON):
        why = _check_record(record)
        if why:
            raise SvitFormatError(f"{path}: record {n} is {why}; pass LLaVA-Instruct-150K's own file")
        index.keys.add(conversation_key(record))
        index.quick.add(_quick_key(record))
        index.ids.add(str(record.get("id")))
        index.records += 1
    return index


def _image_number(path: str) -> int | None:
    stem = path.rpartition("/")[2].partition(".")[0]
    return int(stem) if stem.isdigit() else None


def _source(image: str) -> str:
    return image.partition("/")[0] if "/" in image else (TEXT_SOURCE if not image else "other")


def svit_row(sample: dict, llava: dict) -> dict:
    """A core_150k sample (canonical) and its LLaVA-1.5 record as a MIX_FEATURES row."""
    return {
        "id": sample["id"],
        "image_id": sample["image_id"],
        "task": sample["task"],
        "messages": llava_messages(llava, clean=turn_text),
        "images": [],
        "image_path": llava["image"],
        "width": sample["width"],
        "height": sample["height"],
        "topic": sample.get("topic") or "",
        "source": SVIT_SOURCE,
    }


def rows_to_table(rows: list[dict]) -> pa.Table:
    """MIX_FEATURES rows as an Arrow table, built column by column (much faster than from_pylist)."""
    roles, contents, offsets = [], [], [0]
    for row in rows:
        for m in row["messages"]:
            roles.append(m["role"])
            contents.append(m["content"])
        offsets.append(len(roles))
    schema = MIX_FEATURES.arrow_schema
    message_type = schema.field("messages").type
    messages = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays(
            [pa.array(roles, pa.string()), pa.array(contents, pa.string())],
            fields=list(message_type.value_type),
        ),
        type=message_type,
    )
    images = _empty_images(len(rows))
    columns = {
        name: pa.array([row[name] for row in rows], schema.field(name).type)
        for name in ("id", "image_id", "task", "image_path", "width", "height", "topic", "source")
    }
    columns |= {"messages": messages, "images": images}
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


class LlavaColumns:
    """Kept LLaVA records gathered column by column, then one Arrow table of MIX_FEATURES rows per
    batch: the per-record Python work is a few list appends; `turn_text` (`<image>` removal,
    trimming) and the speaker names are vectorised (~5x faster than building row dicts). The one
    place LLaVA mix rows are made (`llava_tables`)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.images: list[str] = []
        self.speakers: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, record: dict, row_id: str) -> None:
        """A record that passed `_check_record`."""
        turns = record["conversations"]
        self.ids.append(row_id)
        self.images.append(record.get("image") or "")
        self.speakers.extend([t["from"] for t in turns])
        self.values.extend([t["value"] for t in turns])
        self.offsets.append(len(self.values))

    def table(self) -> pa.Table:
        schema = MIX_FEATURES.arrow_schema
        n = len(self.ids)
        images = pa.array(self.images, pa.string())
        content = pc.utf8_trim_whitespace(
            pc.replace_substring(pa.array(self.values, pa.string()), IMAGE_TOKEN, "")
        )
        # `_check_record` let only LLaVA's two speakers through
        role = pc.if_else(
            pc.equal(pa.array(self.speakers, pa.string()), LLAVA_SPEAKERS[USER]), USER, ASSISTANT
        )
        message_type = schema.field("messages").type
        messages = pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            pa.StructArray.from_arrays([role, content], fields=list(message_type.value_type)),
            type=message_type,
        )
        columns = {
            "id": pa.array(self.ids, pa.string()),
            "image_id": pa.array([_image_number(i) if i else None for i in self.images], pa.int64()),
            "task": pa.array([LLAVA_MIX_TASK] * n, pa.string()),
            "messages": messages,
            "images": _empty_images(n),
            "image_path": images,
            "width": pa.nulls(n, pa.int32()),
            "height": pa.nulls(n, pa.int32()),
            "topic": pa.array([""] * n, pa.string()),
            "source": pa.array([_source(i) for i in self.images], pa.string()),
        }
        self.__init__()
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def llava_tables(records: Iterable[tuple[dict, str]], rows: int = 10_000) -> Iterator[pa.Table]:
    """MIX_FEATURES tables of `rows` rows of kept LLaVA records ((record, row id), as
    `kept_llava_records` yields them), in order."""
    columns = LlavaColumns()
    for record, row_id in records:
        columns.add(record, row_id)
        if len(columns) >= rows:
            yield columns.table()
    if len(columns):
        yield columns.table()


def _empty_images(n: int) -> pa.Array:
    images_type = MIX_FEATURES.arrow_schema.field("images").type
    return pa.ListArray.from_arrays(
        pa.array([0] * (n + 1), pa.int32()), pa.array([], images_type.value_type), type=images_type
    )


class UniqueIds:
    """LLaVA ids repeat across sources: the k-th use of an id becomes `id#k` (k >= 2), counted."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.renamed = 0

    def __call__(self, row_id: str) -> str:
        k = self.seen.get(row_id, 0) + 1
        self.seen[row_id] = k
        if k == 1:
            return row_id
        self.renamed += 1
        return f"{row_id}#{k}"


def core_rows(samples: Iterable[dict], seed: int, image_prefix: str) -> Iterator[tuple[dict, dict]]:
    """(mix row, LLaVA-1.5 record) of core_150k samples (canonical rows with width/height).

    The grounding suffix of a referring question is drawn from a generator seeded by the seed and the
    sample id, so a sample converts the same way whatever the order or the worker."""
    for sample in samples:
        if sample["width"] is None or sample["height"] is None:
            raise SvitInputError(
                f"mix_665k: sample {sample['id']} has no image size, needed to move its boxes into "
                "LLaVA-1.5's frame; build with --images VG_DIR or --image-data image_data.json"
            )
        llava = to_llava_record(sample, random.Random(f"{seed}:{sample['id']}"), image_prefix)
        yield svit_row(sample, llava), llava


def convert_core_part(
    table: pa.Table, seed: int, image_prefix: str, parquet_path: str, json_path: str | None
) -> int:
    """Worker job: core_150k rows (a canonical Arrow table) to a Parquet part of the mix and, when
    asked, a JSON fragment of LLaVA-1.5 records. Returns the rows written. Works in slices, so a
    worker holds one slice of Python objects at a time."""
    table = table.drop_columns(["images"])
    fragment = open(json_path, "wb") if json_path else None  # noqa: SIM115 - closed below
    written = 0
    try:
        with pq.ParquetWriter(parquet_path, MIX_FEATURES.arrow_schema) as writer:
            for start in range(0, table.num_rows, 2000):
                rows, records = [], []
                for row, record in core_rows(table.slice(start, 2000).to_pylist(), seed, image_prefix):
                    rows.append(row)
                    records.append(record)
                writer.write_table(rows_to_table(rows), row_group_size=1000)
                if fragment:
                    fragment.write(
                        (b",\n" if written else b"") + b",\n".join(orjson.dumps(r) for r in records)
                    )
                written += len(rows)
    finally:
        if fragment:
            fragment.close()
    return written


def write_llava_part(
    mix_path: str,
    instruct_path: str,
    folder: str,
    max_bytes: int,
    json_fragment: str | None,
    max_bad_fraction: float,
) -> tuple[dict, list[tuple[str, int]]]:
    """Worker job: the kept LLaVA mix records as Parquet shards `folder/.llava-*.writing` (and a JSON
    fragment of the records, verbatim). Returns the counts (with rows by source) and the shards."""
    counts: dict = {}
    shards = ShardWriter(Path(folder), "llava", MIX_FEATURES.arrow_schema, max_bytes)
    by_source: Counter = Counter()
    fragment = open(json_fragment, "wb") if json_fragment else None  # noqa: SIM115 - closed below

    def verbatim(records):
        for n, (record, row_id) in enumerate(records):
            fragment.write((b",\n" if n else b"") + orjson.dumps(record))
            yield record, row_id

    try:
        kept = kept_llava_records(mix_path, instruct_path, counts, max_bad_fraction)
        for table in llava_tables(verbatim(kept) if fragment else kept):
            by_source.update(table.column("source").to_pylist())
            shards.write(table)
        shards.close_file()
    except BaseException:
        shards.abort()
        raise
    finally:
        if fragment:
            fragment.close()
    counts["by_source"] = dict(by_source)
    return counts, [(str(p), n) for p, n in zip(shards.paths, shards.rows_per_file, strict=True)]


def kept_llava_records(
    mix_path: str | Path,
    instruct_path: str | Path,
    counts: dict,
    max_bad_fraction: float = MAX_BAD_FRACTION,
) -> Iterator[tuple[dict, str]]:
    """(record, unique row id) of every LLaVA mix record that is not a LLaVA-Instruct-150K record,
    in file order; `counts` is filled as it goes (complete once the generator is exhausted)."""
    mix_path = Path(mix_path)
    if not mix_path.is_file():
        raise SvitInputError(f"--llava-mix {mix_path}: not found (llava_v1_5_mix665k.json)")
    instruct = read_instruct_index(instruct_path)
    unique_id = UniqueIds()
    counts.update(
        llava_mix_records=0,
        llava_instruct_records=instruct.records,
        llava_instruct_distinct=len(instruct.keys),
        replaced=0,
        instruct_not_found_in_mix=0,
        same_id_other_conversation=0,
        malformed=0,
        kept_llava=0,
        renamed_ids=0,
    )
    first_bad = ""
    matched: set[bytes] = set()
    for index, record in iter_json_list(mix_path, expected=LLAVA_JSON):
        counts["llava_mix_records"] += 1
        why = _check_record(record)
        if why:
            counts["malformed"] += 1
            first_bad = first_bad or f"record {index}: {why}"
            logger.warning("%s record %d skipped: %s", mix_path.name, index, why)
            continue
        if record in instruct:
            counts["replaced"] += 1
            matched.add(conversation_key(record))
            continue
        record_id = str(record["id"]) if "id" in record else f"llava-{index}"
        if record_id in instruct.ids:
            counts["same_id_other_conversation"] += 1
        counts["kept_llava"] += 1
        yield record, unique_id(record_id)
    counts["instruct_not_found_in_mix"] = len(instruct.keys) - len(matched)
    counts["renamed_ids"] = unique_id.renamed
    if counts["malformed"] > max_bad_fraction * max(counts["llava_mix_records"], 1):
        raise SvitFormatError(
            f"{mix_path}: {counts['malformed']} of {counts['llava_mix_records']} records are malformed "
            f"(first at {first_bad}), over the limit of {max_bad_fraction:.2%}. Fix the file or raise "
            "--max-bad-fraction."
        )
