"""Modality- and length-grouped sampling, in the spirit of LLaVA-1.5's `group_by_modality_length`.

Each batch holds samples of one modality (with an image, or text only) and of similar length, so little of it is
padding; the order of batches stays random. Under `world_size` processes the order is built in steps of
`world_size` consecutive batches (accelerate hands batch k to process k mod world_size), and the batches of one
step have similar lengths, so no process waits long for another. Every process computes the same order from
(seed, epoch); each index appears exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow.compute as pc
from torch.utils.data import Sampler

# How many steps are sorted together: larger groups tighter lengths, smaller keeps more randomness.
MEGABATCH_STEPS = 32


def arrow_table(dataset):
    """The dataset's memory-mapped Arrow table (all rows, before any `select`) and the row numbers of the view."""
    table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
    rows = None if dataset._indices is None else dataset._indices.column(0).to_numpy()
    return table, rows


def row_counts(column, num_rows: int) -> np.ndarray:
    """Per-row list lengths of a list column (offsets only: image bytes are never read)."""
    return pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).reshape(num_rows)


def has_image_column(table) -> np.ndarray:
    """Rows with image bytes or an image path, over the whole table."""
    has_image = np.zeros(table.num_rows, dtype=bool)
    if "images" in table.column_names:
        has_image |= row_counts(table.column("images"), table.num_rows) > 0
    if "image_path" in table.column_names:
        has_image |= (
            pc.utf8_length(table.column("image_path")).fill_null(0).to_numpy(zero_copy_only=False) > 0
        )
    return has_image


def modality_lengths(dataset, image_tokens: int) -> list[int]:
    """Estimated tokens per row, positive for rows with an image and negative for text-only rows (LLaVA's sign
    convention). Words of every message stand for tokens (a good enough proxy for ordering, and no tokenizer
    pass over the whole dataset); an image adds `image_tokens`.

    Read from the Arrow columns, so images are never decoded.
    """
    table, rows = arrow_table(dataset)
    messages = table.column("messages").combine_chunks()
    contents = pc.list_flatten(messages).field("content")
    words = (
        pc.list_value_length(pc.utf8_split_whitespace(contents)).fill_null(0).to_numpy(zero_copy_only=False)
    )
    row_of_message = pc.list_parent_indices(messages).to_numpy()
    lengths = np.bincount(row_of_message, weights=words, minlength=table.num_rows).astype(np.int64)
    has_image = has_image_column(table)
    if rows is not None:
        lengths, has_image = lengths[rows], has_image[rows]
    lengths = lengths + np.where(has_image, image_tokens, 0)
    return np.where(has_image, np.maximum(lengths, 1), -np.maximum(lengths, 1)).tolist()


def grouped_order(
    lengths: Sequence[int],
    batch_size: int,
    world_size: int,
    seed: int,
    megabatch_steps: int = MEGABATCH_STEPS,
) -> list[int]:
    """An epoch's order of indices: whole steps of one modality and similar length, the step holding the longest
    sample first (an out-of-memory shows at once), the others shuffled; the two modalities' remainders last."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    step = batch_size * world_size
    steps, remainder = [], []
    for pool in (np.flatnonzero(lengths > 0), np.flatnonzero(lengths < 0)):
        pool = rng.permutation(pool)
        for start in range(0, len(pool), step * megabatch_steps):
            mega = pool[start : start + step * megabatch_steps]
            mega = mega[np.argsort(-np.abs(lengths[mega]), kind="stable")]
            whole = len(mega) // step * step
            steps += [mega[i : i + step] for i in range(0, whole, step)]
            remainder += mega[whole:].tolist()
    if steps:
        longest = max(range(len(steps)), key=lambda i: np.abs(lengths[steps[i]]).max())
        rest = [steps[i] for i in rng.permutation(len(steps)) if i != longest]
        steps = [steps[longest], *rest]
    remainder.sort(key=lambda i: (lengths[i] < 0, -abs(lengths[i])))  # one modality after the other
    return [int(i) for s in steps for i in s] + remainder


class ModalityLengthGroupedSampler(Sampler[int]):
    """Sampler of `grouped_order`, reshuffled each epoch (`set_epoch`, which the trainer calls)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, world_size: int = 1, seed: int = 0):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        # the same order on every process: it depends on (seed, epoch) only, never on torch's global RNG
        return iter(
            grouped_order(self.lengths, self.batch_size, self.world_size, self.seed * 1_000_003 + self.epoch)
        )


__all__ = ["ModalityLengthGroupedSampler", "grouped_order", "modality_lengths"]
