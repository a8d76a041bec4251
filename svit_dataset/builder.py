"""The SVIT dataset builder: released files (or generated ones in the same format) to canonical samples.

One `BuilderConfig` per subset and per recipe (svit_dataset.recipes); splits `train` and `test`
(held-out images). The Hub-layout export (`svit_dataset.hub_layout`) runs this builder with
`file_format="parquet"` for the task configs and ships the shards, so `load_dataset("svit", name)`
needs no loading script; it computes the recipe configs from those shards (recipes/shards.py). The
builder's own recipe path runs that same code on the train split written to a scratch folder.

    builder = SvitBuilder(config_name="referring_qa", data_dir="release/", dataset_name="svit")
    builder.download_and_prepare(out_dir, file_format="parquet")
    SvitBuilder(config_name="core_150k", data_dir="release/", image_data="image_data.json")
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import orjson

from hub_cards.dataset_card import SVIT_CITATION
from svit_dataset.quality import (
    DUPLICATE_SAMPLE,
    MALFORMED_RECORD,
    MISSING_IMAGE,
    SPEAKER_ROLES,
    QualityReport,
    check_turns,
)
from svit_dataset.recipes.select import MIX_665K, RECIPE_NAMES, RecipeParams
from svit_dataset.release import MalformedTally, ReleaseConversation, iter_conversations, release_file
from svit_dataset.schema import SAMPLE_FEATURES, TASKS, sample_id
from svit_dataset.vg import ImageIndex, in_seeded_test_split, read_test_ids

logger = logging.getLogger(__name__)

TRAIN, TEST = "train", "test"
SPLITS = (TRAIN, TEST)

# Subsets of the released data: config name -> tasks it holds. Names are final (Hub configs).
SUBSETS: dict[str, tuple[str, ...]] = {task: (task,) for task in TASKS} | {"full": TASKS}
# Recipe configs (paper 4.2, 5.2): drawn from the train split of all four tasks. Names are final.
RECIPE_CONFIGS: dict[str, tuple[str, ...]] = {name: TASKS for name in RECIPE_NAMES}
CONFIGS: dict[str, tuple[str, ...]] = SUBSETS | RECIPE_CONFIGS
DEFAULT_CONFIG = "full"


@dataclasses.dataclass
class SvitConfig(datasets.BuilderConfig):
    """Where the inputs are and how to split them; `tasks` is what the subset holds."""

    tasks: tuple[str, ...] = TASKS
    images_dir: str | None = None  # folder with VG_100K/ and VG_100K_2/: image bytes are embedded
    image_data: str | None = None  # VG image_data.json: sizes (and folders) without the images
    test_ids: str | None = None  # held-out image ids, one a line; else a seeded share of images
    test_fraction: float = 0.1
    split_seed: int = 0
    max_bad_fraction: float = 0.001  # share of malformed records per file that fails the build
    # Recipe configs only: the recipe parameters, and for mix_665k the two LLaVA files.
    recipe: RecipeParams = dataclasses.field(default_factory=RecipeParams)
    llava_mix: str | None = None  # llava_v1_5_mix665k.json
    llava_instruct: str | None = None  # llava_instruct_150k.json


def _content_digest(image_id: int, messages: list[dict]) -> bytes:
    return hashlib.blake2b(orjson.dumps([image_id, messages]), digest_size=16).digest()


class _StorageFormFeatures(datasets.Features):
    """SAMPLE_FEATURES for rows that `iter_samples` already yields in Arrow storage form.

    GeneratorBasedBuilder encodes every example through `Features.encode_example`, a recursive walk
    that cost more than parsing and checking the row together (bench/build.py). Our rows are plain
    strings, ints and `{"bytes", "path"}` image dicts, exactly what that walk would produce, so it is
    skipped; the writer still casts each batch to the schema.
    """

    def encode_example(self, example):
        return example


class SvitBuilder(datasets.GeneratorBasedBuilder):
    """Canonical SVIT samples (svit_dataset.schema) from files in the released format."""

    BUILDER_CONFIG_CLASS = SvitConfig
    BUILDER_CONFIGS = [SvitConfig(name=name, tasks=tasks) for name, tasks in CONFIGS.items()]
    DEFAULT_CONFIG_NAME = DEFAULT_CONFIG
    DEFAULT_WRITER_BATCH_SIZE = 1000

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dataset_name", "svit")
        super().__init__(*args, **kwargs)
        # (task, split) -> report; filled while generating, read by the export after prepare.
        self.reports: dict[tuple[str, str], QualityReport] = defaultdict(QualityReport)
        self._images: ImageIndex | None = None
        self._held_out: set[int] | None = None  # the --test-ids list, read once
        self.recipe_build = None  # recipe configs: the RecipeBuild (reports) made while generating

    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == MIX_665K:
            from svit_dataset.recipes.mix import MIX_FEATURES

            features = MIX_FEATURES
        else:
            features = SAMPLE_FEATURES
        return datasets.DatasetInfo(
            description="SVIT: 4.2M visual instruction samples over Visual Genome images, in four tasks.",
            features=_StorageFormFeatures(features),
            homepage="https://huggingface.co/datasets/BAAI/SVIT",
            license="cc-by-4.0",
            citation=SVIT_CITATION,
        )

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise datasets.exceptions.DatasetGenerationError(
                "SvitBuilder needs data_dir: the folder holding the released <task>.json files"
            )
        files = {task: str(release_file(self.config.data_dir, task)) for task in self.config.tasks}
        # A recipe's test split is the held-out split of its tasks; the mix has none (LLaVA's has none).
        splits = (TRAIN,) if self.config.name == MIX_665K else SPLITS
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"files": files, "split": split})
            for split in splits
        ]

    def _in_split(self, split: str):
        """image_id -> bool for `split`."""
        if self.config.test_ids:
            if self._held_out is None:
                self._held_out = read_test_ids(self.config.test_ids)
            is_test = self._held_out.__contains__
        else:
            cache: dict[int, bool] = {}

            def is_test(image_id: int) -> bool:
                if image_id not in cache:
                    cache[image_id] = in_seeded_test_split(
                        image_id, self.config.split_seed, self.config.test_fraction
                    )
                return cache[image_id]

        return is_test if split == TEST else (lambda image_id: not is_test(image_id))

    def _generate_examples(self, files: dict[str, str], split: str):
        if self._images is None:  # read image_data.json once, not once per split
            self._images = ImageIndex(self.config.images_dir, self.config.image_data)
        images = self._images
        if self.config.name in RECIPE_CONFIGS and split == TRAIN:
            yield from self._generate_recipe(files, images)
            return
        for row in iter_samples(
            files,
            images,
            self._in_split(split),
            self.reports,
            split,
            self.config.max_bad_fraction,
            embed_images=True,
            count_malformed=split == TRAIN,
        ):
            yield row["id"], row

    def _generate_recipe(self, files: dict[str, str], images: ImageIndex):
        """A recipe's train rows, made by the code `svit build` runs (recipes/shards.py): the train
        split of the four tasks goes to Parquet shards in a scratch folder (one read of the released
        files, images not embedded), `build_recipes` writes the recipe there, and its rows are
        yielded, the sample's image embedded (SVIT recipes) when the build has images."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from svit_dataset.recipes.shards import build_recipes, iter_batches

        name = self.config.name
        if name == MIX_665K and not (self.config.llava_mix and self.config.llava_instruct):
            raise datasets.exceptions.DatasetGenerationError(
                "mix_665k needs llava_mix= (llava_v1_5_mix665k.json) and llava_instruct= (llava_instruct_150k.json)"
            )
        in_train = self._in_split(TRAIN)
        schema = SAMPLE_FEATURES.arrow_schema
        with tempfile.TemporaryDirectory(prefix=f"svit-{name}-", dir=self._cache_dir_root) as scratch:
            root = Path(scratch)
            for task in TASKS:
                rows = iter_samples(
                    {task: files[task]},
                    images,
                    in_train,
                    self.reports,
                    TRAIN,
                    self.config.max_bad_fraction,
                    embed_images=False,
                )
                shard = root / "data" / task / f"{TRAIN}-00000-of-00001.parquet"
                shard.parent.mkdir(parents=True)
                with pq.ParquetWriter(shard, schema) as writer:
                    while batch := list(itertools.islice(rows, 2000)):
                        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            self.recipe_build = build_recipes(
                root,
                [name],
                self.config.recipe,
                llava_mix=self.config.llava_mix,
                llava_instruct=self.config.llava_instruct,
                max_bad_fraction=self.config.max_bad_fraction,
                threads=1,
                workers=0,
            )
            embed = name != MIX_665K and images.images_dir is not None
            for batch in iter_batches(sorted((root / "data" / name).glob(f"{TRAIN}-*.parquet"))):
                for row in batch.to_pylist():
                    if embed:
                        info = images.info(row["image_id"])
                        row["images"] = [{"bytes": images.read_bytes(info), "path": info.path}]
                    yield row["id"], row


def iter_samples(
    files: dict[str, str | Path],
    images: ImageIndex,
    wanted_image: Callable[[int], bool] | None,
    reports: dict[tuple[str, str], QualityReport],
    split: str,
    max_bad_fraction: float,
    embed_images: bool,
    count_malformed: bool = True,
) -> Iterator[dict]:
    """Canonical samples from released-format files (task -> path), through the quality gates.

    Drops are counted in `reports[(task, split)]`. A record without a usable image id belongs to no
    split: when one file is read once per split, only one of the reads may count it
    (`count_malformed`).
    """
    for task, path in files.items():
        path = Path(path)
        report = reports[(task, split)]
        tally = MalformedTally(path, max_bad_fraction)
        seen: set[bytes] = set()
        next_index: dict[int, int] = defaultdict(int)
        for item in iter_conversations(path, tally, wanted_image=wanted_image):
            if not isinstance(item, ReleaseConversation):
                if count_malformed:
                    report.drop(MALFORMED_RECORD, f"{path.name} record {item[0]}: {item[1]}")
                continue
            row = _to_sample(item, task, images, report, seen, next_index, embed_images)
            if row is not None:
                report.kept += 1
                yield row
        logger.info("%s/%s: kept %d, dropped %s", task, split, report.kept, dict(report.dropped))


def _to_sample(conv, task, images: ImageIndex, report, seen, next_index, embed_images) -> dict | None:
    reason = check_turns(conv.turns)
    if reason:
        report.drop(reason, f"{conv.where} (image {conv.image_id})")
        return None
    messages = [{"role": SPEAKER_ROLES[speaker], "content": text.strip()} for speaker, text in conv.turns]
    digest = _content_digest(conv.image_id, messages)
    if digest in seen:
        report.drop(DUPLICATE_SAMPLE, f"{conv.where} (image {conv.image_id})")
        return None
    info = images.info(conv.image_id)
    if info is None:
        report.drop(MISSING_IMAGE, f"{conv.where} (image {conv.image_id})")
        return None
    seen.add(digest)
    # Numbered per image and task; a repeated record of the same image continues the numbering.
    index = next_index[conv.image_id]
    next_index[conv.image_id] += 1
    embedded = (
        [{"bytes": images.read_bytes(info), "path": info.path}] if embed_images and images.images_dir else []
    )
    return {
        "id": sample_id(conv.image_id, task, index),
        "image_id": conv.image_id,
        "task": task,
        "messages": messages,
        "images": embedded,
        "image_path": info.path,
        "width": info.width,
        "height": info.height,
        "topic": conv.topic,
    }
