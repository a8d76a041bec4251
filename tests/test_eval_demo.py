"""`make demo`'s evaluation part: the shipped MME-layout sample and a referring-QA test split, scored end to end."""

from __future__ import annotations

from svit_cli.jobs.main_job_eval import SAMPLE_MME, run_eval_part
from svit_model.evaluation.mme import SHIPPED_SAMPLE_SUBTASKS, read_mme
from tests.test_eval_readers import write_svit_test_split
from tests.train_fixtures import one_thread
from tools.eval_samples import mme_rows, write_mme_layout


def test_the_shipped_mme_sample_is_what_the_maker_writes(tmp_path):
    made = read_mme(write_mme_layout(tmp_path / "mme", mme_rows()), SHIPPED_SAMPLE_SUBTASKS)
    shipped = read_mme(SAMPLE_MME, SHIPPED_SAMPLE_SUBTASKS)
    assert SHIPPED_SAMPLE_SUBTASKS == "existence,count,color,commonsense_reasoning"
    assert [(i.id, i.question, i.reference) for i in shipped] == [
        (i.id, i.question, i.reference) for i in made
    ]
    assert all(
        list(a.image().getdata()) == list(b.image().getdata()) for a, b in zip(shipped, made, strict=True)
    )


def test_eval_demo_scores_the_tiny_checkpoint(tiny_grounded_checkpoint, tmp_path):
    printed = []
    with one_thread():
        out = run_eval_part(
            tiny_grounded_checkpoint,
            write_svit_test_split(tmp_path / "svit"),
            tmp_path / "eval",
            printed.append,
        )
    assert set(out["mme"]["metrics"]["subtasks"]) == {"existence", "count", "color", "commonsense_reasoning"}
    assert out["grounding"]["metrics"]["entities"] == 5 and out["grounding"]["benchmark"] == "svit-referring"
    assert (tmp_path / "eval" / "mme" / "mme_results" / "existence.txt").is_file()
    assert any(line.startswith("mme of ") for line in printed) and any(
        line.startswith("svit-referring of ") for line in printed
    )
