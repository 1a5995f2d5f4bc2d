"""`run_compare` end to end on a tiny model: cells, the catalog table, reuse, recipe changes, equal budgets."""

from __future__ import annotations

import json

import pytest

from curate.catalog.comparisons import comparisons_of
from curate.catalog.versions import list_versions, resolve
from curate.catalog.workspace import Workspace, query_frame
from curate.compare import run_compare
from curate.errors import BadInput
from curate.selectors.pipeline import run_select
from tests.compare.helpers import pool_and_eval, tiny_config


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("compare")
    ws = Workspace.open(folder / "ws")
    pool_and_eval(ws, folder)
    said: list[str] = []
    result = run_compare(ws, tiny_config(tiny_model_dir, strategies=["length", "perplexity,random"]), say=said.append)
    return ws, result, said


def _rows(ws, sql: str, params=None):
    with ws.catalog() as con:
        return query_frame(con, sql, params).to_dicts()


def test_every_cell_is_selected_trained_evaluated_and_committed(compared):
    ws, result, said = compared
    assert result.strategies == ["random", "length", "perplexity,random"]
    assert (result.computed, result.reused, result.budget) == (7, 0, 8)  # the base, then 3 arms x 2 seeds
    assert [(c.strategy, c.seed) for c in result.cells] == [("(base)", -1)] + [
        (arm, seed) for seed in (0, 1) for arm in result.strategies]
    rows = _rows(ws, "SELECT * FROM comparisons ORDER BY created_at")
    assert len(rows) == 7 and {r["status"] for r in rows} == {"done"}
    pool, held = resolve(ws, "pool"), resolve(ws, "held")
    for row in rows:
        assert (row["pool"], row["pool_hash"], row["eval"], row["eval_hash"]) == (
            "pool@v1", pool.content_hash, "held@v1", held.content_hash)
        assert row["recipe_hash"] == result.recipe_hash and row["base_hash"].startswith("folder:")
        metrics = json.loads(row["metrics"])
        assert row["value"] == metrics["accuracy"] and 0 <= row["value"] <= 1 and metrics["loss"] > 0
        assert metrics["eval_rows"] == 6 and row["seconds"] >= row["eval_s"] > 0
    for cell in result.cells[1:]:
        selection = resolve(ws, cell.selection)
        assert selection.rows == 8
        record = json.loads((ws.root / "compare" / "pool-compare" / cell.model_path.rsplit("/", 1)[1] /
                             "training.json").read_text())
        assert record["data"]["ref"] == cell.selection and record["base_model"] == result.base_model
        assert not (ws.root / cell.model_path / "checkpoint").exists()  # the optimizer state is not kept
    assert "0 of 7 cells already done" in said[0]


def test_each_arm_selects_as_curate_select_does(compared):
    ws, result, _ = compared
    for cell in (c for c in result.cells if c.strategy == "random"):
        again = run_select(ws, "pool", "random", budget=8, seed=cell.seed, out="again")
        ids = resolve(ws, cell.selection).scan().collect()["id"].to_list()
        assert again.version.scan().collect()["id"].to_list() == ids


def test_the_summary_is_the_cells_values_paired_with_random(compared):
    _, result, _ = compared
    arms = {a.strategy: a for a in result.arms}
    for arm in result.strategies:
        expected = [c.metrics["accuracy"] for c in result.cells if c.strategy == arm]
        assert arms[arm].values == expected and arms[arm].seeds == [0, 1]
    random = arms["random"].values
    length = arms["length"]
    assert length.diff_mean == pytest.approx(sum(length.values) / 2 - sum(random) / 2)
    assert length.wins + length.ties + length.losses == 2
    assert result.base is not None and result.base.model_path == result.base_model


def test_a_rerun_recomputes_nothing(compared, tiny_model_dir):
    ws, result, _ = compared
    before = _rows(ws, "SELECT cell_key, finished_at, selection FROM comparisons ORDER BY cell_key")
    versions = len(list_versions(ws))
    again = run_compare(ws, tiny_config(tiny_model_dir, strategies=["perplexity,random", "length"]))
    assert (again.computed, again.reused) == (0, 7)
    assert _rows(ws, "SELECT cell_key, finished_at, selection FROM comparisons ORDER BY cell_key") == before
    assert len(list_versions(ws)) == versions
    shown = comparisons_of(ws, "pool@v1")
    assert sorted(shown["strategy"].to_list()) == ["(base)", "length", "perplexity,random", "random"]
    assert shown.filter(shown["strategy"] == "random")["seeds"].to_list() == [2]


def test_a_different_recipe_gets_its_own_cells(compared, tiny_model_dir):
    ws, result, _ = compared
    changed = run_compare(ws, tiny_config(tiny_model_dir, lr=5e-4, seeds=1, eval_base=False))
    assert changed.recipe_hash != result.recipe_hash
    assert (changed.computed, changed.reused) == (2, 0)  # random and length at seed 0, trained again
    extended = run_compare(ws, tiny_config(tiny_model_dir, seeds=3, strategies=["length"]))
    assert (extended.computed, extended.reused) == (2, 5)  # only seed 2 of random and length is new
    assert extended.recipe_hash == result.recipe_hash


def test_an_arm_that_misses_the_budget_is_refused(compared, tiny_model_dir):
    ws, _, _ = compared
    with pytest.raises(BadInput, match=r"arm length kept 5 rows .*not the budget 8: every arm must train on the "
                                       r"same number of rows"):
        run_compare(ws, tiny_config(tiny_model_dir, params={"length.budget": "5"}, seeds=1, eval_base=False,
                                    out="short"))


def test_a_cell_interrupted_after_its_selection_trains_on_that_selection(tmp_path, tiny_model_dir, monkeypatch):
    import curate.train.sft as sft

    ws = Workspace.open(tmp_path / "ws")
    pool_and_eval(ws, tmp_path)
    config = tiny_config(tiny_model_dir, strategies=["random"], seeds=1, eval_base=False)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sft, "train_sft", crash)
    with pytest.raises(KeyboardInterrupt):
        run_compare(ws, config)
    (selected,) = _rows(ws, "SELECT status, selection FROM comparisons")
    assert selected == {"status": "selected", "selection": "pool-compare-random@v1"}
    monkeypatch.undo()
    result = run_compare(ws, config)
    assert result.cells[0].selection == "pool-compare-random@v1" and result.cells[0].status == "done"
    assert [v.ref for v in list_versions(ws, "pool-compare-random")] == ["pool-compare-random@v1"]


def test_a_cell_interrupted_mid_training_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    import curate.train.sft as sft

    ws = Workspace.open(tmp_path / "ws")
    pool_and_eval(ws, tmp_path)
    config = tiny_config(tiny_model_dir, strategies=["random"], seeds=1, eval_base=False, steps=3, save_every=1)
    real, calls = sft.train_sft, []

    def stop_after_two_steps(*args, progress=None, **kwargs):
        def report(step, metrics):
            if step == 2:
                raise KeyboardInterrupt
        return real(*args, progress=report, **kwargs)

    def record(*args, **kwargs):
        stats = real(*args, **kwargs)
        calls.append((kwargs["resume"], stats["resumed_from"]))
        return stats

    monkeypatch.setattr(sft, "train_sft", stop_after_two_steps)
    with pytest.raises(KeyboardInterrupt):
        run_compare(ws, config)
    monkeypatch.setattr(sft, "train_sft", record)
    result = run_compare(ws, config)
    assert calls == [(True, 1)]  # the checkpoint of step 1 (step 2 was cut short before its save)
    assert result.cells[0].status == "done"
