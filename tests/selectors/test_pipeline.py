"""`run_select` / `run_score`: chains, budgets, lineage, drops, cached scores and user errors."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from curate.catalog.selections import selection_of
from curate.catalog.versions import ShardWriter, commit_version, lineage_of, resolve
from curate.errors import BadInput, BadUsage, ModelLoadError
from curate.selectors import features
from curate.selectors.sft.perplexity import PerplexitySelector
from curate.selectors.pipeline import run_score, run_select, split_params
from tests.selectors.sft_helpers import ingest_rows, install_proxy, word_problems


@pytest.fixture
def pool(ws, tmp_path):
    rows = word_problems(60, seed=3)
    rows[5] = {"question": rows[5]["question"], "answer": None}  # a prompt without a response
    return ingest_rows(ws, tmp_path, rows, name="pool")


def _drops(ws, version):
    with ws.catalog() as con:
        return con.execute("SELECT step, reason, count(*) FROM drops WHERE name = ? AND version = ? "
                           "GROUP BY ALL ORDER BY ALL", [version.name, version.version]).fetchall()


def test_a_chain_commits_one_version_with_a_lineage_step_per_strategy(ws, pool, tiny_model_dir):
    report = run_select(ws, "pool", "length,fisher", budget=10, model=str(tiny_model_dir),
                        params={"length.budget": "40", "fisher.lam": "0.5"}, seed=1)
    version = report.version
    assert version.ref == "pool-length-fisher@v1" and version.rows == 10
    steps = lineage_of(ws, version)
    assert [s["strategy"] for s in steps] == ["length", "fisher"]
    assert [(s["rows_in"], s["rows_out"]) for s in steps] == [(60, 40), (40, 10)]
    assert steps[0]["drop_counts"] == {"below_budget": 19, "missing_response": 1}
    assert steps[1]["drop_counts"] == {"below_budget": 30}
    assert steps[1]["params"]["lam"] == 0.5 and steps[1]["params"]["budget"] == 10 and steps[1]["seed"] == 1
    assert steps[1]["model_id"] == str(tiny_model_dir) and steps[1]["model_hash"]
    assert all(s["inputs"] == ["pool@v1"] for s in steps)
    assert _drops(ws, version) == [(0, "below_budget", 19), (0, "missing_response", 1), (1, "below_budget", 30)]
    row = selection_of(ws, version)
    assert row["source"] == "pool@v1" and row["strategy"] == "length,fisher" and row["budget"] == 10
    assert [s["strategy"] for s in row["params"]["steps"]] == ["length", "fisher"]
    # the output is fisher's pick order over the 40 longest responses
    from curate.selectors.sft.fisher import FisherSelector
    from curate.selectors.sft.length import LengthSelector
    from curate.selectors.pool import Pool

    source = Pool.from_version(resolve(ws, "pool"), ws, model=str(tiny_model_dir), seed=1)
    longest = source.subset(LengthSelector().fit(source).select(40).ids)
    expected = FisherSelector(lam=0.5).fit(longest).select(10).ids.to_list()
    out = version.scan().collect()
    assert out["id"].to_list() == expected
    assert set(out.columns) == set(resolve(ws, "pool").columns)


def test_fisher_works_with_the_default_proxy_model(ws, pool, tiny_model_dir):
    folder = install_proxy(ws, pool, tiny_model_dir)
    report = run_select(ws, "pool", "fisher", budget=5)
    step = lineage_of(ws, report.version)[0]
    assert step["model_id"] == f"proxy ({folder})"
    assert report.version.rows == 5


def test_token_clean_output_carries_aligned_masks(ws, pool, tiny_model_dir, tmp_path):
    from tests.selectors.sft_helpers import save_tiny

    reference = save_tiny(tmp_path / "ref", seed=7)
    report = run_select(ws, "pool", "dedup,token-clean", model=str(tiny_model_dir),
                        params={"ref_model": str(reference), "dedup.threshold": "0.9999"}, out="clean")
    out = report.version.scan().collect()
    assert out.schema["token_mask"] == pl.List(pl.UInt8)
    from curate.lm.loading import load
    from curate.lm.templates import encode_pair

    tokenizer = load(str(tiny_model_dir), dtype="float32", device="cpu").tokenizer
    for prompt, response, mask in out.select("prompt", "response", "token_mask").head(5).iter_rows():
        assert len(mask) == len(encode_pair(prompt, response, tokenizer, add_eos=True).response_ids)
    total = out["token_mask"].list.len().sum()
    assert out["token_mask"].list.sum().sum() == math.floor(0.6 * total)
    assert report.steps[1].stats["kept_fraction"] == pytest.approx(0.6, abs=0.01)
    # the SFT trainer accepts the masks (its own length check)
    from curate.train.data import encode_sft

    examples, counts = encode_sft(report.version, tokenizer)
    assert counts["masked_tokens"] > 0 and len(examples) == out.height


def test_scores_are_cached_and_reused(ws, pool, tiny_model_dir, monkeypatch):
    first = run_score(ws, "pool", "perplexity", model=str(tiny_model_dir))
    assert first.scored == 59 and first.nan == 1 and first.cached == 0
    assert first.scorer_key.startswith("perplexity:")

    def no_model(*args, **kwargs):
        raise AssertionError("cached scores should have been reused")

    monkeypatch.setattr(features, "token_nll", no_model)
    monkeypatch.setattr("curate.selectors.sft.perplexity.mean_nll", no_model)
    again = run_score(ws, "pool", "perplexity", model=str(tiny_model_dir))
    assert again.cached == 59 and again.summary == first.summary
    report = run_select(ws, "pool", "perplexity", budget=20, model=str(tiny_model_dir))
    assert report.steps[0].stats["cached_scores"] == 59
    # other parameters that change nothing in the score (keep) share the cache; another model would not
    high = run_select(ws, "pool", "perplexity", budget=20, model=str(tiny_model_dir), params={"keep": "high"})
    assert set(high.version.scan().collect()["id"]) != set(report.version.scan().collect()["id"])


def test_run_score_for_scorers_without_their_own_cache(ws, pool):
    report = run_score(ws, "pool", "length")
    assert report.scorer_key.startswith("length:-:") and report.scored == 59
    with pytest.raises(BadUsage, match="no score per example"):
        run_score(ws, "pool", "diversity")


def test_nan_scores_are_dropped_and_counted_in_lineage(ws, pool, tiny_model_dir, monkeypatch):
    def some_nan(self, pool, valid):
        values = np.arange(pool.rows, dtype=np.float64)
        values[::4] = np.nan
        return values

    monkeypatch.setattr(PerplexitySelector, "_score", some_nan)
    report = run_select(ws, "pool", "perplexity", budget=10, model=str(tiny_model_dir))
    counts = lineage_of(ws, report.version)[0]["drop_counts"]
    assert counts["nan_score"] == 15 and counts["missing_response"] == 1
    with pytest.raises(BadUsage, match="at most 44 rows"):
        run_select(ws, "pool", "perplexity", budget=50, model=str(tiny_model_dir))


def test_user_errors_change_nothing(ws, pool, tiny_model_dir, tmp_path):
    def versions():
        with ws.catalog() as con:
            return con.execute("SELECT name, version FROM datasets ORDER BY ALL").fetchall()

    before = versions()
    with pytest.raises(BadUsage, match="unknown strategy 'fishr'") as info:
        run_select(ws, "pool", "dedup,fishr", budget=5)
    assert "fisher" in info.value.hint
    with pytest.raises(BadUsage, match="larger than the pool"):
        run_select(ws, "pool", "random", budget=61)
    with pytest.raises(BadUsage, match="needs a ranking strategy"):
        run_select(ws, "pool", "dedup", budget=5)
    with pytest.raises(BadUsage, match="fisher needs a budget"):
        run_select(ws, "pool", "fisher")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError):
        run_select(ws, "pool", "perplexity", budget=5, model=str(broken))
    with pytest.raises(BadUsage, match="invalid dataset name"):
        run_select(ws, "pool", "random", budget=5, out="bad name!")
    assert versions() == before


def test_an_empty_dataset_is_an_error(ws, tmp_path):
    with ws.staging("empty") as folder:
        staged = ShardWriter(folder).close()
        commit_version(ws, "empty", staged, [], prompt_type="text")
    with pytest.raises(BadInput, match="empty"):
        run_select(ws, "empty", "random", budget=1)


def test_params_split_by_strategy_step_number_or_name():
    from curate.selectors import registry

    names = ["dedup", "fisher", "dedup"]
    classes = [registry.get(n) for n in names]
    per_step, budgets = split_params({"fisher.dim": "8", "2.lam": "3", "threshold": "0.9", "3.normalize": "false",
                                      "fisher.budget": "7"}, names, classes)
    assert per_step == [{"threshold": "0.9"}, {"dim": "8", "lam": "3"}, {"threshold": "0.9", "normalize": "false"}]
    assert budgets == [None, "7", None]
    with pytest.raises(BadUsage, match="no step of this selection takes 'ratio'"):
        split_params({"ratio": "0.5"}, names, classes)
    with pytest.raises(BadUsage, match="there is no step 4"):
        split_params({"4.lam": "1"}, names, classes)
    with pytest.raises(BadUsage, match="'ifd' is not a step"):
        split_params({"ifd.max_ifd": "1"}, names, classes)


def test_a_failed_commit_leaves_no_version_and_no_selection_row(ws, pool, monkeypatch):
    from curate.catalog import selections

    original = selections.commit_version

    def failing(*args, on_commit=None, **kwargs):
        def boom(con, version):
            on_commit(con, version)
            raise RuntimeError("crash mid-commit")
        return original(*args, on_commit=boom, **kwargs)

    monkeypatch.setattr(selections, "commit_version", failing)
    with pytest.raises(RuntimeError, match="crash"):
        run_select(ws, "pool", "random", budget=5, out="partial")
    with ws.catalog() as con:
        for table in ("datasets", "selections", "lineage", "drops"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE name = 'partial'").fetchall() == [(0,)]
    assert not (ws.root / "shards" / "partial" / "v1").exists()
    assert resolve(ws, "pool").rows == pool.rows  # the source is untouched


def test_each_step_records_its_score_of_every_row_it_saw(ws, pool):
    """`step_scores` holds what `curate report` plots: every row a step saw, its score, and whether it was kept."""
    report = run_select(ws, "pool", "length,random", budget=5, params={"length.budget": "20"}, seed=2)
    version = report.version
    with ws.catalog() as con:
        rows = con.execute("SELECT step, id, value, kept FROM step_scores WHERE name = ? AND version = ? "
                           "ORDER BY step, id", [version.name, version.version]).fetchall()
    first = [r for r in rows if r[0] == 0]
    second = [r for r in rows if r[0] == 1]
    assert len(first) == 60 and len(second) == 20  # the length step saw the pool, random the 20 it kept
    lengths = dict(resolve(ws, "pool").scan().select("id", pl.col("response").str.len_chars()).collect().iter_rows())
    kept = [value for _, row_id, value, was_kept in first if was_kept]
    dropped = [value for _, row_id, value, was_kept in first if not was_kept and not math.isnan(value)]
    assert len(kept) == 20 and min(kept) >= max(dropped)  # the longest 20 were kept: the cut separates them
    assert all(value == lengths[row_id] for _, row_id, value, _ in first if not math.isnan(value))
    assert sum(1 for r in first if math.isnan(r[2])) == 1  # the row without a response has no score
    assert {r[1] for r in second if r[3]} == set(version.scan().select("id").collect()["id"].to_list())
