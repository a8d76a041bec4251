"""`SvitBuilder` (the `datasets` builder) and `svit build` (the session's `built_sample`) give the same rows,
split by split, for a subset and a recipe of the bundled sample (images embedded, upstream's held-out list)."""

from __future__ import annotations

import datasets
import pytest

from svit_dataset import bundled
from svit_dataset.hub_build.datasets_builder import SvitBuilder

CONFIGS = ("referring_qa", "core_150k")


@pytest.mark.parametrize("config", CONFIGS)
def test_builder_rows_are_the_rows_of_svit_build(built_sample, config, tmp_path):
    builder = SvitBuilder(
        config_name=config,
        data_dir=str(bundled.RELEASE_DIR),
        cache_dir=str(tmp_path / "cache"),
        images_dir=str(bundled.IMAGES_DIR),
        test_ids=str(bundled.TEST_IDS),
    )
    builder.download_and_prepare()
    ours = builder.as_dataset()
    theirs = datasets.load_dataset(
        str(built_sample), config, cache_dir=str(tmp_path / "loaded")
    )  # svit build's
    assert set(ours) == set(theirs) == {"train", "test"}
    for split in ("train", "test"):
        a, b = ours[split].data.table, theirs[split].data.table
        assert a.num_rows == b.num_rows > 0, (config, split)
        assert a.column_names == b.column_names, (config, split)
        assert a.to_pylist() == b.to_pylist(), (config, split)  # every column, image bytes included
    assert all(len(images) == 1 for images in ours["train"].data.table.column("images").to_pylist())
    assert builder.report["configs"][config] == {s: ours[s].num_rows for s in ("train", "test")}
    assert not list((tmp_path / "cache").rglob("build_report.json"))  # the scratch build is gone
