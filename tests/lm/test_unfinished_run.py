"""Issue 16.10: a model folder from an unfinished training run says so and how to finish it."""

from __future__ import annotations

import pytest
import torch

from curate.errors import ModelLoadError
from curate.lm.loading import load
from curate.train.checkpoints import save_checkpoint


@pytest.fixture
def run_folder(tmp_path, tiny_model_dir):
    """What `curate train sft --out RUN` leaves when it is killed after a checkpoint: no final model yet."""
    network = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(network.parameters())
    out = tmp_path / "runs" / "sft"
    save_checkpoint(out, network, optimizer, 40, {"steps": 200, "loss": "nll"})
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    for name in ("tokenizer.json", "tokenizer_config.json"):  # a run may have written its tokenizer already
        (out / name).write_bytes((tiny_model_dir / name).read_bytes())
    return out


def test_an_unfinished_run_folder_names_the_step_and_resume(run_folder):
    with pytest.raises(ModelLoadError) as error:
        load(str(run_folder))
    assert error.value.message == (f"{run_folder} is the folder of an unfinished training run (checkpoint at step 40 "
                                   "of 200); the model is written there when the run ends")
    assert f"curate train sft DATA --model BASE --out {run_folder} --resume" in error.value.hint


def test_a_grpo_run_and_the_checkpoint_folder_itself(tmp_path):
    network = torch.nn.Linear(2, 2)
    out = tmp_path / "grpo"
    save_checkpoint(out, network, torch.optim.AdamW(network.parameters()), 3, {"steps": 10, "num_generations": 8})
    with pytest.raises(ModelLoadError) as error:
        load(str(out))
    assert "step 3 of 10" in error.value.message and "curate train grpo" in error.value.hint
    with pytest.raises(ModelLoadError) as error:
        load(str(out / "checkpoint"))
    assert "is a training checkpoint (step 3), not a model folder" in error.value.message
    assert f"--out {out} --resume" in error.value.hint


def test_a_folder_without_config_lists_what_it_holds(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    with pytest.raises(ModelLoadError) as error:
        load(str(folder))
    assert "it has no config.json, so it is not a model folder (it holds: readme.txt)" in error.value.message
