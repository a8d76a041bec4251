"""The one-pass build writes exactly the rows and quality counts of the build before it (which read each
file once per split): on the bundled sample (images embedded) and on a small synthetic corpus.

tests/golden/build_before.json was recorded by tests/golden/build_digest.py at commit f9a0d78.
"""

import json
from pathlib import Path

import pytest

from svit_dataset import bundled
from svit_dataset.hub_build.engine import build_hub_dataset
from tests.golden.build_digest import record
from tools.synthetic import CorpusSpec, write_corpus

BEFORE = json.loads((Path(__file__).parent / "golden" / "build_before.json").read_text())


@pytest.mark.slow
def test_rows_and_quality_counts_are_those_of_the_build_before():
    now = record(build_hub_dataset, bundled, write_corpus, CorpusSpec)
    for corpus in ("bundled", "synthetic"):
        assert now[corpus]["configs"] == BEFORE[corpus]["configs"], corpus
        assert now[corpus]["quality"] == BEFORE[corpus]["quality"], corpus
