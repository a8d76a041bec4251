"""`svit_dataset.local_tables`: a local table is never read from another folder's (or its own old) cache."""

from __future__ import annotations

import datasets
import pytest

from svit_dataset.local_tables import load_table_fresh
from svit_model.training.data import load_rows

README = (
    "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/*.parquet\n---\n"
)


def write_folder(folder, texts):
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    datasets.Dataset.from_dict({"text": texts}).to_parquet(str(folder / "data" / "train.parquet"))
    return folder


@pytest.mark.parametrize(
    "load",
    [
        lambda folder: load_table_fresh(folder, "default", split="train"),
        lambda folder: load_rows(str(folder), "default", "train"),  # what `svit train` reads its data with
    ],
    ids=["load_table_fresh", "training"],
)
def test_two_folders_of_the_same_name_and_a_rebuilt_one_each_read_their_own_rows(tmp_path, load):
    # plain `datasets.load_dataset` returns ["first build"] all three times
    first = write_folder(tmp_path / "a" / "svit", ["first build"])
    second = write_folder(tmp_path / "b" / "svit", ["second build", "two rows"])
    assert list(load(first)["text"]) == ["first build"]
    assert list(load(second)["text"]) == ["second build", "two rows"]
    datasets.Dataset.from_dict({"text": ["rebuilt"]}).to_parquet(str(first / "data" / "train.parquet"))
    assert list(load(first)["text"]) == ["rebuilt"]
