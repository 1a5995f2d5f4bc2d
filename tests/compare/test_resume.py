"""A comparison killed with SIGKILL after its first cells resumes: finished cells are never recomputed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from curate.catalog.versions import list_versions
from curate.catalog.workspace import Workspace, query_frame
from tests.compare.helpers import pool_and_eval


def _done(ws: Workspace) -> list[dict]:
    with ws.catalog() as con:
        return query_frame(con, "SELECT cell_key, strategy, seed, selection, finished_at, model_path FROM comparisons "
                                "WHERE status = 'done' ORDER BY cell_key").to_dicts()


@pytest.mark.slow
def test_sigkill_then_rerun_runs_only_the_missing_cells(tmp_path, tiny_model_dir):
    ws = Workspace.open(tmp_path / "ws")
    pool_and_eval(ws, tmp_path)
    command = [sys.executable, "-m", "curate.cli.app", "compare", "pool", "--strategy", "length", "--budget", "8",
               "--seeds", "2", "--steps", "10", "--model", str(tiny_model_dir), "--scorer-model", str(tiny_model_dir),
               "--eval", "held", "--lr", "1e-3", "--warmup", "1", "--batch-tokens", "1024", "--max-completion-length", "4",
               "--device", "cpu", "--workspace", str(ws.root), "--json"]
    total = 1 + 2 * 2  # the base, then random and length at seeds 0 and 1
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    try:
        while len(_done(ws)) < 2:  # the base and the first trained cell
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first cells did not finish in time"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    finished = _done(ws)
    assert 2 <= len(finished) < total  # killed part way
    weights = {r["cell_key"]: os.stat(os.path.join(r["model_path"], "model.safetensors")).st_mtime_ns
               for r in finished if r["strategy"] != "(base)"}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = json.loads(rerun.stdout)
    assert (result["computed"], result["reused"]) == (total - len(finished), len(finished))
    after = _done(ws)
    assert len(after) == total and {(r["strategy"], r["seed"]) for r in after} == {
        ("(base)", -1), ("random", 0), ("length", 0), ("random", 1), ("length", 1)}
    unchanged = {r["cell_key"]: r for r in after}
    for row in finished:  # same row, same finish time, same selection, same trained weights
        assert unchanged[row["cell_key"]] == row
    for key, mtime in weights.items():
        assert os.stat(os.path.join(unchanged[key]["model_path"], "model.safetensors")).st_mtime_ns == mtime
    selections = [v for v in list_versions(ws) if v.name.startswith("pool-compare-")]
    # one version per trained cell; the cell the kill interrupted may have committed one more
    assert total - 1 <= len(selections) <= total
    assert [a["n"] for a in result["arms"]] == [2, 2]
