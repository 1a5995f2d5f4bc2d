"""The `mixing` strategy: domain weights and a mixed dataset of a given size."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.catalog.ledger import Rollout, record_rollouts
from curate.errors import BadUsage
from curate.selectors.mix.mixing import parse_weights
from curate.selectors.pipeline import run_select
from curate.train.proxy import ProxyConfig
from tests.rl_helpers import prompt_set

TINY_PROXY = ProxyConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, steps=3, batch_tokens=256, seq_len=64)


def _domains(report) -> dict[str, int]:
    frame = report.version.scan().group_by("domain").agg(pl.len()).collect()
    return dict(zip(frame["domain"].to_list(), frame["len"].to_list()))


def test_static_weights_set_the_share_of_each_domain(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=40)  # 20 even, 20 odd
    report = run_select(ws, version.ref, "mixing", budget=10, params={"method": "static", "weights": "even=0.8,odd=0.2"})
    assert _domains(report) == {"even": 8, "odd": 2}
    stats = report.steps[0].stats
    assert stats["weights"] == {"even": 0.8, "odd": 0.2} and stats["domain_source"] == "column"


def test_static_weights_that_do_not_fit_are_refused_naming_the_largest_size_that_fits(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=40)  # 20 even, 20 odd
    with pytest.raises(BadUsage) as info:
        run_select(ws, version.ref, "mixing", budget=30, params={"method": "static", "weights": "even=0.9,odd=0.1"})
    assert "even has 20 rows but its weight 0.9 of 30 needs 27" in info.value.message
    assert "22 rows" in info.value.hint and "--redistribute" in info.value.hint
    report = run_select(ws, version.ref, "mixing", budget=22, params={"method": "static", "weights": "even=0.9,odd=0.1"})
    assert _domains(report) == {"even": 20, "odd": 2}


def test_with_redistribute_a_domain_that_runs_out_gives_its_share_to_the_others(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=40)
    report = run_select(ws, version.ref, "mixing", budget=30,
                        params={"method": "static", "weights": "even=0.9,odd=0.1", "redistribute": "true"})
    assert _domains(report) == {"even": 20, "odd": 10}
    assert report.steps[0].stats["shares"] == {"even": pytest.approx(2 / 3, abs=1e-6), "odd": pytest.approx(1 / 3, abs=1e-6)}


def test_a_domain_of_weight_zero_gets_no_rows_even_when_the_others_run_short(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=40)
    report = run_select(ws, version.ref, "mixing", budget=10, params={"method": "static", "weights": "even=1,odd=0"})
    assert _domains(report) == {"even": 10}
    with pytest.raises(BadUsage, match="positive weight hold 20 rows, fewer than the 30"):
        run_select(ws, version.ref, "mixing", budget=30,
                   params={"method": "static", "weights": "even=1,odd=0", "redistribute": "true"})


def test_natural_weights_follow_the_data(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=40)
    report = run_select(ws, version.ref, "mixing", budget=20, params={"method": "natural"})
    assert _domains(report) == {"even": 10, "odd": 10}


def test_progress_weights_favour_the_domain_whose_reward_rises(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=8)
    frame = version.scan().select("id", "domain").collect()
    rollouts = []
    for step in range(6):
        for pid, domain in frame.iter_rows():
            reward = min(1.0, step / 5) if domain == "even" else 0.5  # even improves, odd is flat
            rollouts.append(Rollout(pid, "m", "c", reward, 2, run="r", step=step))
    record_rollouts(ws, rollouts)
    report = run_select(ws, version.ref, "mixing", budget=4, params={"method": "progress", "temperature": "0.01"})
    weights = report.steps[0].stats["weights"]
    assert weights["even"] > 0.9 > weights["odd"]
    assert report.steps[0].stats["reward_gain_per_rollout"]["even"] > 0


def test_errors_name_the_fix(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=10)
    with pytest.raises(BadUsage, match="unknown domains: math"):
        run_select(ws, version.ref, "mixing", budget=5, params={"method": "static", "weights": "math=1"})
    with pytest.raises(BadUsage, match="needs a budget"):
        run_select(ws, version.ref, "mixing", params={"method": "natural"})
    with pytest.raises(BadUsage, match="DOMAIN=WEIGHT"):
        parse_weights("math")
    with pytest.raises(BadUsage, match="static mixing needs weights"):
        run_select(ws, version.ref, "mixing", budget=5, params={"method": "static"})
    with pytest.raises(BadUsage, match="only read by the static method"):
        run_select(ws, version.ref, "mixing", budget=5, params={"method": "natural", "weights": "even=1"})
    with pytest.raises(BadUsage, match="every weight is 0"):
        run_select(ws, version.ref, "mixing", budget=5, params={"method": "static", "weights": "even=0,odd=0"})


@pytest.mark.parametrize(("text", "message"), [
    ("math=-0.5", "'math=-0.5': a weight is a finite number >= 0"), ("math=nan", "finite number"),
    ("math=inf", "finite number"), ("math=x", "'x' is not a number"), ("=1", "not DOMAIN=WEIGHT"),
    ("math=1,math=2", "'math' is given twice"),
])
def test_parse_weights_names_the_bad_item(text, message):
    with pytest.raises(BadUsage, match=message):
        parse_weights(text)
    assert parse_weights(" math = 0.6 , code=0.4,") == {"math": 0.6, "code": 0.4}


def test_clustering_without_scikit_learn_names_the_extra(monkeypatch):
    import sys

    from curate.errors import BadUsage
    from curate.selectors.mix.domains import cluster

    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    with pytest.raises(BadUsage, match="scikit-learn") as info:
        cluster(np.zeros((4, 2), dtype=np.float32), 2)
    assert "curate[mix]" in info.value.hint
