"""`SvitBuilder`: the SVIT dataset as a `datasets` builder, one `BuilderConfig` per subset and per recipe.

It runs the build of `svit build` (engine.build_hub_folder) for its one config into a scratch folder under the
builder's cache, then reads the config's Parquet shards (splits `train` and `test`, as the built README declares
them), so both give the same rows (tests/test_builder_equals_build.py).

    builder = SvitBuilder(config_name="referring_qa", data_dir="release/", images_dir="VG/")
    builder.download_and_prepare()
    train = builder.as_dataset("train")
    SvitBuilder(config_name="core_150k", data_dir="release/", image_data="image_data.json")
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.builder import Key

from svit_dataset.facts import SVIT_CITATION, SVIT_DATA_HOMEPAGE, SVIT_DATA_LICENSE
from svit_dataset.hub_build.configs import CONFIGS, DEFAULT_CONFIG
from svit_dataset.hub_build.engine import build_hub_folder
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.recipes.mix import MIX_FEATURES
from svit_dataset.recipes.select import MIX_665K, RecipeParams
from svit_dataset.release import MAX_BAD_FRACTION
from svit_dataset.schema import SAMPLE_FEATURES
from svit_dataset.vg import SPLIT_SEED, TEST_FRACTION


@dataclasses.dataclass
class SvitConfig(datasets.BuilderConfig):
    """Where the inputs are and how to split them: the `BuildOptions` of the build (`build_options`)."""

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


class SvitBuilder(datasets.ArrowBasedBuilder):
    """Canonical SVIT samples (svit_dataset.schema) from files in the released format, built as `svit build`
    builds them."""

    BUILDER_CONFIG_CLASS = SvitConfig
    BUILDER_CONFIGS = [SvitConfig(name=name) for name in CONFIGS]
    DEFAULT_CONFIG_NAME = DEFAULT_CONFIG

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dataset_name", "svit")
        super().__init__(*args, **kwargs)
        self.report: dict | None = None  # the build's report (build_report.json), once prepared
        self._scratch: tempfile.TemporaryDirectory | None = None  # the build, while its shards are read

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="SVIT: 4.2M visual instruction samples over Visual Genome images, in four tasks.",
            features=MIX_FEATURES if self.config.name == MIX_665K else SAMPLE_FEATURES,
            homepage=SVIT_DATA_HOMEPAGE,
            license=SVIT_DATA_LICENSE,
            citation=SVIT_CITATION,
        )

    def build_options(self, output_dir: str | Path) -> BuildOptions:
        """The `svit build` options of this config, written to `output_dir`."""
        config = self.config
        return BuildOptions(
            input_dir=config.data_dir,
            output_dir=output_dir,
            configs=[config.name],
            images_dir=config.images_dir,
            image_data=config.image_data,
            test_ids=config.test_ids,
            test_fraction=config.test_fraction,
            split_seed=config.split_seed,
            max_bad_fraction=config.max_bad_fraction,
            llava_mix=config.llava_mix,
            llava_instruct=config.llava_instruct,
        )

    def _split_generators(self, dl_manager):
        name = self.config.name
        if not self.config.data_dir:
            raise datasets.exceptions.DatasetGenerationError(
                "SvitBuilder needs data_dir: the folder holding the released <task>.json files"
            )
        if name == MIX_665K and not (self.config.llava_mix and self.config.llava_instruct):
            raise datasets.exceptions.DatasetGenerationError(
                "mix_665k needs llava_mix= (llava_v1_5_mix665k.json) and llava_instruct= (llava_instruct_150k.json)"
            )
        os.makedirs(self._cache_dir_root, exist_ok=True)
        self._scratch = tempfile.TemporaryDirectory(prefix=f"svit-{name}-", dir=self._cache_dir_root)
        built = build_hub_folder(self.build_options(Path(self._scratch.name) / "svit"), self.config.recipe)
        self.report = built.report
        (entry,) = [e for e in built.facts.entries if e.name == name]
        return [
            datasets.SplitGenerator(
                name=split,
                # in the README's order: `full` and a recipe's `test` list the task folders in turn
                gen_kwargs={"files": [str(f) for p in patterns for f in sorted(built.folder.glob(p))]},
            )
            for split, patterns in entry.data_files.items()
        ]

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        finally:  # the build's shards are in the cache's Arrow files now
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None

    def _generate_tables(self, files: list[str]):
        for file_index, path in enumerate(files):
            for batch_index, batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=1000)):
                yield Key(file_index, batch_index), pa.Table.from_batches([batch])
