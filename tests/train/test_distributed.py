"""Training on several processes (torchrun, gloo on CPU): the same step as one process, rank 0 writes, resume.

Each test here starts real processes (`curate ... --nproc 2` runs `torch.distributed.run`), so
they are few and tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from curate.train.distributed import Dist, strip_nproc, torchrun_command
from tests.conftest import REPO, write_jsonl

ROWS = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 13)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CURATE_STRICT_HINTS": "1"}


def _curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", *args], env=ENV, capture_output=True, text=True,
                          timeout=600, cwd=REPO)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _max_difference(a: Path, b: Path) -> float:
    left, right = _weights(a), _weights(b)
    assert sorted(left) == sorted(right)
    return max(float((left[k] - right[k]).abs().max()) for k in left)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    done = _curate("ingest", str(write_jsonl(folder / "pool.jsonl", ROWS)), "--name", "pool", "-w", str(folder / "ws"))
    assert done.returncode == 0, done.stderr
    return folder / "ws"


def test_ranks_share_work_and_the_command_line_loses_only_nproc():
    shares = [list(Dist(rank, 3).share(8)) for rank in range(3)]
    assert shares == [[0, 1], [2, 3, 4], [5, 6, 7]]  # contiguous, disjoint, covering, in order
    assert [i for i in range(7) if Dist(1, 3).owns(i)] == [1, 4]
    argv = ["train", "sft", "pool", "--nproc", "2", "--model", "m", "--nproc=4", "--steps", "3"]
    assert strip_nproc(argv) == ["train", "sft", "pool", "--model", "m", "--steps", "3"]
    command = torchrun_command(2, argv)
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert command[6:] == ["curate", "train", "sft", "pool", "--model", "m", "--steps", "3"]


SFT = ("--steps", "3", "--lr", "1e-2", "--batch-tokens", "64", "--save-every", "2", "-q")


@pytest.fixture(scope="module")
def one_process(pool, tiny_model_dir, tmp_path_factory) -> Path:
    """The reference: one process, two micro-batches per step."""
    out = tmp_path_factory.mktemp("one") / "run"
    done = _curate("train", "sft", "pool", "--model", str(tiny_model_dir), "--out", str(out), "--grad-accum", "2",
                   "-w", str(pool), *SFT)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("fsdp", [False, True], ids=["replicated", "fsdp"])
def test_two_processes_take_the_step_of_one_process_with_twice_the_accumulation(pool, tiny_model_dir, one_process,
                                                                               tmp_path, fsdp):
    out = tmp_path / "two"
    done = _curate("train", "sft", "pool", "--model", str(tiny_model_dir), "--out", str(out), "--grad-accum", "1",
                   "--nproc", "2", *(["--fsdp"] if fsdp else []), "-w", str(pool), *SFT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)  # rank 0 alone prints
    assert _max_difference(out, one_process) < 1e-5
    assert _max_difference(out, tiny_model_dir) > 1e-3  # it did train
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one writer: each step logged once
    reference = [json.loads(line) for line in (one_process / "metrics.jsonl").read_text().splitlines()]
    mine = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["loss"] for m in mine] == pytest.approx([r["loss"] for r in reference], abs=1e-5)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and state["config"]["world_size"] == 2
    assert (out / "checkpoint" / ("dcp" if fsdp else "model.pt")).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint")]


def test_stories260k_on_two_processes_matches_one_process(pool, stories_model, tmp_path):
    outs = {}
    for name, extra in (("one", ("--grad-accum", "2")), ("two", ("--grad-accum", "1", "--nproc", "2"))):
        outs[name] = tmp_path / name
        done = _curate("train", "sft", "pool", "--model", str(stories_model), "--out", str(outs[name]), *extra,
                       "-w", str(pool), "--steps", "2", "--lr", "1e-3", "--batch-tokens", "128", "--template",
                       "plain", "-q")
        assert done.returncode == 0, done.stderr
    assert _max_difference(outs["one"], outs["two"]) < 1e-5


def test_kill_one_rank_then_resume_on_one_process_gives_the_uninterrupted_run(pool, tiny_model_dir, tmp_path, capsys):
    # A constant learning rate makes the schedule independent of --steps, so the killed run can be long
    # (room to kill it mid-run) and the resumed and straight runs short.
    args = ("--model", str(tiny_model_dir), "-w", str(pool), "--lr", "1e-3", "--warmup", "0", "--lr-schedule",
            "constant", "--batch-tokens", "64", "-q")
    out = tmp_path / "killed"
    launcher = subprocess.Popen([sys.executable, "-m", "curate", "train", "sft", "pool", *args, "--out", str(out),
                                 "--steps", "1000", "--save-every", "1", "--grad-accum", "1", "--nproc", "2"],
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and launcher.poll() is None:
        if state.exists() and json.loads(state.read_text())["step"] >= 2:
            break
        time.sleep(0.02)
    ranks = [p for p in psutil.Process(launcher.pid).children(recursive=True) if p.environ().get("RANK") == "1"]
    assert ranks and launcher.poll() is None, "the run ended before a rank could be killed"
    ranks[0].kill()  # SIGKILL
    assert launcher.wait(timeout=120) != 0
    assert not (out / "model.safetensors").exists()
    killed_at = json.loads(state.read_text())["step"]
    assert 2 <= killed_at < 8, killed_at

    from curate.cli.app import main

    with pytest.raises(SystemExit) as wrong:  # in this process: the check runs before any training
        main(["train", "sft", "pool", *args, "--out", str(out), "--steps", "8", "--resume"])
    assert wrong.value.code != 0 and "--grad-accum 2" in capsys.readouterr().err  # 2 micro-batches a step
    resumed = _curate("train", "sft", "pool", *args, "--out", str(out), "--steps", "8", "--resume", "--grad-accum", "2")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    done = _curate("train", "sft", "pool", *args, "--out", str(straight), "--steps", "8", "--grad-accum", "2")
    assert done.returncode == 0, done.stderr
    assert _max_difference(out, straight) < 1e-5
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo"])
def test_grpo_ranks_own_disjoint_chunks_whose_gradients_add_up_to_the_whole_batch(tiny_model_dir, loss_type):
    from curate.lm.loading import load
    from curate.train.grpo import GRPOConfig
    from curate.train.grpo_batch import backward_batch
    from curate.train.rollouts import Episode

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    generator = torch.Generator().manual_seed(0)
    groups = []
    for p in range(3):  # 3 prompts x 4 completions of ragged lengths, mixed advantages
        prompt = torch.randint(3, 200, (5 + p,), generator=generator).tolist()
        group = []
        for j in range(4):
            completion = torch.randint(3, 200, (3 + (p + j) % 4,), generator=generator).tolist()
            episode = Episode({"id": str(p)}, p, j, prompt, completion, "", truncated=False)
            episode.advantage = float(j - 1.5)
            group.append(episode)
        groups.append(group)
    config = GRPOConfig(batch_tokens=24, loss_type=loss_type, max_completion_length=8)  # several chunks per group

    def gradients(dist: Dist) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        lm.model.zero_grad(set_to_none=True)
        sums = backward_batch(lm.model, groups, config, 0, torch.device("cpu"), dist=dist)
        return {n: p.grad.clone() for n, p in lm.model.named_parameters() if p.grad is not None}, sums

    whole, whole_sums = gradients(Dist())
    (first, first_sums), (second, second_sums) = gradients(Dist(0, 2)), gradients(Dist(1, 2))
    assert first_sums["chunks_trained"] >= 1 and second_sums["chunks_trained"] >= 1  # both ranks work
    assert first_sums["chunks_trained"] + second_sums["chunks_trained"] == whole_sums["chunks_trained"]
    assert first_sums["loss"] + second_sums["loss"] == pytest.approx(whole_sums["loss"], abs=1e-6)
    for name, grad in whole.items():
        torch.testing.assert_close(first.get(name, 0) + second.get(name, 0), grad, atol=1e-6, rtol=1e-5)


def test_two_process_grpo_writes_each_rollout_to_the_ledger_once(pool, tiny_model_dir, tmp_path):
    from curate.catalog.ledger import read_rollouts
    from curate.catalog.workspace import Workspace

    out = tmp_path / "grpo"
    done = _curate("train", "grpo", "pool", "--model", str(tiny_model_dir), "--reward", "tests.rl_rewards:coin",
                   "--out", str(out), "--steps", "2", "--prompts-per-step", "3", "-G", "4",
                   "--max-completion-length", "6", "--lr", "1e-2", "--nproc", "2", "-w", str(pool), "-q")
    assert done.returncode == 0, done.stderr
    rollouts = read_rollouts(Workspace.open(pool), run=json.loads((out / "checkpoint" / "state.json").read_text())
                             ["state"]["run"])
    assert rollouts.height == 2 * 3 * 4  # steps x prompts x G, no rollout twice
    assert rollouts.select(["step", "prompt_id", "sample_idx"]).n_unique() == rollouts.height
    for (step, prompt), group in rollouts.group_by(["step", "prompt_id"]):
        draws = sorted(group["sample_idx"].to_list())  # one whole group per prompt: draw * G + 0..G-1
        assert len(draws) == 4 and draws == list(range(draws[0], draws[0] + 4)) and draws[0] % 4 == 0
    assert rollouts.group_by("step").len()["len"].to_list() == [12, 12]
    assert _max_difference(out, tiny_model_dir) > 0  # the coin reward varies within groups: the weights moved
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_bad_distributed_options_are_clear_errors(pool, tiny_model_dir, tmp_path, capsys):
    from curate.cli.app import main

    base = ["--model", str(tiny_model_dir), "-w", str(pool), "--steps", "1"]
    cases = [(["train", "sft", "pool", *base, "--out", str(tmp_path / "a"), "--fsdp"], "this run has one"),
             (["train", "grpo", "pool", *base, "--out", str(tmp_path / "b"), "--reward", "math", "--fsdp",
               "--nproc", "2"], "--fsdp shards SFT only"),
             (["train", "sft", "pool", *base, "--out", str(tmp_path / "c"), "--nproc", "0"], "--nproc must be >= 1")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code != 0 and message in err and "Traceback" not in err
        assert not (Path(argv[argv.index("--out") + 1]) / "checkpoint").exists()  # nothing was trained
