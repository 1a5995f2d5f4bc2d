"""The score cache: keys, idempotent stores, per-token values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from curate.catalog.scores import load_scores, load_token_scores, params_hash, scorer_key, scorers_of, store_scores


def test_scorer_key_is_scorer_model_and_params():
    key = scorer_key("ifd", "0123456789abcdef0123", {"template": "auto"})
    assert key == f"ifd:0123456789abcdef:{params_hash({'template': 'auto'})}"
    assert scorer_key("length", None, {}) .startswith("length:-:")
    assert key != scorer_key("ifd", "fedcba9876543210", {"template": "auto"})
    assert key != scorer_key("ifd", "0123456789abcdef0123", {"template": "plain"})
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1})


def test_store_is_idempotent_and_keeps_nan(ws):
    frame = pl.DataFrame({"id": ["a", "b", "c"], "value": [1.5, float("nan"), -2.0]})
    assert store_scores(ws, "ds@v1", "k1", "ifd", "h", {"x": 1}, frame) == 3
    assert store_scores(ws, "ds@v1", "k1", "ifd", "h", {"x": 1}, frame) == 0
    more = pl.DataFrame({"id": ["c", "d"], "value": [9.0, 4.0]})
    assert store_scores(ws, "ds@v1", "k1", "ifd", "h", {"x": 1}, more) == 1  # c keeps its first value
    stored = dict(load_scores(ws, "ds@v1", "k1").iter_rows())
    assert stored["a"] == 1.5 and math.isnan(stored["b"]) and stored["c"] == -2.0 and stored["d"] == 4.0
    assert load_scores(ws, "ds@v2", "k1").height == 0 and load_scores(ws, "ds@v1", "other").height == 0
    summary = scorers_of(ws, "ds@v1").row(0, named=True)
    assert summary["scorer"] == "ifd" and summary["rows"] == 4 and summary["nan"] == 1


def test_token_values_round_trip(ws):
    values = pl.DataFrame({"id": ["a", "b"], "values": [np.array([0.5, -1.0], dtype=np.float32), np.zeros(0, np.float32)]},
                          schema={"id": pl.String, "values": pl.List(pl.Float32)})
    store_scores(ws, "ds@v1", "tok:k", "token-clean", "h", {}, pl.DataFrame({"id": ["a", "b"], "value": [-0.25, None]}),
                 values)
    loaded = load_token_scores(ws, "ds@v1", "tok:k")
    assert loaded["id"].to_list() == ["a", "b"] and loaded["values"].to_list() == [[0.5, -1.0], []]
    assert load_token_scores(ws, "ds@v1", "missing").height == 0
    assert not list((ws.root / "scores").rglob(".part-*"))  # nothing half-written is left visible
