"""`curate select` and `curate score` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import run_curate_process
from tests.selectors.sft_helpers import word_problems, write_rows


def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    return run_curate_process(*args, code=check)


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    run("ingest", str(write_rows(tmp_path / "pool.jsonl", word_problems(30))), "--out", "pool", "-w", str(ws))
    return ws


def test_select_and_score_from_the_command_line(workspace, tiny_model_dir):
    w = ["-w", str(workspace)]
    out = run("select", "pool", "--strategy", "length,fisher", "--budget", "20%", "--model", str(tiny_model_dir),
              "--param", "length.budget=12", "--param", "fisher.dim=8", *w).stdout
    for text in ("pool@v1 -> pool-length-fisher@v1", "below_budget 18", "below_budget 6", "kept", "6 of 30"):
        assert text in out, out
    shown = json.loads(run("show", "pool-length-fisher", "--json", *w).stdout)
    assert [s["strategy"] for s in shown["lineage"]] == ["length", "fisher"]
    assert shown["lineage"][1]["params"]["dim"] == 8
    quiet = run("select", "pool", "-s", "random", "-b", "3", "--quiet", "--out", "r", *w).stdout.strip()
    assert quiet == "r@v1"
    scored = run("score", "pool", "--scorer", "length", *w).stdout
    assert "length scores of pool@v1" in scored and "scorer key" in scored


def test_user_errors_exit_with_a_message_and_no_traceback(workspace, tmp_path):
    w = ["-w", str(workspace)]
    unknown = run("select", "pool", "--strategy", "fishr", "--budget", "5", *w, check=2)
    assert "unknown strategy 'fishr'" in unknown.stderr and "fisher" in unknown.stderr
    too_many = run("select", "pool", "--strategy", "random", "--budget", "31", *w, check=2)
    assert "larger than the pool" in too_many.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    bad_model = run("select", "pool", "--strategy", "ifd", "--budget", "5", "--model", str(broken), *w, check=1)
    assert "could not load model" in bad_model.stderr
    missing = run("select", "nope", "--strategy", "random", "--budget", "5", *w, check=1)
    assert "no dataset named 'nope'" in missing.stderr
    for result in (unknown, too_many, bad_model, missing):
        assert "Traceback" not in result.stderr + result.stdout
