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
    picks = json.loads((out / "round-001" / "picks.json").read_text())
    assert {"0-0", "1-0"} <= set(picks["picks"]) and all(len(ids) == 3 for ids in picks["picks"].values())
    assert picks["observed"] == 1  # the state was updated after each of the two steps
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


def test_greso_moves_p_after_every_step_as_the_reference_does(ws, tmp_path, tiny_model_dir):
    """Replay the step-by-step shares the loop recorded through greso_update: the p values it reports
    are exactly 2 rounds x 2 steps of the reference's update from 0.5."""
    from curate.selectors.rl import difficulty_rules as rules

    from curate.selectors.rl.difficulty import CurriculumParams

    version = prompt_set(ws, tmp_path, n=16)
    out = tmp_path / "loop-greso"
    config = LoopConfig(rounds=2, strategy="greso", curriculum=CurriculumParams(decay=0.9), **TINY)
    report = run_loop(ws, version.ref, str(tiny_model_dir), out, config, reward="tests.rl_rewards:coin")
    # --param decay=0.9 reaches the ledger: replay every prompt's groups through MoPPS's update
    rollouts = read_rollouts(ws).sort("created_at", "run", "step", "sample_idx")
    expected = {}
    for (pid, _, _), group in rollouts.group_by("prompt_id", "run", "step", maintain_order=True):
        wins = float((group["reward"] >= 0.5).sum())
        alpha, beta = expected.get(pid, (1.0, 1.0))
        expected[pid] = (0.9 * alpha + 0.1 + wins, 0.9 * beta + 0.1 + (group.height - wins))
    stats = read_stats(ws)
    assert {r["prompt_id"]: r["alpha"] for r in stats.iter_rows(named=True)} == pytest.approx(
        {pid: ab[0] for pid, ab in expected.items()})
    assert {r["prompt_id"]: r["beta"] for r in stats.iter_rows(named=True)} == pytest.approx(
        {pid: ab[1] for pid, ab in expected.items()})
    assert any(alpha % 1 for alpha, _ in expected.values())  # the decay shows: not whole counts
    state = rules.GresoState(0.5, 0.5)
    for round_dir in ("round-001", "round-002"):
        shares = json.loads((out / round_dir / "picks.json").read_text())["shares"]
        assert len(shares) == 2  # one entry per GRPO step
        for easy, hard, _ in shares:
            state = rules.greso_update(state, easy, hard)
    assert (report.rows[-1]["p_easy"], report.rows[-1]["p_hard"]) == pytest.approx((state.p_easy, state.p_hard))


def test_adarft_does_not_take_the_first_prompts_of_the_file(ws, tmp_path, tiny_model_dir):
    """The first rows are trivially easy (difficulty 0); AdaRFT at target 0.5 ranks by the frozen difficulty
    column, so the loop's first pick holds none of them, and the target moves by the paper's rule."""
    import math

    from curate.catalog.ingest import IngestOptions, ingest
    from curate.selectors.rl.difficulty import CurriculumParams
    from tests.conftest import write_jsonl

    rows = [{"question": f"What is {i} plus 1?", "answer": f"#### {i + 1}",
             "difficulty": 0.0 if i < 8 else 0.4 + 0.01 * (i % 20)} for i in range(40)]
    version = ingest(ws, str(write_jsonl(tmp_path / "easy-first.jsonl", rows)), IngestOptions(name="easy")).version
    first_ids = version.scan().head(8).select("id").collect()["id"].to_list()
    out = tmp_path / "loop-adarft"
    config = LoopConfig(rounds=1, strategy="adarft", **{**TINY, "prompts_per_round": 4, "steps_per_round": 1})
    report = run_loop(ws, version.ref, str(tiny_model_dir), out, config, reward="tests.rl_rewards:coin")
    picked = json.loads((out / "round-001" / "picks.json").read_text())["picks"]["0-0"]
    assert len(picked) == 4 and not set(picked) & set(first_ids)
    successes = read_rollouts(ws)["reward"].to_numpy()
    expected = min(1.0, max(0.0, 0.5 + 0.5 * math.tanh(2.0 * (float(np.mean(successes >= 0.5)) - 0.5))))
    assert report.rows[-1]["adarft_target"] == pytest.approx(expected)
    assert CurriculumParams().adarft_target == 0.5
