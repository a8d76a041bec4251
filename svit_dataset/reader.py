"""Canonical samples from released-format files: one streamed pass, every record kept or counted.

    reports = defaultdict(QualityReport)
    for split, row in iter_samples({"referring_qa": path}, ImageIndex(...), reports, split_of=held_out):
        ...   # row: a dict of svit_dataset.schema.SAMPLE_FEATURES, in Arrow storage form

Every conversation of a file lands in exactly one place: a row of its split, or a drop with a reason
code in `reports[(task, split)]`, or (for readers that leave images out on purpose, like the export's
`--exclude-ids`) the `excluded` count. A malformed record counts once, in its image's split, or in
`unsplit` when it has no usable image id. So for each file:

    conversations of well-formed records + malformed records
        == sum over splits of (kept + dropped) + excluded
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate, chain, cycle
from pathlib import Path
from typing import NamedTuple

import orjson
import pyarrow as pa

from svit_dataset.quality import (
    DUPLICATE_SAMPLE,
    MALFORMED_RECORD,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    QualityReport,
    check_conversation,
)
from svit_dataset.release import (
    MAX_BAD_FRACTION,
    MalformedRecord,
    MalformedTally,
    iter_records,
    record_conversations,
    record_image_id,
)
from svit_dataset.schema import ASSISTANT, SAMPLE_FEATURES, TRAIN, USER, sample_id
from svit_dataset.vg import ImageIndex

logger = logging.getLogger(__name__)

# split_of(image_id): the split of an image's samples, or None to leave them out (counted as excluded).
SplitOf = Callable[[int], "str | None"]


def iter_samples(
    files: Mapping[str, str | Path],
    images: ImageIndex,
    reports: dict[tuple[str, str], QualityReport],
    *,
    split_of: SplitOf | None = None,
    unsplit: str = TRAIN,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    embed_images: bool = False,
) -> Iterator[tuple[str, dict]]:
    """`(split, row)` for every sample of released-format files (task -> path), through the gates.

    Drops are counted in `reports[(task, split)]` (created on first use: pass a defaultdict); a file
    whose malformed records exceed `max_bad_fraction` raises SvitFormatError at its end. Without
    `split_of`, every sample is in split `unsplit`.
    """
    for split, sample in iter_sample_tuples(
        files,
        images,
        reports,
        split_of=split_of,
        unsplit=unsplit,
        max_bad_fraction=max_bad_fraction,
        embed_images=embed_images,
    ):
        yield split, sample.row()


class Sample(NamedTuple):
    """A sample as the reader makes it: a row of SAMPLE_FEATURES with the messages as their texts.

    The roles are implied: the gates pass only turns that alternate user, assistant, ... `row()` is the
    row as a dict; `samples_table` puts many in Arrow columns without building one.
    """

    id: str
    image_id: int
    task: str
    contents: list[str]  # each turn's text, stripped
    images: list[dict]  # [{"bytes", "path"}] when embedded, else []
    image_path: str
    width: int | None
    height: int | None
    topic: str

    def row(self) -> dict:
        """The row in Arrow storage form (`images` as {"bytes", "path"} dicts)."""
        return {
            "id": self.id,
            "image_id": self.image_id,
            "task": self.task,
            "messages": [
                {"role": role, "content": content}
                for role, content in zip(cycle((USER, ASSISTANT)), self.contents)
            ],
            "images": self.images,
            "image_path": self.image_path,
            "width": self.width,
            "height": self.height,
            "topic": self.topic,
        }


def samples_table(samples: list[Sample]) -> pa.Table:
    """`pa.Table.from_pylist([s.row() for s in samples], schema=...)`, built column by column: the
    messages from one flat list of texts and their offsets, with no dict per turn (the build's hot path)."""
    schema = SAMPLE_FEATURES.arrow_schema
    if not samples:
        return schema.empty_table()
    columns = dict(zip(Sample._fields, zip(*samples, strict=True), strict=True))  # transposed in C
    turns = columns.pop("contents")
    contents = pa.array(list(chain.from_iterable(turns)), pa.string())
    offsets = pa.array(list(accumulate(map(len, turns), initial=0)), pa.int32())
    columns["messages"] = pa.ListArray.from_arrays(
        offsets,
        pa.StructArray.from_arrays([_roles(len(contents)), contents], ["role", "content"]),
        type=schema.field("messages").type,
    )
    arrays = [
        column if isinstance(column := columns[name], pa.Array) else pa.array(column, schema.field(name).type)
        for name in schema.names
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


_ROLE_COLUMN: list[pa.Array] = [pa.array([], pa.string())]


def _roles(n: int) -> pa.Array:
    """`user, assistant, user, ...` of length n (even: the gates pass paired turns only), a slice of one
    array grown on demand."""
    if len(_ROLE_COLUMN[0]) < n:
        _ROLE_COLUMN[0] = pa.array([USER, ASSISTANT] * max(n, 1 << 16), pa.string())
    return _ROLE_COLUMN[0].slice(0, n)


def iter_sample_tuples(
    files: Mapping[str, str | Path],
    images: ImageIndex,
    reports: dict[tuple[str, str], QualityReport],
    *,
    split_of: SplitOf | None = None,
    unsplit: str = TRAIN,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    embed_images: bool = False,
) -> Iterator[tuple[str, Sample]]:
    """`iter_samples` with each sample a `Sample` (for `samples_table`) rather than a row dict."""
    if split_of is None:
        split_of = lambda _image_id: unsplit  # noqa: E731
    for task, path in files.items():
        path = Path(path)
        tally = MalformedTally(path, max_bad_fraction)
        seen: set[bytes] = set()
        next_index: dict[int, int] = defaultdict(int)
        for index, record in iter_records(path):
            tally.records += 1
            try:
                image_id = record_image_id(record)
            except MalformedRecord as err:
                tally.add(index, str(err))
                reports[(task, unsplit)].drop(MALFORMED_RECORD, f"{path.name} record {index}: {err}")
                continue
            split = split_of(image_id)
            if split is None:  # left out on purpose: counted (a malformed record as one, as everywhere)
                try:
                    reports[(task, unsplit)].excluded += len(record_conversations(record))
                except MalformedRecord:
                    reports[(task, unsplit)].excluded += 1
                continue
            report = reports[(task, split)]
            try:
                conversations = record_conversations(record)
            except MalformedRecord as err:
                tally.add(index, str(err))
                report.drop(MALFORMED_RECORD, f"{path.name} record {index}: {err} (image {image_id})")
                continue
            for k, (topic, speakers, texts) in enumerate(conversations):
                sample = _to_sample(
                    image_id, speakers, texts, topic, task, images, report, seen, next_index, embed_images
                )
                if isinstance(sample, str):  # a reason code: dropped; the message is only built here
                    report.drop(sample, f"{path.name} record {index} conversation {k} (image {image_id})")
                    continue
                report.kept += 1
                yield split, sample
        tally.check()
        logger.info(
            "%s: %s",
            task,
            "; ".join(
                f"{split}: kept {rep.kept}, dropped {dict(rep.dropped)}"
                for (t, split), rep in reports.items()
                if t == task
            ),
        )


def _content_digest(image_id: int, contents: list[str]) -> bytes:
    """Identity of a conversation of an image: its texts (the roles follow from the gates), as 16 bytes
    of SHA-256 (hardware-accelerated where the CPU has SHA extensions: ~1.5x BLAKE2b's speed here)."""
    return hashlib.sha256(orjson.dumps([image_id, contents])).digest()[:16]


def _to_sample(
    image_id: int,
    speakers: list[str],
    texts: list[str],
    topic: str,
    task: str,
    images: ImageIndex,
    report,
    seen,
    next_index,
    embed_images,
) -> Sample | str:
    """The sample of one conversation, or the reason code it is dropped for. Runs 650K times on the
    release (8.5M turns): nothing is built for a conversation before it passes the gates."""
    contents = list(map(str.strip, texts))
    reason = check_conversation(speakers, texts, contents)
    if reason:
        return reason
    digest = _content_digest(image_id, contents)
    if digest in seen:
        return DUPLICATE_SAMPLE
    info = images.info(image_id)
    if info is None:
        return UNREADABLE_IMAGE if images.is_unreadable(image_id) else MISSING_IMAGE
    embedded = []
    if embed_images and images.images_dir:
        try:
            embedded = [{"bytes": images.read_bytes(info), "path": info.path}]
        except OSError as err:  # vanished or unreadable since it was found: this sample only
            logger.warning("image %d: %s", image_id, err)
            return UNREADABLE_IMAGE
    seen.add(digest)
    # Numbered per image and task; a repeated record of the same image continues the numbering.
    index = next_index[image_id]
    next_index[image_id] += 1
    return Sample(
        sample_id(image_id, task, index),
        image_id,
        task,
        contents,
        embedded,
        info.path,
        info.width,
        info.height,
        topic,
    )
