"""The modality/length-grouped sampler: a permutation per epoch, single-modality batches of similar length, the
same order on every process, and each sample on exactly one process under accelerate's batch sharding."""

from __future__ import annotations

import numpy as np
import pytest
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from svit_model.training.sampler import ModalityLengthGroupedSampler, grouped_order


def corpus(n: int = 1000, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(5, 0.8, n).astype(int) + 1
    text_only = rng.random(n) < 0.15
    return np.where(text_only, -lengths, lengths).tolist()


def padding(batches, lengths) -> float:
    sizes = [[abs(lengths[i]) for i in batch] for batch in batches]
    return 1 - sum(map(sum, sizes)) / sum(max(s) * len(s) for s in sizes)


@pytest.mark.parametrize(("batch_size", "world_size"), [(4, 1), (8, 2), (3, 4)])
def test_order_is_a_permutation_of_single_modality_batches_with_little_padding(batch_size, world_size):
    lengths = corpus()
    order = grouped_order(lengths, batch_size, world_size, seed=1)
    assert sorted(order) == list(range(len(lengths)))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    mixed = [b for b in batches if len({np.sign(lengths[i]) for i in b}) > 1]
    assert len(mixed) <= 1  # only the last, where both modalities' remainders meet
    shuffled = np.random.default_rng(1).permutation(len(lengths)).tolist()
    random_batches = [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]
    assert padding(batches, lengths) < 0.25 * padding(random_batches, lengths)
    # the longest sample comes first: an out-of-memory error shows at the first step
    assert abs(lengths[order[0]]) == max(map(abs, lengths))


def test_every_process_computes_the_same_order_and_epochs_differ():
    lengths = corpus()
    a, b = (ModalityLengthGroupedSampler(lengths, 8, world_size=2, seed=3) for _ in range(2))
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == sorted(b)
    b.set_epoch(1)
    assert list(a) == list(b)


@pytest.mark.parametrize("world_size", [2, 3])
def test_under_accelerate_sharding_each_sample_goes_to_one_process_and_steps_match_in_length(world_size):
    lengths = corpus(997)
    batch_size = 4
    sampler = ModalityLengthGroupedSampler(lengths, batch_size, world_size=world_size, seed=0)
    shards = [
        list(
            BatchSamplerShard(
                BatchSampler(sampler, batch_size, drop_last=False),
                num_processes=world_size,
                process_index=rank,
                split_batches=False,
                even_batches=False,
            )
        )
        for rank in range(world_size)
    ]
    seen = [i for shard in shards for batch in shard for i in batch]
    assert sorted(seen) == list(range(len(lengths)))  # each sample exactly once, over all processes
    # step k runs batch k of every process at once: one modality, similar lengths, so no process waits long
    spreads, mixed = [], 0
    for k in range(min(map(len, shards))):
        step = [i for shard in shards for i in shard[k]]
        mixed += len({np.sign(lengths[i]) for i in step}) > 1
        sizes = [abs(lengths[i]) for i in step]
        spreads.append(max(sizes) / min(sizes))
    assert mixed <= 1  # where the two modalities' remainders meet, at the end
    assert np.median(spreads) < 1.1  # the long tail's few steps spread more, as its lengths do
