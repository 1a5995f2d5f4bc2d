"""The kill campaign, CI's share: every command of issue 15 SIGKILLed 3 times at random moments (fixed
seed), then rerun or resumed; nothing lost, nothing doubled, the outcome of an unkilled run
(tests/reliability/kills.py; benchmarks/kill_campaign.py runs 20 a command)."""

from __future__ import annotations

import pytest

from .kills import Campaign, scenarios

KILLS = 3


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    campaign = Campaign(root, root / "model", scale=0.1)
    campaign.prepare()
    yield campaign
    campaign.zygote.close()


@pytest.mark.parametrize("command", [s.name for s in scenarios(0.1)])
def test_killed_then_rerun_loses_and_doubles_nothing(campaign, command):
    results = campaign.run(KILLS, seed=15, only=[command])
    assert len(results) == KILLS
    broken = [(r.delay, r.problems) for r in results if r.problems]
    assert not broken, broken
