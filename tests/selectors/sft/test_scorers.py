"""Model-based scorers (perplexity, IFD) against losses computed directly with torch."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from curate.errors import BadUsage, ModelLoadError
from curate.lm.loading import load
from curate.lm.templates import encode_pair
from curate.selectors.sft.ifd import IFDSelector
from curate.selectors.sft.perplexity import PerplexitySelector
from curate.selectors.pool import Pool

ROWS = [
    {"id": "a", "prompt": "What is 2 + 2?", "response": "2 + 2 = 4\n#### 4"},
    {"id": "b", "prompt": "Name a colour.", "response": "Blue."},
    {"id": "c", "prompt": "Count to three.", "response": "one two three"},
    {"id": "d", "prompt": "Say nothing.", "response": None},
    {"id": "e", "prompt": "Spell cat.", "response": "c a t, that spells cat"},
]


def _direct_mean_nll(lm, context: list[int], targets: list[int]) -> float:
    """Mean −log p(target) for targets following context, from the raw model logits."""
    ids = torch.tensor([context + targets])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0].float()
    start = len(context) - 1
    picked = torch.log_softmax(logits[start:start + len(targets)], dim=-1)[torch.arange(len(targets)), targets]
    return float(-picked.mean())


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load(str(tiny_model_dir), dtype="float32", device="cpu")


def _pool(model_dir) -> Pool:
    return Pool.from_rows(pl.DataFrame(ROWS), model=str(model_dir))


def test_ifd_is_the_ratio_of_conditioned_to_direct_answer_loss(tiny, tiny_model_dir):
    selector = IFDSelector().fit(_pool(tiny_model_dir))
    for i, row in enumerate(ROWS):
        if row["response"] is None:
            assert math.isnan(selector.scores_[i])
            continue
        encoded = encode_pair(row["prompt"], row["response"], tiny.tokenizer, add_eos=True)
        conditioned = _direct_mean_nll(tiny, encoded.prompt_ids, encoded.response_ids)
        direct = _direct_mean_nll(tiny, [tiny.tokenizer.bos_token_id], encoded.response_ids)
        assert selector.scores_[i] == pytest.approx(conditioned / direct, rel=1e-4)


def test_ifd_drops_scores_above_one_and_keeps_the_highest(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(IFDSelector, "_score", lambda self, pool, valid: np.array([0.9, 1.2, 0.5, np.nan, 0.95]))
    selection = IFDSelector().fit(_pool(tiny_model_dir)).select(2)
    assert selection.ids.to_list() == ["e", "a"]
    assert selection.kept["score"].to_list() == [0.95, 0.9]
    assert selection.drop_counts == {"below_budget": 1, "ifd_above_1": 1, "missing_response": 1}
    detail = selection.dropped.filter(pl.col("reason") == "ifd_above_1")["detail"][0]
    assert detail == "IFD 1.2000 > 1.0"
    with pytest.raises(BadUsage, match="at most 3 rows") as info:
        IFDSelector().fit(_pool(tiny_model_dir)).select(4)
    assert "2 of its 5 rows cannot be kept: ifd_above_1 1, no valid score 1" in info.value.message


def test_perplexity_is_exp_of_the_mean_response_loss(tiny, tiny_model_dir):
    selector = PerplexitySelector().fit(_pool(tiny_model_dir))
    for i, row in enumerate(ROWS):
        if row["response"] is None:
            continue
        encoded = encode_pair(row["prompt"], row["response"], tiny.tokenizer, add_eos=True)
        expected = math.exp(_direct_mean_nll(tiny, encoded.prompt_ids, encoded.response_ids))
        assert selector.scores_[i] == pytest.approx(expected, rel=1e-4)
    low = selector.select(2).ids.to_list()
    order = np.argsort(selector.scores_[[0, 1, 2, 4]])
    assert low == [["a", "b", "c", "e"][k] for k in order[:2]]
    high = PerplexitySelector(keep="high").fit(_pool(tiny_model_dir)).select(2).ids.to_list()
    assert high == [["a", "b", "c", "e"][k] for k in order[::-1][:2]]


def test_a_model_that_does_not_load_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="could not load model"):
        PerplexitySelector().fit(Pool.from_rows(pl.DataFrame(ROWS), model=str(broken)))
    with pytest.raises(ModelLoadError, match="does not exist"):
        PerplexitySelector().fit(Pool.from_rows(pl.DataFrame(ROWS), model="./no/such/model"))
