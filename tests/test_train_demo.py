"""`make demo`'s training part ends in a checkpoint that reloads and answers."""

from __future__ import annotations

from svit_cli.jobs.main_job_training import run_training_part
from tests.train_fixtures import write_dataset


def test_training_demo_ends_in_a_reloadable_checkpoint(tmp_path):
    data = write_dataset(tmp_path / "data")
    printed = []
    out = run_training_part(
        data, tmp_path / "train", dataset_config="default", steps=4, print_fn=printed.append
    )
    result = out["result"]
    assert result.global_step == 4 and (result.output_dir / "model.safetensors").is_file()
    assert result.output_dir == tmp_path / "train" / "tiny-stage2-full"
    assert out["question"] == "Where is the red ball?" and isinstance(out["answer"], str)
    assert printed[0].startswith("Trained the tiny SVIT-LLaVA: 4 steps,")
