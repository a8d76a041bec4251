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
import itertools
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

import datasets

from svit_dataset.facts import SVIT_CITATION, SVIT_DATA_HOMEPAGE, SVIT_DATA_LICENSE
from svit_dataset.quality import QualityReport
from svit_dataset.reader import iter_samples
from svit_dataset.recipes.select import MIX_665K, RECIPE_NAMES, RecipeParams
from svit_dataset.release import MAX_BAD_FRACTION, release_file
from svit_dataset.schema import SAMPLE_FEATURES, SPLITS, TASKS, TRAIN
from svit_dataset.vg import SPLIT_SEED, TEST_FRACTION, ImageIndex, read_test_ids, split_of_images

logger = logging.getLogger(__name__)

# Subsets of the released data: config name -> tasks it holds. Names are final (Hub configs).
SUBSETS: dict[str, tuple[str, ...]] = {task: (task,) for task in TASKS} | {"full": TASKS}
# Recipe configs (paper 4.2, 5.2): drawn from the train split of all four tasks. Names are final.
RECIPE_CONFIGS: dict[str, tuple[str, ...]] = {name: TASKS for name in RECIPE_NAMES}
CONFIGS: dict[str, tuple[str, ...]] = SUBSETS | RECIPE_CONFIGS
DEFAULT_CONFIG = "full"
# What each config holds, in words: the dataset card's table and `dataset_info` say it.
CONFIG_DESCRIPTIONS: dict[str, str] = {
    "conversation": "multi-turn conversations about the image",
    "complex_reasoning": "questions that need reasoning over the scene",
    "referring_qa": "QAs whose objects are grounded with boxes",
    "detail_description": "one long description per image",
    "full": "all four tasks",
    "svit_80k": "SVIT-80K: 20K random samples per task from SVIT-train",
    "svit_80k_d": "SVIT-80K-D (diversity): the more informative half of SVIT-train, then 20K per task",
    "svit_80k_b": "SVIT-80K-B (balance): SVIT-80K with random 'Yes' QAs dropped to Y:N = 8, refilled to 80,000",
    "core_150k": "SVIT-core-150K: diversity, then balance, 157,712 samples",
    "mix_665k": "SVIT-mix-665K: LLaVA-v1.5-mix-665K with LLaVA-Instruct-150K replaced by core_150k",
}


@dataclasses.dataclass
class SvitConfig(datasets.BuilderConfig):
    """Where the inputs are and how to split them; `tasks` is what the subset holds."""

    tasks: tuple[str, ...] = TASKS
    images_dir: str | None = None  # folder with VG_100K/ and VG_100K_2/: image bytes are embedded
    image_data: str | None = None  # VG image_data.json: sizes (and folders) without the images
    test_ids: str | None = None  # held-out image ids, one a line; else a seeded share of images
    test_fraction: float = TEST_FRACTION
    split_seed: int = SPLIT_SEED
    max_bad_fraction: float = MAX_BAD_FRACTION  # share of malformed records per file that fails the build
    # Recipe configs only: the recipe parameters, and for mix_665k the two LLaVA files.
    recipe: RecipeParams = dataclasses.field(default_factory=RecipeParams)
    llava_mix: str | None = None  # llava_v1_5_mix665k.json
    llava_instruct: str | None = None  # llava_instruct_150k.json


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
            homepage=SVIT_DATA_HOMEPAGE,
            license=SVIT_DATA_LICENSE,
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

    def _split_of(self):
        """image_id -> split, the held-out list read once."""
        if self.config.test_ids and self._held_out is None:
            self._held_out = read_test_ids(self.config.test_ids)
        return split_of_images(self._held_out, self.config.test_fraction, self.config.split_seed)

    def _generate_examples(self, files: dict[str, str], split: str):
        if self._images is None:  # read image_data.json once, not once per split
            self._images = ImageIndex(self.config.images_dir, self.config.image_data)
        images = self._images
        if self.config.name in RECIPE_CONFIGS and split == TRAIN:
            yield from self._generate_recipe(files, images)
            return
        # datasets generates one split at a time, so each file is read once per split. The train pass
        # counts every split's drops; the other passes count into a scratch report.
        reports = self.reports if split == TRAIN else defaultdict(QualityReport)
        rows = iter_samples(
            files,
            images,
            reports,
            split_of=self._split_of(),
            max_bad_fraction=self.config.max_bad_fraction,
            embed_images=True,
        )
        for row_split, row in rows:
            if row_split == split:
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
        split_of = self._split_of()
        schema = SAMPLE_FEATURES.arrow_schema
        with tempfile.TemporaryDirectory(prefix=f"svit-{name}-", dir=self._cache_dir_root) as scratch:
            root = Path(scratch)
            for task in TASKS:
                rows = (
                    row
                    for split, row in iter_samples(
                        {task: files[task]},
                        images,
                        self.reports,
                        split_of=split_of,
                        max_bad_fraction=self.config.max_bad_fraction,
                    )
                    if split == TRAIN
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
