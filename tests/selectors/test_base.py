"""The selector protocol, the registry, budgets and the model-free strategies (random, length)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.errors import BadInput, BadUsage
from curate.selectors import registry
from curate.selectors.base import Selection, check_budget, coerce, dropped_rows, parse_budget
from curate.selectors.sft.length import LengthSelector
from curate.selectors.pool import Pool
from curate.selectors.random_sample import RandomSelector, hash_uniform


def _pool(responses: list[str | None], seed: int = 0) -> Pool:
    rows = [{"id": f"r{i}", "prompt": f"q{i}", "response": r} for i, r in enumerate(responses)]
    return Pool.from_rows(pl.DataFrame(rows, schema={"id": pl.String, "prompt": pl.String, "response": pl.String}),
                          seed=seed)


def test_registry_maps_names_lazily_and_lists_choices():
    assert registry.get("fisher").__name__ == "FisherSelector"
    assert registry.get("Token_Clean").name == "token-clean"
    with pytest.raises(BadUsage, match="unknown strategy 'fishr'") as info:
        registry.get("fishr")
    assert "fisher" in info.value.hint and "dedup" in info.value.hint
    for name in ("fisher", "token-clean", "ifd", "perplexity", "length", "random", "dedup", "diversity"):
        assert registry.get(name).name == name
    assert {"rollout-variance", "difficulty", "mixing"} <= set(registry.STRATEGIES)


def test_a_reserved_strategy_without_its_class_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(registry.STRATEGIES, "mixing", "curate.selectors.no_such_module:MixingSelector")
    with pytest.raises(BadUsage, match="not available in this installation"):
        registry.get("mixing")


@pytest.mark.parametrize("text,rows,expected", [
    (500, 1000, 500), ("500", 1000, 500), (" 500 ", 1000, 500), (np.int64(7), 10, 7),  # whole numbers: counts
    ("1", 1000, 1), (1, 1000, 1),  # "1" is one row ...
    ("1.0", 1000, 1000), (1.0, 1000, 1000),  # ... and 1.0 every row
    ("0.1", 1000, 100), (0.1, 1000, 100), ("5e-2", 1000, 50), ("0.29", 100, 29), (0.29, 100, 29),  # fractions, exact
    ("10%", 1000, 100), ("29%", 100, 29), ("100%", 7, 7), ("0.5%", 1000, 5),  # percentages
    ("0.15", 10, 1), ("0.001", 10, 1), ("0.1%", 10, 1),  # floor, and at least one row
    (None, 5, None), ("", 5, None),
])
def test_parse_budget(text, rows, expected):
    assert parse_budget(text, rows) == expected


@pytest.mark.parametrize("text,message", [
    ("abc", "'abc' is not a number"), ("1,000", "not a number"), ("-3", "at least 1 example"), ("0", "at least 1"),
    (0, "at least 1"), ("0.0", "must be positive"), (-0.5, "must be positive"), ("nan", "finite"),
    (float("nan"), "finite"), ("inf", "finite"), ("2.5", r"fraction must be in \(0, 1\]\n"),
    ("500.0", "for a count of 500 write 500"), (2.0, "write 2"), ("150%", "percentage must be in"),
    ("0%", "percentage must be in"), (True, "not a budget"),
])
def test_bad_budgets_are_named(text, message):
    with pytest.raises(BadUsage, match=message) as info:
        parse_budget(text, 100)
    assert info.value.message.startswith("--budget") and "1.0 is every row" in info.value.hint


def test_budget_larger_than_the_pool_names_what_can_be_kept():
    with pytest.raises(BadUsage, match="budget 11 is larger than the pool: x can keep at most 8 rows") as info:
        check_budget(11, 8, "x", 10)
    assert "2 of its 10 rows cannot be kept: no valid score 2" in str(info.value)
    assert check_budget(None, 8, "x", 10) == 8
    with pytest.raises(BadUsage) as info:  # the strategy's own rule is named with its count
        check_budget(11, 5, "ifd", 10, {"ifd_above_1": 4, "nan_score": 0})
    assert "5 of its 10 rows cannot be kept: ifd_above_1 4, no valid score 1" in str(info.value)


def test_coerce_parameters_from_text():
    assert coerce("32", "int | None", "p") == 32
    assert coerce("none", "int | None", "p") is None
    assert coerce("0.5", float, "p") == 0.5
    assert coerce("false", bool, "p") is False
    with pytest.raises(BadUsage, match="expected"):
        coerce("many", int, "fisher.dim")


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(BadUsage, match="fisher has no parameter dims") as info:
        registry.get("fisher").from_params({"dims": "3"})
    assert "dim" in info.value.hint and "lam" in info.value.hint
    selector = registry.get("fisher").from_params({"dim": "16", "pooled": "true"})
    assert selector.get_params()["dim"] == 16 and selector.get_params()["pooled"] is True


def test_selection_counts_drops_by_reason():
    kept = pl.DataFrame({"id": ["a", "b"], "score": [2.0, 1.0], "rank": [0, 1]})
    dropped = pl.concat([dropped_rows(["c", "d"], "below_budget"), dropped_rows(["e"], "nan_score", ["x"])])
    selection = Selection("t", kept, dropped)
    assert selection.drop_counts == {"below_budget": 2, "nan_score": 1}
    assert selection.ids.to_list() == ["a", "b"] and len(selection) == 2


def test_length_keeps_the_longest_with_ties_to_the_earlier_row():
    pool = _pool(["aaaa", "bb", "cccc", "d", "eeeeee"])
    selector = LengthSelector().fit(pool)
    np.testing.assert_array_equal(selector.scores_, [4, 2, 4, 1, 6])
    selection = selector.select(3)
    assert selection.ids.to_list() == ["r4", "r0", "r2"]
    assert selection.kept["rank"].to_list() == [0, 1, 2]
    assert selector.get_support().tolist() == [True, False, True, False, True]
    assert selection.drop_counts == {"below_budget": 2}
    assert LengthSelector(keep="short").fit(pool).select(2).ids.to_list() == ["r3", "r1"]
    with pytest.raises(BadUsage, match="keep"):
        LengthSelector(keep="medium").fit(pool)


def test_missing_responses_are_dropped_and_an_all_missing_pool_is_an_error():
    pool = _pool(["abc", None, "  ", "de"])
    selection = LengthSelector().fit(pool).select(2)
    assert selection.ids.to_list() == ["r0", "r3"]
    assert selection.drop_counts == {"missing_response": 2}
    with pytest.raises(BadUsage, match="at most 2 rows"):
        LengthSelector().fit(pool).select(3)
    with pytest.raises(BadInput, match="needs responses"):
        LengthSelector().fit(_pool([None, ""]))


def test_random_is_a_seeded_sample_stable_under_subsetting():
    pool = _pool([f"x{i}" for i in range(200)], seed=3)
    first = RandomSelector().fit(pool).select(50)
    again = RandomSelector().fit(_pool([f"x{i}" for i in range(200)], seed=3)).select(50)
    assert first.ids.to_list() == again.ids.to_list()
    other = RandomSelector().fit(_pool([f"x{i}" for i in range(200)], seed=4)).select(50)
    assert first.ids.to_list() != other.ids.to_list()
    # the same rows in a smaller pool keep their relative order: the sample is a property of (seed, id)
    outsider = next(i for i in pool.ids.to_list() if i not in set(first.ids.to_list()))
    subset = pool.subset(first.ids.to_list()[::-1] + [outsider])
    assert RandomSelector().fit(subset).select(10).ids.to_list() == first.ids.to_list()[:10]
    values = hash_uniform(pl.Series([f"id{i}" for i in range(20000)]), 0)
    assert 0 <= values.min() and values.max() < 1 and abs(values.mean() - 0.5) < 0.01


def test_nan_scores_are_excluded_and_counted(monkeypatch):
    pool = _pool(["a", "bb", "ccc", "dddd"])
    monkeypatch.setattr(LengthSelector, "_score", lambda self, pool, valid: np.array([1.0, np.nan, 3.0, np.nan]))
    selection = LengthSelector().fit(pool).select(2)
    assert selection.ids.to_list() == ["r2", "r0"]
    assert selection.drop_counts == {"nan_score": 2}
    with pytest.raises(BadUsage, match="at most 2 rows"):
        LengthSelector().fit(pool).select(3)


def test_get_support_before_select_is_an_error():
    with pytest.raises(RuntimeError, match="select"):
        LengthSelector().get_support()


EXPECTED_KINDS = {"fisher": "set", "token-clean": "annotate", "ifd": "rank", "perplexity": "rank", "length": "rank",
                  "random": "rank", "dedup": "filter", "diversity": "set", "decontaminate": "filter",
                  "rollout-variance": "filter", "difficulty": "rank", "mixing": "set"}


def test_every_strategy_gets_its_kind_from_its_class_statement():
    assert {name: registry.get(name).kind for name in registry.STRATEGIES} == EXPECTED_KINDS


def test_kind_is_declared_one_way_and_must_be_known():
    from curate.selectors.base import Selector

    with pytest.raises(TypeError, match="declare the kind in the class statement"):
        type("ByHand", (Selector,), {"kind": "rank"})
    with pytest.raises(TypeError, match="'ranked' is not one of"):
        class Misspelt(Selector, kind="ranked"):  # noqa: F841
            pass

    class Declared(Selector, kind="filter"):
        pass

    class Inherited(Declared):
        pass

    assert Declared.kind == Inherited.kind == "filter"


@pytest.mark.parametrize("strategy, params, message", [
    ("length", {"keep": "middle"}, "length.keep must be 'long' or 'short'"),
    ("perplexity", {"keep": "mid"}, "perplexity.keep must be 'low' or 'high'"),
    ("token-clean", {"ratio": "1.5"}, "token-clean.ratio is the fraction"),
    ("rollout-variance", {"threshold": "-1"}, "rollout-variance.threshold must be >= 0"),
    ("difficulty", {"mode": "easy"}, "unknown difficulty mode 'easy'"),
    ("mixing", {"method": "static"}, "static mixing needs weights"),
    ("decontaminate", {"n": "0"}, "decontaminate.n must be at least 1"),
])
def test_check_params_refuses_bad_parameters_before_anything_is_scored(strategy, params, message):
    """`_check_params` runs first in `fit`: a pool without a workspace or a model never gets that far."""
    selector = registry.get(strategy).from_params(params)
    with pytest.raises(BadUsage, match=message):
        selector.fit(_pool(["a", "bb"]))
