"""`curate train sft` and `curate train grpo` from the command line (in process, as `main(argv)`)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tests.conftest import write_jsonl


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def curate(capsys, *args: str) -> tuple[int, str, str]:
    from curate.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def dataset(tmp_path, capsys):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 9)]
    source = write_jsonl(tmp_path / "pool.jsonl", rows)
    ws = tmp_path / "ws"
    code, _, err = curate(capsys, "ingest", str(source), "--out", "pool", "--workspace", str(ws))
    assert code == 0, err
    return ws


def test_train_sft_then_grpo_from_the_command_line(tiny_model_dir, dataset, tmp_path, capsys):
    out = tmp_path / "sft"
    code, stdout, err = curate(capsys, "train", "sft", "pool", "--model", str(tiny_model_dir), "--out", str(out),
                               "--steps", "3", "--lr", "1e-3", "--batch-tokens", "512", "--save-every", "2",
                               "--workspace", str(dataset))
    assert code == 0, err
    assert "sft on pool@v1" in stdout and "trained tokens" in stdout and "Traceback" not in stdout + err
    assert "step 3/3" in err and "loss" in err  # the console metrics line (every 10 steps and the last)
    assert (out / "model.safetensors").exists() and (out / "checkpoint" / "state.json").exists()

    config = tmp_path / "grpo.yaml"
    config.write_text("steps: 2\nprompts-per-step: 2\nnum-generations: 4\nmax-completion-length: 6\nlr: 0.001\n")
    grpo_out = tmp_path / "grpo"
    code, stdout, err = curate(capsys, "train", "grpo", "pool", "--model", str(out), "--reward", "math",
                               "--reward", "format", "--reward-weight", "1", "--reward-weight", "0.5",
                               "--out", str(grpo_out), "--config", str(config), "--workspace", str(dataset))
    assert code == 0, err
    assert "grpo on pool@v1" in stdout and "math, format" in stdout
    assert "step 2/2" in err and "reward" in err and "zero-std" in err
    metrics = [json.loads(line) for line in (grpo_out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and "rewards/math/mean" in metrics[0]

    from curate.catalog.ledger import read_rollouts
    from curate.catalog.workspace import Workspace

    assert read_rollouts(Workspace.open(dataset)).height == 2 * 2 * 4

    code, stdout, err = curate(capsys, "train", "sft", "pool", "--model", str(tiny_model_dir), "--out", str(out),
                               "--steps", "4", "--lr", "1e-3", "--batch-tokens", "512", "--resume", "--quiet",
                               "--workspace", str(dataset))
    assert code == 0, err
    assert stdout.strip() == str(out)


def test_user_errors_exit_2_without_a_traceback(tiny_model_dir, dataset, tmp_path, capsys):
    code, _, err = curate(capsys, "train", "sft", "pool", "--model", str(tiny_model_dir), "--loss", "mse",
                          "--out", str(tmp_path / "x"), "--workspace", str(dataset))
    assert code == 2 and "unknown loss 'mse'" in err and "Traceback" not in err
    code, _, err = curate(capsys, "train", "grpo", "pool", "--model", str(tiny_model_dir), "--reward", "nonsense",
                          "--out", str(tmp_path / "y"), "--workspace", str(dataset))
    assert code == 2 and "unknown reward 'nonsense'" in err and "hint:" in err
    code, _, err = curate(capsys, "train", "sft", "pool", "--model", str(tiny_model_dir), "--resume",
                          "--out", str(tmp_path / "z"), "--workspace", str(dataset))
    assert code == 2 and "holds no checkpoint" in err
    code, _, err = curate(capsys, "train", "sft", "missing", "--model", str(tiny_model_dir),
                          "--workspace", str(dataset))
    assert code == 1 and "no dataset named 'missing'" in err


def test_grpo_rollout_backend_errors(tiny_model_dir, dataset, tmp_path, capsys, monkeypatch):
    code, _, err = curate(capsys, "train", "grpo", "pool", "--model", str(tiny_model_dir), "--reward", "math",
                          "--backend", "sglang", "--out", str(tmp_path / "b"), "--workspace", str(dataset))
    assert code == 2 and "unknown rollout backend 'sglang'" in err and "--backend hf" in err
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on any machine without the extra
    code, _, err = curate(capsys, "train", "grpo", "pool", "--model", str(tiny_model_dir), "--reward", "math",
                          "--backend", "vllm", "--out", str(tmp_path / "v"), "--workspace", str(dataset))
    assert code != 0 and "needs the vllm package" in err and "curate[vllm]" in err and "Traceback" not in err


def test_no_packing_flag_trains_on_padded_batches(tiny_model_dir, dataset, tmp_path, capsys):
    out = tmp_path / "padded"
    code, stdout, err = curate(capsys, "train", "sft", "pool", "--model", str(tiny_model_dir), "--out", str(out),
                               "--steps", "2", "--batch-tokens", "256", "--no-packing", "--quiet",
                               "--workspace", str(dataset))
    assert code == 0, err
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["config"]["packing"] is False
