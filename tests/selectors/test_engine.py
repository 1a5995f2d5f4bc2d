"""Engines: Ray gives the local engine's scores and selections; scores are committed in chunks,
so a run killed part-way keeps them and its rerun scores only the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from curate.catalog.scores import load_scores
from curate.catalog.versions import resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage
from curate.selectors import features
from curate.selectors.engine import LocalEngine, RayEngine, make_engine
from curate.selectors.sft.perplexity import PerplexitySelector
from curate.selectors.pipeline import run_score, run_select
from curate.selectors.pool import Pool
from tests.conftest import REPO
from tests.selectors.sft_helpers import ingest_rows, word_problems


def _scores(ws, report) -> dict[str, float]:
    frame = load_scores(ws, report.source.ref, report.scorer_key)
    return dict(zip(frame["id"].to_list(), frame["value"].to_list()))


def _counting_jobs(monkeypatch) -> list[int]:
    """Rows each model job is asked for (every engine goes through features.run_job)."""
    asked: list[int] = []
    real = features.run_job

    def counted(pool, job, mask, what):
        asked.append(int(mask.sum()))
        return real(pool, job, mask, what)

    monkeypatch.setattr(features, "run_job", counted)
    return asked


def test_engine_options_are_checked():
    assert isinstance(make_engine("local"), LocalEngine)
    with pytest.raises(BadUsage, match="unknown engine"):
        make_engine("spark")
    with pytest.raises(BadUsage, match="needs --engine ray"):
        make_engine("local", workers=2)
    with pytest.raises(BadUsage, match="needs --engine ray"):
        make_engine("local", address="auto")
    with pytest.raises(BadUsage, match="at least 1"):
        make_engine("ray", workers=0)


def test_ray_scores_equal_local_scores_on_2000_rows(tmp_path, tiny_model_dir, ray_local):
    rows = word_problems(2000, seed=7)
    found = {}
    for name, engine in (("local", LocalEngine()), ("ray", RayEngine(workers=2))):
        ws = Workspace.open(tmp_path / name)
        ingest_rows(ws, tmp_path, rows, name="pool")
        report = run_score(ws, "pool", "perplexity", model=str(tiny_model_dir), engine=engine)
        assert report.scored == 2000 and report.cached == 0
        found[name] = _scores(ws, report)
    assert found["ray"].keys() == found["local"].keys() and len(found["ray"]) == 2000
    ids = sorted(found["local"])
    local = np.array([found["local"][i] for i in ids])
    ray = np.array([found["ray"][i] for i in ids])
    assert np.all(np.isfinite(local)) and np.max(np.abs(ray - local) / local) < 1e-6


def test_a_selection_with_ray_equals_the_local_one(tmp_path, tiny_model_dir, ray_local):
    rows = word_problems(120, seed=11)
    kept = {}
    for name in ("local", "ray"):  # FisherSFT: factors computed by the actors, the greedy log-det on the driver
        ws = Workspace.open(tmp_path / name)
        ingest_rows(ws, tmp_path, rows, name="pool")
        report = run_select(ws, "pool", "fisher", budget=20, model=str(tiny_model_dir),
                            params={"fisher.dim": "16"}, seed=3,
                            engine=make_engine(name, workers=2 if name == "ray" else 1))
        kept[name] = report.version.scan().collect()["id"].to_list()
    assert len(kept["local"]) == 20 and kept["ray"] == kept["local"]


def test_ray_commits_scores_in_chunks_and_a_rerun_scores_only_the_rest(tmp_path, ws, tiny_model_dir, ray_local,
                                                                       monkeypatch):
    ingest_rows(ws, tmp_path, word_problems(160, seed=5), name="pool")
    from curate.catalog import scores

    real, commits = scores.store_scores, []

    def failing(*args, **kwargs):
        commits.append(real(*args, **kwargs))
        if len(commits) == 2:
            raise KeyboardInterrupt  # stopped after two chunks
        return commits[-1]

    monkeypatch.setattr(scores, "store_scores", failing)
    with pytest.raises(KeyboardInterrupt):
        run_score(ws, "pool", "perplexity", model=str(tiny_model_dir), engine=RayEngine(workers=1), commit_rows=32)
    monkeypatch.setattr(scores, "store_scores", real)
    kept = sum(commits)
    assert 64 <= kept < 160
    asked = _counting_jobs(monkeypatch)  # the rerun (here in this process: the chunks are the catalog's either way)
    report = run_score(ws, "pool", "perplexity", model=str(tiny_model_dir))
    assert report.cached == kept and asked == [160 - kept] and report.scored == 160


KILLED_RUN = """
import os, signal, sys
from curate.catalog import scores
from curate.catalog.workspace import Workspace
from curate.selectors.pipeline import run_score

real, commits = scores.store_scores, []

def store(*args, **kwargs):
    commits.append(real(*args, **kwargs))
    if len(commits) == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 after the third chunk is committed
    return commits[-1]

scores.store_scores = store
run_score(Workspace.open(sys.argv[1]), "pool", "perplexity", model=sys.argv[2], commit_rows=32)
"""


def test_kill_9_mid_run_then_rerun_scores_only_what_is_missing(tmp_path, ws, tiny_model_dir, monkeypatch):
    ingest_rows(ws, tmp_path, word_problems(200, seed=9), name="pool")
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(ws.root), str(tiny_model_dir)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    asked = _counting_jobs(monkeypatch)
    report = run_score(ws, "pool", "perplexity", model=str(tiny_model_dir))
    assert report.cached == 96 and asked == [104] and report.scored == 200
    # the resumed scores are the ones an uninterrupted run gives
    fresh = PerplexitySelector().fit(Pool.from_version(resolve(ws, "pool"), None, model=str(tiny_model_dir)))
    stored = _scores(ws, report)
    expected = dict(zip(fresh.pool_.ids.to_list(), fresh.scores_))
    assert stored.keys() == expected.keys()
    assert max(abs(stored[i] - expected[i]) / expected[i] for i in stored) < 1e-6
