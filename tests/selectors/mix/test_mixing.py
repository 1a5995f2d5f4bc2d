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
    report = run_select(ws, version.ref, "mixing", budget=4, params={"method": "progress"})  # the defaults
    weights = report.steps[0].stats["weights"]
    # 24 rollouts a domain, under 2 windows of 64: later 12 minus earlier 12. even: steps 3-5 give
    # 0.6, 0.8, 1.0 (mean 0.8), steps 0-2 give 0, 0.2, 0.4 (mean 0.2): progress 0.6; odd: 0.
    assert report.steps[0].stats["progress_per_window"] == pytest.approx({"even": 0.6, "odd": 0.0})
    soft_even = np.exp(6.0) / (np.exp(6.0) + 1.0)
    assert weights["even"] == pytest.approx(0.9 * soft_even + 0.05, abs=1e-6)
    assert weights["odd"] == pytest.approx(0.9 * (1 - soft_even) + 0.05, abs=1e-6)


def test_progress_weights_are_not_uniform_at_real_ledger_sizes(ws, tmp_path):
    """2,000 rollouts a domain: a slope per rollout is ~1e-4 and came out uniform; progress per window
    of 64 is in reward units. even: reward 1 when step % 10 < 3 (0.3), then in its last 32 steps
    (64 rollouts) when the step is even (0.5); odd: 0.5 throughout. Hand-computed at the defaults."""
    version = prompt_set(ws, tmp_path, n=4, name="big")
    frame = version.scan().select("id", "domain").collect()
    rollouts = [Rollout(pid, "big", "c", float(step % 2 == 0 if step >= 968 else step % 10 < 3) if domain == "even"
                        else 0.5, 2, run="r", step=step)
                for step in range(1000) for pid, domain in frame.iter_rows()]
    record_rollouts(ws, rollouts)
    report = run_select(ws, version.ref, "mixing", budget=4, params={"method": "progress", "model_key": "big"})
    # previous window, steps 936-967: 9 of 32 steps have step % 10 < 3, so 0.28125; last window 0.5
    assert report.steps[0].stats["progress_per_window"] == pytest.approx({"even": 0.5 - 9 / 32, "odd": 0.0})
    soft_even = np.exp((0.5 - 9 / 32) / 0.1) / (np.exp((0.5 - 9 / 32) / 0.1) + 1.0)
    weights = report.steps[0].stats["weights"]
    assert weights["even"] == pytest.approx(0.9 * soft_even + 0.05, abs=1e-6)  # 0.85, not 0.5
    assert weights["odd"] == pytest.approx(0.9 * (1 - soft_even) + 0.05, abs=1e-6)


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
