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
from pathlib import Path

import orjson

from svit_dataset.quality import (
    DUPLICATE_SAMPLE,
    MALFORMED_RECORD,
    MISSING_IMAGE,
    SPEAKER_ROLES,
    UNREADABLE_IMAGE,
    QualityReport,
    check_turns,
)
from svit_dataset.release import (
    MAX_BAD_FRACTION,
    MalformedRecord,
    MalformedTally,
    iter_records,
    record_conversations,
    record_image_id,
)
from svit_dataset.schema import TRAIN, sample_id
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
            for k, (topic, turns) in enumerate(conversations):
                row = _to_sample(image_id, turns, topic, task, images, report, seen, next_index, embed_images)
                if isinstance(row, str):  # a reason code: dropped; the message is only built here
                    report.drop(row, f"{path.name} record {index} conversation {k} (image {image_id})")
                    continue
                report.kept += 1
                yield split, row
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


def _content_digest(image_id: int, messages: list[dict]) -> bytes:
    return hashlib.blake2b(orjson.dumps([image_id, messages]), digest_size=16).digest()


def _to_sample(
    image_id: int, turns, topic: str, task: str, images: ImageIndex, report, seen, next_index, embed_images
) -> dict | str:
    """The canonical row of one conversation, or the reason code it is dropped for. Runs 4M times on
    the release: nothing is built for a conversation before it passes the gates."""
    reason = check_turns(turns)
    if reason:
        return reason
    messages = [{"role": SPEAKER_ROLES[speaker], "content": text.strip()} for speaker, text in turns]
    digest = _content_digest(image_id, messages)
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
    return {
        "id": sample_id(image_id, task, index),
        "image_id": image_id,
        "task": task,
        "messages": messages,
        "images": embedded,
        "image_path": info.path,
        "width": info.width,
        "height": info.height,
        "topic": topic,
    }
