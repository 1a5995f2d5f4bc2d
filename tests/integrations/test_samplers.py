"""The TRL and verl curriculum samplers pick what `curate select --strategy difficulty` picks, and feed the ledger."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from trl.trainer.utils import RepeatSampler

from curate.catalog.ledger import Rollout, read_stats, record_rollouts
from curate.errors import BadUsage
from curate.integrations.picker import CurriculumPicker, LedgerRecorder
from curate.integrations.trl_sampler import CurriculumRepeatSampler, LedgerReward
from curate.integrations.verl_sampler import CurateCurriculumSampler
from curate.selectors.rl.difficulty import CurriculumParams
from curate.selectors.pipeline import run_select
from tests.rl_helpers import prompt_set

CASES = [({"mode": "band", "lo": 0.2, "hi": 0.8}, None), ({"mode": "band"}, 6), ({"mode": "thompson", "target": 0.3}, 8),
         ({"mode": "greso"}, 5), ({"mode": "adarft", "adarft_target": 0.6, "reference": "m"}, 7)]


@pytest.fixture
def ledgered(ws, tmp_path):
    """20 prompts; the first 16 have 8 rollouts each under model key m, with 0..8 successes."""
    version = prompt_set(ws, tmp_path, n=20)
    ids = version.scan().select("id").collect()["id"].to_list()
    rollouts = [Rollout(pid, "m", "c", 1.0 if j < (i % 9) else 0.0, 3, run="r", step=0, sample_idx=j)
                for i, pid in enumerate(ids[:16]) for j in range(8)]
    record_rollouts(ws, rollouts)
    return version, ids


def _selected(ws, version, params, budget, seed):
    out = f"sel-{abs(hash((str(params), budget, seed))) % 10**8}"
    report = run_select(ws, version.ref, "difficulty", budget=budget, params=params, seed=seed, out=out)
    return report.version.scan().select("id").collect()["id"].to_list()


@pytest.mark.parametrize("params,budget", CASES)
def test_both_samplers_pick_what_curate_select_picks(ws, ledgered, params, budget):
    version, ids = ledgered
    expected = _selected(ws, version, params, budget, seed=3)
    options = {**params, "seed": 3, "budget": budget}
    picker = CurriculumPicker.from_options(ws, ids, options)
    trl = CurriculumRepeatSampler(picker, mini_repeat_count=2, batch_size=1)
    assert [ids[i] for i in list(trl)[::2]] == expected
    verl = CurateCurriculumSampler(_VerlData(ids), {"curate": {"workspace": str(ws.root), **options}})
    assert [ids[i] for i in verl] == expected


class _VerlData:
    """What verl's RLHFDataset offers the sampler: len() and a `dataframe` with an extra_info column."""

    def __init__(self, ids):
        self.dataframe = _Frame([{"index": i, "id": pid, "split": "train"} for i, pid in enumerate(ids)])

    def __len__(self):
        return len(self.dataframe.rows)


class _Frame:
    column_names = ["extra_info"]

    def __init__(self, rows):
        self.rows = rows

    def __getitem__(self, column):
        assert column == "extra_info"
        return self.rows


def test_trl_layout_is_repeat_samplers_with_curate_order(ws, ledgered):
    _, ids = ledgered
    picker = CurriculumPicker(ws, ids, mode="thompson", budget=9, seed=1)
    picks = picker.pick(0)
    ours = list(CurriculumRepeatSampler(picker, mini_repeat_count=3, batch_size=4, repeat_count=2))
    reference = [picks[i] for i in RepeatSampler(picks, mini_repeat_count=3, batch_size=4, repeat_count=2,
                                                 shuffle=False)]
    assert ours == reference and len(ours) == 8 * 3 * 2  # the 9th pick is an incomplete chunk, dropped as TRL does
    assert len(CurriculumRepeatSampler(picker, mini_repeat_count=3, batch_size=4, repeat_count=2)) == len(ours)
    trainer = SimpleNamespace(num_generations=4, num_iterations=2, args=SimpleNamespace(generation_batch_size=12,
                                                                                       steps_per_generation=3))
    wired = CurriculumRepeatSampler.for_trainer(trainer, picker)
    assert (wired.mini_repeat_count, wired.batch_size, wired.repeat_count) == (4, 3, 6)


def test_later_epochs_see_what_the_ledger_learned(ws, ledgered):
    _, ids = ledgered
    picker = CurriculumPicker(ws, ids, mode="band", seed=0, model_key="m", params=CurriculumParams(lo=0.2, hi=0.8))
    first = set(picker.pick(0))
    assert 19 in first  # unseen prompts are kept by the band
    reward = LedgerReward(lambda prompts, completions, **_: [1.0] * len(completions),
                          LedgerRecorder(ws, "m", run="trl-test"))
    values = reward(prompts=["p"] * 4, completions=["a", "b", "c", "d"], id=[ids[19]] * 4,
                    trainer_state=SimpleNamespace(global_step=7))
    assert values == [1.0] * 4
    stats = read_stats(ws, "m").filter(pl.col("prompt_id") == ids[19])
    assert stats["attempts"].to_list() == [4] and stats["successes"].to_list() == [4.0]
    assert 19 not in set(picker.pick(1))  # now always right: outside the band


def test_verl_update_records_sequence_rewards(ws, ledgered):
    _, ids = ledgered
    sampler = CurateCurriculumSampler(_VerlData(ids), {"curate": {"workspace": str(ws.root), "model_key": "m",
                                                                  "run": "verl-test", "mode": "band"}})
    infos = np.array([{"index": 17, "id": ids[17]}] * 2 + [{"index": 18, "id": ids[18]}] * 2, dtype=object)
    scores = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.5, 0.5], [1.0, 0.0]])  # sums: 1, 0, 1, 1
    sampler.update(batch=SimpleNamespace(non_tensor_batch={"extra_info": infos}, batch={"token_level_scores": scores}))
    stats = {r["prompt_id"]: r for r in read_stats(ws, "m").to_dicts()}
    assert (stats[ids[17]]["attempts"], stats[ids[17]]["successes"]) == (2, 1.0)
    assert (stats[ids[18]]["attempts"], stats[ids[18]]["successes"]) == (2, 2.0)
    with pytest.raises(BadUsage, match="has no extra_info.id"):
        broken = _VerlData(ids)
        broken.dataframe.rows[3] = {"index": 3}
        CurateCurriculumSampler(broken, {"curate": {"workspace": str(ws.root), "model_key": "m"}})
    with pytest.raises(BadUsage, match="unknown curriculum option"):
        CurateCurriculumSampler(_VerlData(ids), {"curate": {"workspace": str(ws.root), "bogus": 1}})
