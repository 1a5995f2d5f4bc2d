"""Committing a selection: order, extra columns, lineage, atomicity, bad input."""

from __future__ import annotations

import polars as pl
import pytest

from curate.catalog.selections import commit_selection, selection_of
from curate.catalog.versions import Lineage, lineage_of, resolve
from curate.errors import BadInput
from tests.catalog._helpers import ingest_rows


@pytest.fixture
def source(ws, tmp_path):
    rows = [{"prompt": f"q{i}", "response": f"a{i}", "domain": "d"} for i in range(10)]
    return ingest_rows(ws, tmp_path, rows, name="src").version


def test_rows_come_out_in_rank_order_with_extra_columns(ws, source):
    ids = source.scan().collect()["id"].to_list()
    kept = pl.DataFrame({"id": [ids[7], ids[2], ids[5]], "rank": [0, 1, 2]})
    extra = pl.DataFrame({"id": [ids[2], ids[5], ids[7]], "token_mask": [[1, 0], [1], [0, 0, 1]]},
                         schema={"id": pl.String, "token_mask": pl.List(pl.UInt8)})
    drops = pl.DataFrame({"step": [0], "id": [ids[0]], "reason": ["below_budget"], "detail": ["rank 3"]})
    version = commit_selection(ws, source, "picked", kept, [Lineage(op="select", inputs=[source.ref], strategy="x",
                                                                    rows_in=10, rows_out=3)],
                               strategy="x", budget=3, params={"k": 1}, drops=drops, extra=extra)
    out = version.scan().collect()
    assert out["id"].to_list() == [ids[7], ids[2], ids[5]]
    assert out["response"].to_list() == ["a7", "a2", "a5"]
    assert out["token_mask"].to_list() == [[0, 0, 1], [1, 0], [1]]
    assert out.schema["token_mask"] == pl.List(pl.UInt8)
    assert version.prompt_type == source.prompt_type and version.rows == 3
    assert selection_of(ws, version) == {**selection_of(ws, version), "source": "src@v1", "strategy": "x",
                                          "budget": 3, "params": {"k": 1}}
    assert lineage_of(ws, version)[0]["strategy"] == "x"
    with ws.catalog() as con:
        assert con.execute("SELECT step, reason FROM drops WHERE name = 'picked'").fetchall() == [(0, "below_budget")]


def test_a_new_mask_replaces_the_sources(ws, source):
    ids = source.scan().collect()["id"].to_list()
    first = commit_selection(ws, source, "masked", pl.DataFrame({"id": ids[:2], "rank": [0, 1]}), [], strategy="x",
                             budget=None, params={},
                             extra=pl.DataFrame({"id": ids[:2], "token_mask": [[1], [1]]},
                                                schema={"id": pl.String, "token_mask": pl.List(pl.UInt8)}))
    second = commit_selection(ws, first, "masked", pl.DataFrame({"id": ids[:2], "rank": [1, 0]}), [], strategy="y",
                              budget=None, params={},
                              extra=pl.DataFrame({"id": ids[:2], "token_mask": [[0], [0]]},
                                                 schema={"id": pl.String, "token_mask": pl.List(pl.UInt8)}))
    out = second.scan().collect()
    assert second.ref == "masked@v2" and out["id"].to_list() == [ids[1], ids[0]]
    assert out["token_mask"].to_list() == [[0], [0]] and out.columns.count("token_mask") == 1


def test_bad_selections_are_refused_and_change_nothing(ws, source):
    with pytest.raises(BadInput, match="kept no rows"):
        commit_selection(ws, source, "none", pl.DataFrame({"id": [], "rank": []}, schema={"id": pl.String,
                                                                                          "rank": pl.Int64}),
                         [], strategy="x", budget=1, params={})
    with pytest.raises(BadInput, match="1 selected ids are not rows of src@v1"):
        commit_selection(ws, source, "alien", pl.DataFrame({"id": ["nope"], "rank": [0]}), [], strategy="x",
                         budget=1, params={})
    with ws.catalog() as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM selections").fetchall() == [(0,)]
    assert resolve(ws, "src").rows == 10
