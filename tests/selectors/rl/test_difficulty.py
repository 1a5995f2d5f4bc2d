"""The `difficulty` strategy over a ledger filled by hand."""

from __future__ import annotations

import pytest

from curate.catalog.ledger import Rollout, record_rollouts
from curate.catalog.versions import lineage_of
from curate.errors import BadInput, BadUsage
from curate.selectors.pipeline import run_select
from tests.rl_helpers import prompt_set


def _fill(ws, ids, wins_per_prompt, k=8, groups=1, model_key="m"):
    rollouts = []
    for pid, wins in zip(ids, wins_per_prompt):
        for step in range(groups):
            rollouts += [Rollout(pid, model_key, "c", 1.0 if j < wins else 0.0, 3, run="t", step=step, sample_idx=j)
                         for j in range(k)]
    record_rollouts(ws, rollouts)


@pytest.fixture
def ledgered(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=4)
    ids = version.scan().select("id").collect()["id"].to_list()
    # prompt 0: always right; 1: half; 2: never; 3: unseen
    _fill(ws, ids[:3], [8, 4, 0], groups=25)
    return version, ids


def _kept(report) -> list[str]:
    return report.version.scan().select("id").collect()["id"].to_list()


def test_band_keeps_mid_pass_rates_and_unseen_prompts(ws, ledgered):
    version, ids = ledgered
    report = run_select(ws, version.ref, "difficulty", params={"mode": "band", "lo": 0.1, "hi": 0.9})
    assert sorted(_kept(report)) == sorted([ids[1], ids[3]])
    step = lineage_of(ws, report.version)[0]
    assert step["strategy"] == "difficulty" and step["drop_counts"] == {"outside_band": 2}
    unseen_excluded = run_select(ws, version.ref, "difficulty", out="x",
                                 params={"mode": "band", "keep_unseen": "false"})
    assert _kept(unseen_excluded) == [ids[1]]


def test_thompson_keeps_the_prompt_nearest_the_target(ws, ledgered):
    version, ids = ledgered
    report = run_select(ws, version.ref, "difficulty", budget=1, params={"mode": "thompson", "target": 0.5})
    assert _kept(report) == [ids[1]]  # 100/200 wins: its posterior sits at 0.5


def test_adarft_keeps_difficulty_nearest_the_target(ws, ledgered):
    version, ids = ledgered
    hardest = run_select(ws, version.ref, "difficulty", budget=1,
                         params={"mode": "adarft", "adarft_target": 1.0, "reference": "m"})
    easiest = run_select(ws, version.ref, "difficulty", budget=1, out="e",
                         params={"mode": "adarft", "adarft_target": 0.0, "reference": "m"})
    assert _kept(hardest) == [ids[2]] and _kept(easiest) == [ids[0]]
    # the unseen prompt has no difficulty: it is left out of the ranking, and counted
    everything = run_select(ws, version.ref, "difficulty", out="all",
                            params={"mode": "adarft", "adarft_target": 0.5, "reference": "m"}, budget=3)
    assert sorted(_kept(everything)) == sorted(ids[:3])
    assert lineage_of(ws, everything.version)[0]["drop_counts"] == {"no_difficulty": 1}


def test_adarft_needs_a_difficulty_estimated_beforehand(ws, ledgered):
    version, _ = ledgered
    with pytest.raises(BadUsage, match="difficulty estimated beforehand"):
        run_select(ws, version.ref, "difficulty", budget=1, params={"mode": "adarft"})


def test_greso_skips_long_zero_variance_streaks(ws, ledgered):
    version, ids = ledgered
    report = run_select(ws, version.ref, "difficulty",
                        params={"mode": "greso", "p_easy": "0.05", "p_hard": "0.05", "floor": "0.0"})
    # prompts 0 and 2 had 25 all-equal groups in a row: keep probability 0.05**25
    assert sorted(_kept(report)) == sorted([ids[1], ids[3]])
    assert lineage_of(ws, report.version)[0]["drop_counts"] == {"greso_skip": 2}


def test_model_key_must_be_named_when_the_ledger_has_several(ws, ledgered):
    version, ids = ledgered
    _fill(ws, ids[:1], [3], model_key="other")
    with pytest.raises(BadUsage, match="2 model keys"):
        run_select(ws, version.ref, "difficulty", params={"mode": "band"})
    report = run_select(ws, version.ref, "difficulty", params={"mode": "band", "model_key": "other", "lo": 0.3})
    assert ids[0] in _kept(report)  # 3/8 under "other"


def test_no_ledger_rows_is_a_clear_error(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=3, name="fresh", start=100)
    with pytest.raises(BadUsage, match="curate rollouts"):
        run_select(ws, version.ref, "difficulty", params={"mode": "band"})


def test_budget_larger_than_what_qualifies(ws, ledgered):
    version, _ = ledgered
    with pytest.raises(BadUsage, match="only 2 prompts qualify"):
        run_select(ws, version.ref, "difficulty", budget=3, params={"mode": "band"})


def test_rollout_variance_drops_prompts_whose_rewards_never_vary(ws, ledgered):
    version, ids = ledgered
    report = run_select(ws, version.ref, "rollout-variance")
    assert sorted(_kept(report)) == sorted([ids[1], ids[3]])
    assert lineage_of(ws, report.version)[0]["drop_counts"] == {"all_right": 1, "all_wrong": 1}
    # prompt 1's latest group has reward std 0.5: a threshold of 0.6 drops it too, and nothing is left
    with pytest.raises(BadInput, match="kept no rows"):
        run_select(ws, version.ref, "rollout-variance", out="strict", params={"threshold": "0.6", "keep_unseen": "false"})
    loose = run_select(ws, version.ref, "rollout-variance", out="loose", params={"threshold": "0.4", "keep_unseen": "false"})
    assert _kept(loose) == [ids[1]]


def test_a_policy_key_reads_its_one_reward_and_asks_when_there_are_several(ws, tmp_path):
    version = prompt_set(ws, tmp_path, n=3, name="keyed", start=50)
    ids = version.scan().select("id").collect()["id"].to_list()
    _fill(ws, ids, [8, 8, 8], model_key="sft#math")
    report = run_select(ws, version.ref, "difficulty", params={"mode": "band", "model_key": "sft", "hi": 1.0})
    assert report.steps[-1].stats["model_key"] == "sft#math"
    _fill(ws, ids, [0, 0, 0], model_key="sft#format")
    with pytest.raises(BadUsage, match="2 reward specifications: sft#format, sft#math"):
        run_select(ws, version.ref, "difficulty", params={"mode": "band", "model_key": "sft"})
    report = run_select(ws, version.ref, "difficulty", params={"mode": "band", "model_key": "sft#format", "lo": 0.0,
                                                               "hi": 0.5})
    assert sorted(_kept(report)) == sorted(ids)


def test_rollout_variance_judges_the_latest_group_not_the_pooled_history(ws, tmp_path):
    """Prompt a: all wrong at step 0, all right at step 1: its pooled variance is 0.25, but its latest
    group is flat, so DAPO's test (on the fresh group) drops it. Prompt b: flat then mixed: kept."""
    version = prompt_set(ws, tmp_path, n=2, name="moving", start=80)
    a, b = version.scan().select("id").collect()["id"].to_list()
    rollouts = [Rollout(a, "p#math", "c", 0.0, 3, run="t", step=0, sample_idx=j) for j in range(4)]
    rollouts += [Rollout(a, "p#math", "c", 1.0, 3, run="t", step=1, sample_idx=j) for j in range(4)]
    rollouts += [Rollout(b, "p#math", "c", 1.0, 3, run="t", step=0, sample_idx=j) for j in range(4)]
    rollouts += [Rollout(b, "p#math", "c", float(j % 2), 3, run="t", step=1, sample_idx=j) for j in range(4)]
    record_rollouts(ws, rollouts)
    report = run_select(ws, version.ref, "rollout-variance", out="latest")
    assert _kept(report) == [b]
    assert lineage_of(ws, report.version)[0]["drop_counts"] == {"all_right": 1}
    assert report.steps[-1].stats["filter_on"] == "outcome"  # math is verifiable


def test_rollout_variance_filters_on_the_outcome_or_on_the_shaped_reward(ws, tmp_path):
    """Shaped rewards that differ while the outcome is all wrong: `outcome` drops the prompt, `reward` keeps it."""
    version = prompt_set(ws, tmp_path, n=1, name="shaped", start=90)
    (a,) = version.scan().select("id").collect()["id"].to_list()
    key = "p#0.5*format+math;outcome=math"
    record_rollouts(ws, [Rollout(a, key, "c", 0.5 * (j % 2), 3, run="t", step=0, sample_idx=j, success=False)
                         for j in range(4)])
    with pytest.raises(BadInput, match="kept no rows"):
        run_select(ws, version.ref, "rollout-variance", out="o", params={"keep_unseen": "false"})
    kept = run_select(ws, version.ref, "rollout-variance", out="r", params={"filter_on": "reward"})
    assert _kept(kept) == [a]


def test_the_filter_defaults_follow_the_reward_specification():
    from curate.selectors.rl.rollout_variance import default_filter_on

    assert default_filter_on("p#math") == "outcome"
    assert default_filter_on("p#0.5*format+math;outcome=math") == "outcome"
    assert default_filter_on("p#mod:shaped") == "reward"


def test_select_replays_the_posterior_with_a_decay(ws, tmp_path):
    """Two groups of 4: 4 wins then 0 wins. λ = 0.5: alpha = 0.5 (0.5 + 0.5 + 4) + 0.5 + 0 = 3.0,
    beta = 0.5 (0.5 + 0.5 + 0) + 0.5 + 4 = 5.0, posterior mean 3/8, so at target 0.375 MoPPS-concentrated
    draws favour it; with plain counts (λ = 1) the mean is 5/10."""
    from curate.catalog.workspace import Workspace  # noqa: F401
    from curate.selectors.rl.difficulty import decayed_posterior

    version = prompt_set(ws, tmp_path, n=1, name="decayed", start=70)
    ids = version.scan().select("id").collect()["id"]
    rollouts = [Rollout(ids[0], "d#math", "c", 1.0, 3, run="t", step=0, sample_idx=j) for j in range(4)]
    rollouts += [Rollout(ids[0], "d#math", "c", 0.0, 3, run="t", step=1, sample_idx=j) for j in range(4)]
    record_rollouts(ws, rollouts)
    alpha, beta = decayed_posterior(ws, ids, "d#math", 0.5)
    assert (alpha[0], beta[0]) == pytest.approx((3.0, 5.0))
    plain = decayed_posterior(ws, ids, "d#math", 1.0)
    assert (plain[0][0], plain[1][0]) == pytest.approx((5.0, 5.0))
    report = run_select(ws, version.ref, "difficulty", budget=1,
                        params={"mode": "thompson", "decay": "0.5", "model_key": "d#math"})
    assert _kept(report) == [ids[0]]
    with pytest.raises(BadUsage, match="decay"):
        run_select(ws, version.ref, "difficulty", out="bad", budget=1,
                   params={"mode": "thompson", "decay": "1.5", "model_key": "d#math"})
