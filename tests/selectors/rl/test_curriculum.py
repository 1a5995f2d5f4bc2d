"""Curriculum stages from the ledger."""

from __future__ import annotations

import polars as pl
import pytest

from curate.catalog.ledger import Rollout, record_rollouts
from curate.catalog.versions import lineage_of
from curate.errors import BadUsage
from curate.selectors.rl.curriculum import build_curriculum, default_bands, parse_bands
from tests.rl_helpers import prompt_set


@pytest.fixture
def rated(ws, tmp_path):
    """Six prompts with pass rates 1, 7/8, 5/8, 3/8, 1/8, 0 and two with no rollouts."""
    version = prompt_set(ws, tmp_path, n=8)
    ids = version.scan().select("id").collect()["id"].to_list()
    rollouts = []
    for pid, wins in zip(ids[:6], [8, 7, 5, 3, 1, 0]):
        rollouts += [Rollout(pid, "m", "c", 1.0 if j < wins else 0.0, 2, run="r", step=0, sample_idx=j) for j in range(8)]
    record_rollouts(ws, rollouts)
    return version, ids


def _ids(version) -> list[str]:
    return version.scan().select("id").collect()["id"].to_list()


def test_easy_to_hard_cuts_equal_stages_in_pass_rate_order(ws, rated, tmp_path):
    version, ids = rated
    report = build_curriculum(ws, version.ref, 3, export_dir=tmp_path / "stages")
    assert [_ids(s.version) for s in report.stages] == [ids[0:2], ids[2:4], ids[4:6]]
    assert report.unseen == 2
    step = lineage_of(ws, report.stages[1].version)[0]
    assert step["op"] == "curriculum" and step["params"]["stage"] == 2 and step["params"]["model_key"] == "m"
    assert step["drop_counts"] == {"other_stages": 4, "no_rollouts": 2}
    exported = pl.read_parquet(report.stages[0].exported)
    assert {"prompt", "answer"} <= set(exported.columns) and exported.height == 2


def test_bands_keep_each_stage_within_its_pass_rate_band(ws, rated):
    version, ids = rated
    report = build_curriculum(ws, version.ref, 0, layout="bands", bands=parse_bands("0.8-1,0.3-0.7,0-0.2"))
    assert [_ids(s.version) for s in report.stages] == [[ids[0], ids[1]], [ids[2], ids[3]], [ids[4], ids[5]]]
    assert default_bands(2) == [(0.5, 1.0), (0.0, 0.5)]


def test_empty_stages_are_reported_not_written(ws, rated):
    version, _ = rated
    report = build_curriculum(ws, version.ref, 0, layout="bands", bands=parse_bands("0.9-1,0.45-0.55"))
    assert [s.index for s in report.stages] == [1] and report.empty_stages == [2]


def test_bad_bands_and_missing_rollouts_are_clear_errors(ws, rated, tmp_path):
    with pytest.raises(BadUsage, match="LO-HI"):
        parse_bands("0.5")
    with pytest.raises(BadUsage, match="LO <= HI"):
        parse_bands("0.9-0.1")
    fresh = prompt_set(ws, tmp_path, n=3, name="fresh", start=100)
    with pytest.raises(BadUsage, match="curate rollouts"):
        build_curriculum(ws, fresh.ref, 2)
