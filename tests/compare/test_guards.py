"""What `curate compare` refuses before it spends compute: leakage, a base trained on the pool, unusable EVAL."""

from __future__ import annotations

import json

import pytest

from curate.catalog.workspace import query_frame
from curate.compare import run_compare
from curate.compare.guards import check_base
from curate.compare.arms import arm_chains, arm_params
from curate.errors import BadInput, BadUsage
from curate.train.provenance import training_history
from tests.compare.helpers import pool_and_eval, problems, tiny_config
from tests.selectors.sft_helpers import ingest_rows


def _catalog_counts(ws) -> tuple[int, int]:
    with ws.catalog() as con:
        return (query_frame(con, "SELECT count(*) AS n FROM comparisons")["n"][0],
                query_frame(con, "SELECT count(*) AS n FROM datasets")["n"][0])


def test_an_eval_that_shares_rows_with_the_pool_is_refused_and_nothing_is_written(ws, tmp_path, tiny_model_dir):
    pool, _ = pool_and_eval(ws, tmp_path)
    pool_rows = problems(40, 0, "pool")
    leaky = [pool_rows[3], {**pool_rows[7], "prompt": pool_rows[7]["prompt"].upper() + "  ", "response": "x"},
             *problems(4, 1, "held")]
    ingest_rows(ws, tmp_path, leaky, "leaky")
    before = _catalog_counts(ws)
    with pytest.raises(BadInput) as info:
        run_compare(ws, tiny_config(tiny_model_dir, eval="leaky"))
    message = info.value.message
    assert "leakage: EVAL leaky@v1 shares 2 of its 6 rows with POOL pool@v1 (1 by id, 2 by normalised prompt)" in message
    assert pool_rows[3]["prompt"].lower()[:40] in message  # an example is named
    assert _catalog_counts(ws) == before


def test_the_proxy_is_refused_as_base(ws, tmp_path, tiny_model_dir):
    from curate.train.proxy import ProxyConfig, ensure_proxy

    pool, _ = pool_and_eval(ws, tmp_path)
    with pytest.raises(BadUsage, match="--model proxy is the proxy of pool@v1"):
        run_compare(ws, tiny_config(tiny_model_dir, model="proxy"))
    folder, _ = ensure_proxy(ws, pool, ProxyConfig(hidden_size=16, layers=1, heads=2, intermediate_size=32,
                                                   seq_len=32, steps=1, max_examples=10))
    assert json.loads((folder / "proxy.json").read_text())["content_hash"] == pool.content_hash
    with pytest.raises(BadInput, match=r"base model .* was trained on pool@v1's rows: the proxy run .* trained on "
                                       r"pool@v1 \(the same content as the pool\), which shares 40 rows"):
        run_compare(ws, tiny_config(tiny_model_dir, model=str(folder)))


def test_a_model_trained_on_a_selection_of_the_pool_is_refused_even_two_runs_later(ws, tmp_path, tiny_model_dir):
    from curate.selectors.pipeline import run_select
    from curate.train.sft import SFTConfig, train_sft

    pool, _ = pool_and_eval(ws, tmp_path)
    subset = run_select(ws, "pool", "random", budget=5, out="subset").version
    other = ingest_rows(ws, tmp_path, problems(5, 7, "other"), "other")
    recipe = SFTConfig(steps=1, batch_tokens=1024, save_every=0, device="cpu")
    first, second = tmp_path / "first", tmp_path / "second"
    train_sft(str(tiny_model_dir), subset, first, recipe)
    train_sft(str(first), other, second, recipe)  # trained on other data, but it started from `first`
    assert [(r.kind, r.data_ref) for r in training_history(str(second))] == [("sft", "other@v1"),
                                                                            ("sft", "subset@v1")]
    with pytest.raises(BadInput, match=r"the sft run in .*first, which .*second was trained from, trained on "
                                       r"subset@v1, which shares 5 rows with the pool"):
        run_compare(ws, tiny_config(tiny_model_dir, model=str(second)))
    assert check_base(ws, pool, str(tmp_path / "third-does-not-exist"))[0].endswith("cannot be checked")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "training.json").write_text(json.dumps({"kind": "sft", "base_model": "hub/model", "data": {
        "ref": "deleted@v3", "content_hash": "0" * 32}}))
    notes = check_base(ws, pool, str(tmp_path / "gone"))
    assert len(notes) == 1 and "trained on deleted@v3, which is not in this workspace" in notes[0]
    rows_model = tmp_path / "rows"
    train_sft(str(tiny_model_dir), [{"id": r["id"], "prompt": r["prompt"], "response": r["response"]}
                                   for r in subset.scan().collect().to_dicts()], rows_model, recipe)
    with pytest.raises(BadInput, match="trained on 5 rows given as a list, which shares 5 rows"):
        check_base(ws, pool, str(rows_model))


def test_eval_rows_the_metric_cannot_use_are_refused(ws, tmp_path, tiny_model_dir):
    pool_and_eval(ws, tmp_path)
    ingest_rows(ws, tmp_path, [{"prompt": f"Question {i}?", "response": "yes"} for i in range(4)], "noanswer")
    with pytest.raises(BadInput, match=r"EVAL noanswer@v1 has no values in answer, which --metric accuracy with "
                                       r"--reward math needs"):
        run_compare(ws, tiny_config(tiny_model_dir, eval="noanswer"))
    ingest_rows(ws, tmp_path, [{"prompt": f"Question {i}?", "answer": "1"} for i in range(4)], "noresponse")
    with pytest.raises(BadInput, match="has no values in response, which --metric loss needs"):
        run_compare(ws, tiny_config(tiny_model_dir, eval="noresponse", metric="loss"))


def test_arms_are_canonical_chains_with_random_first():
    assert arm_chains(["Length", "dedup, fisher", "length"]) == ["random", "length", "dedup,fisher"]
    assert arm_chains(["fisher", "random"]) == ["fisher", "random"]
    with pytest.raises(BadUsage, match="unknown strategy 'nope'"):
        arm_chains(["nope"])


def test_params_go_to_the_arms_that_have_the_step():
    arms = ["random", "dedup,fisher", "fisher", "perplexity,random"]
    params = arm_params(arms, {"fisher.dim": "32", "threshold": "0.9", "perplexity.budget": "0.8"})
    assert params == {"random": {}, "dedup,fisher": {"fisher.dim": "32", "threshold": "0.9"},
                      "fisher": {"fisher.dim": "32"}, "perplexity,random": {"perplexity.budget": "0.8"}}
    with pytest.raises(BadUsage, match="a step number means a different step in each arm"):
        arm_params(arms, {"2.dim": "8"})
    with pytest.raises(BadUsage, match="--param ifd.alpha=.*|--param ifd.alpha: no arm"):
        arm_params(arms, {"ifd.alpha": "1"})
    with pytest.raises(BadUsage, match="every arm keeps --budget rows"):
        arm_params(arms, {"budget": "10"})
