"""The math reward from worker threads (math-verify's signal timeouts work only in the main thread), and its
grader named in the metrics and the ledger, never a silent fallback (issue 15, section 5)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from curate.catalog.ledger import Rollout, read_rollouts, record_rollouts
from curate.catalog.workspace import Workspace
from curate.train import answers
from curate.train.rewards import CheckedReward, get_reward

# Non-numeric references: these go to math-verify (numbers are compared exactly without it).
CASES = [("\\frac{\\pi}{2}", "so the angle is \\boxed{\\pi/2}", 1.0), ("x^2 + 1", "The answer is \\boxed{1 + x^2}", 1.0),
         ("\\sqrt{2}", "\\boxed{\\sqrt{3}}", 0.0)]


def test_math_reward_in_worker_threads_gives_the_main_threads_verdicts():
    pytest.importorskip("math_verify")
    reward = get_reward("math")
    refs, completions, expected = zip(*CASES)
    main = reward(prompts=["p"] * 3, completions=list(completions), answer=list(refs))
    assert main == list(expected)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: reward(prompts=["p"], completions=[completions[i]], answer=[refs[i]])[0],
                                 [0, 1, 2] * 4))
    assert threaded == list(expected) * 4


def test_the_grader_is_named_and_the_fallback_too(monkeypatch):
    pytest.importorskip("math_verify")
    assert CheckedReward(get_reward("math")).grader == "math-verify"
    assert CheckedReward(get_reward("exact")).grader is None
    monkeypatch.setitem(sys.modules, "math_verify", None)  # as on a machine without it
    checked = CheckedReward(get_reward("math"), name="math")
    assert checked.grader == answers.FALLBACK_GRADER == "string-match"
    assert checked(["p"], ["The answer is x^2+1"], answer=["x^2 + 1"]) == [1.0]  # normalised strings still agree
    assert checked(["p"], ["The answer is 1+x^2"], answer=["x^2 + 1"]) == [0.0]  # what math-verify would accept


def test_the_ledger_keeps_the_grader_and_old_catalogs_gain_the_column(tmp_path):
    root = tmp_path / "ws"
    Workspace.open(root)
    with duckdb.connect(str(root / "catalog.duckdb")) as con:  # a catalog written before the column existed
        con.execute("ALTER TABLE rollouts DROP COLUMN grader")
    ws = Workspace.open(root)
    record_rollouts(ws, [Rollout("p1", "m#math", "x", 1.0, 3, grader="string-match"),
                         Rollout("p1", "m#math", "y", 0.0, 3, sample_idx=1)])
    assert read_rollouts(ws).sort("sample_idx")["grader"].to_list() == ["string-match", None]
