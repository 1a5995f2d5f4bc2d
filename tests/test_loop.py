"""The closed loop: rounds, metrics, ledger bookkeeping, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.catalog.ledger import read_rollouts, read_stats
from curate.errors import BadUsage
from curate.loop import LoopConfig, run_loop, split_heldout
from curate.train.metrics import read_metrics
from tests.rl_helpers import prompt_set

TINY = dict(prompts_per_round=3, steps_per_round=2, num_generations=3, max_completion_length=6, eval_size=3,
            eval_fraction=0.25, dtype="float32")


def _ledger_is_exact(ws, out: Path, k: int) -> int:
    """Every rollout the GRPO runs sampled is in the ledger once, and the statistics count exactly them."""
    rollouts, stats = read_rollouts(ws), read_stats(ws)
    assert rollouts["rollout_id"].n_unique() == rollouts.height
    assert int(stats["attempts"].sum()) == rollouts.filter(rollouts["reward"].is_not_null()).height
    sampled = 0
    for grpo in sorted(out.glob("round-*/grpo")):
        sampled += sum(m["groups/sampled"] * k for m in read_metrics(grpo))
    assert rollouts.height == sampled
    return sampled


def test_split_heldout_is_disjoint_and_deterministic(ws, tmp_path):
    ids = prompt_set(ws, tmp_path, n=40).scan().select("id").collect()["id"]
    train, heldout = split_heldout(ids, 0.2, 5, seed=3)
    assert len(heldout) == 5 and not set(train) & set(heldout) and len(train) + 5 == 40
    again = split_heldout(ids, 0.2, 5, seed=3)
    assert heldout.tolist() == again[1].tolist()


def test_split_heldout_holds_out_the_smallest_hash_when_none_falls_under_the_fraction():
    from curate.selectors.random_sample import hash_uniform

    ids = pl.Series("id", [f"prompt-{i}" for i in range(16)])
    u = hash_uniform(ids, 0)
    fraction = float(u.min()) / 2  # no hash falls under it
    train, heldout = split_heldout(ids, fraction, 5, seed=0)
    assert heldout.tolist() == [int(np.argmin(u))] and len(train) == 15
    with pytest.raises(BadUsage, match="cannot split 1 prompts"):
        split_heldout(ids.head(1), 0.5, 5, seed=0)


@pytest.mark.parametrize("strategy", ["thompson", "greso"])
def test_loop_runs_rounds_and_keeps_the_ledger_exact(ws, tmp_path, tiny_model_dir, strategy):
    version = prompt_set(ws, tmp_path, n=16)
    out = tmp_path / f"loop-{strategy}"
    report = run_loop(ws, version.ref, str(tiny_model_dir), out, LoopConfig(rounds=2, strategy=strategy, **TINY),
                      reward="tests.rl_rewards:coin")
    assert [r["round"] for r in report.rows] == [1, 2]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2]
    for row in report.rows:
        assert row["rollouts"] > 0 and 0.0 <= row["eval_reward"] <= 1.0
    assert report.rows[-1]["rollouts_total"] == _ledger_is_exact(ws, out, 3)
    assert (out / "round-002" / "grpo" / "config.json").exists()
    selection = json.loads((out / "round-001" / "selection.json").read_text())
    assert selection["strategy"] == strategy and len(selection["ids"]) >= 3
    with pytest.raises(BadUsage, match="--resume"):
        run_loop(ws, version.ref, str(tiny_model_dir), out, LoopConfig(rounds=2, strategy=strategy, **TINY))


def test_loop_resumes_after_sigkill_with_no_duplicated_or_lost_rollouts(ws, tmp_path, tiny_model_dir):
    version = prompt_set(ws, tmp_path, n=16)
    out = tmp_path / "loop"
    args = [sys.executable, "-m", "curate.cli.app", "loop", version.ref, "--model", str(tiny_model_dir),
            "--rounds", "3", "--strategy", "band", "--out", str(out), "--reward", "tests.rl_rewards:coin",
            "--prompts-per-round", "3", "--steps-per-round", "2", "-G", "3", "--max-completion-length", "6",
            "--eval-size", "3", "--workspace", str(ws.root), "--quiet"]
    env = {**os.environ, "CURATE_LOCK_TIMEOUT": "120"}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill it in the middle of round 2's GRPO run
        if list((out / "round-002" / "grpo").glob("checkpoint")) or process.poll() is not None:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    state = json.loads((out / "loop.json").read_text())
    assert len(state["rounds"]) == 1  # killed during round 2
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((out / "loop.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [1, 2, 3]
    assert state["rollouts"] == _ledger_is_exact(ws, out, 3)
