"""Paper 3.4 statistics: on a synthetic corpus with the paper's counts and mean lengths, a build then
`svit stats` gives those numbers back, and the figures are written."""

from __future__ import annotations

import json
from collections import Counter

import datasets
import pytest

from svit_cli.main import main
from svit_dataset.errors import SvitInputError
from svit_dataset.hub_build.engine import build_hub_dataset
from svit_dataset.schema import DETAIL_DESCRIPTION, TASKS
from svit_dataset.stats import PAPER, compute_stats, first_words_distribution, sunburst_rings
from tools.synthetic import CorpusSpec, write_corpus


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory):
    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("stats")
    spec = CorpusSpec(scale=0.01)
    summary = write_corpus(spec, root / "corpus", workers=1)
    build_hub_dataset(
        root / "corpus",
        root / "svit",
        list(TASKS),
        image_data=root / "corpus" / "image_data.json",
        num_proc=1,
    )
    return spec, summary, root


def test_stats_of_the_synthetic_corpus_are_the_papers(synthetic_build, capsys):
    spec, summary, root = synthetic_build
    assert main(["stats", str(root / "svit")]) == 0
    assert "conversation" in capsys.readouterr().out
    stats = json.loads((root / "svit" / "stats" / "tasks.json").read_text())
    for task in TASKS:
        got = stats["tasks"][task]
        assert got["qas"] == spec.qa_count(task) == round(PAPER[task]["qas"] * 0.01), task
        assert got["mean_answer_words"] == pytest.approx(
            summary["tasks"][task]["mean_answer_words"], abs=1e-3
        )
        assert round(got["mean_answer_words"], 1) == PAPER[task]["mean_answer_words"], task
        if task != DETAIL_DESCRIPTION:
            assert round(got["mean_question_words"], 1) == PAPER[task]["mean_question_words"], task
    assert round(stats["mean_description_words"], 1) == 361.5
    # the synthetic questions start with "What" about 40% of the time among open questions
    first = dict(stats["tasks"]["conversation"]["first_words"]["first_word"])
    assert first["what"] == max(first.values())
    for name in ("tasks_first_words.png", "tasks_lengths.png"):
        assert (root / "svit" / "stats" / name).stat().st_size > 10_000


def test_stats_of_one_config_group_rows_by_task(synthetic_build, tmp_path):
    _, _, root = synthetic_build
    stats = compute_stats(root / "svit", config="referring_qa")
    assert list(stats["tasks"]) == ["referring_qa"]
    with pytest.raises(SvitInputError, match="no config 'core_150k' in README.md"):
        compute_stats(root / "svit", config="core_150k")
    with pytest.raises(SvitInputError, match="has no 'validation' split"):
        compute_stats(root / "svit", config="referring_qa", split="validation")
    with pytest.raises(SvitInputError, match="no README.md"):
        compute_stats(tmp_path)


def test_first_words_levels_and_rings_nest():
    trigrams = Counter(
        {"what is the": 6, "what color is": 2, "how many people": 1, "how does the": 3, "is there a": 5}
    )
    levels = first_words_distribution(trigrams, top=3)
    assert levels["first_word"][0] == ["what", 0.4706] and levels["how_many_share_of_how"] == 0.25
    inner, middle, outer = sunburst_rings(trigrams, first=2, second=1, third=1)
    assert sum(n for _, n in inner) == sum(n for _, n in middle) == sum(n for _, n in outer) == 17
    assert [label for label, _ in inner] == ["what", "is", ""]
