"""`curate report REF`: the numbers of the page and its sidecar, hand-checked, and equal to `curate show --json`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from curate.catalog.versions import resolve
from curate.report.build import write_report
from curate.report.steps import cuts_of, histogram, spread
from tests.report.helpers import DOMAINS, selected

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


@pytest.fixture
def report(ws, tmp_path):
    made = selected(ws, tmp_path)
    files = write_report(ws, made.version.ref, tmp_path / "out" / "report.html")
    return made, files, json.loads(files.json.read_text())


def test_the_page_is_one_file_with_no_external_url(report):
    _, files, data = report
    html = files.html.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    assert not EXTERNAL.search(html) and "<script" not in html and "<link" not in html and "<img" not in html
    assert files.json == files.html.with_suffix(".json") and data["kind"] == "version"


def test_numbers_equal_curate_show_json(report, ws):
    made, files, data = report
    command = [sys.executable, "-m", "curate.cli.app", "show", made.version.ref, "--json", "--workspace", str(ws.root)]
    shown = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout)
    assert set(shown) - set(data["show"]) <= {"comparisons"}  # the report shows comparisons in its own section
    for key, value in shown.items():
        if key in data["show"]:
            assert data["show"][key] == value, key
    html = files.html.read_text()
    assert f">{shown['rows']:,}<" in html  # the rows card
    for domain, count in shown["domains"]:
        assert f"<td>{domain}</td><td class=\"num\">{count:,}</td>" in html


def test_each_step_counts_examples_and_domains(report, ws):
    made, _, data = report
    source = resolve(ws, "pool@v1")
    length_step, random_step = data["steps"]
    assert (length_step["rows_in"], length_step["rows_out"]) == (120, 60)
    assert length_step["drop_counts"] == {"below_budget": 60} and random_step["drop_counts"] == {"below_budget": 40}
    # 5 examples per drop reason spread from the cut to the worst, each with its detail and text:
    # drops 1, 16, 30, 45 and 60 of 60, whose details give their rank after the 60 kept
    assert spread(60, 5) == [1, 16, 30, 45, 60] and spread(20, 5) == [1, 6, 10, 15, 20] and spread(3, 5) == [1, 2, 3]
    examples = length_step["dropped_examples"]["below_budget"]
    assert [int(e["detail"].rsplit("rank ", 1)[1]) for e in examples] == [60, 75, 89, 104, 119]
    assert all(e["prompt"] and e["response"] for e in examples)
    # the kept rows of the last step: the version's rows 1, 6, 10, 15 and 20, in order
    order = resolve(ws, made.version.ref).scan().collect()["id"].to_list()
    assert [e["id"] for e in random_step["kept_examples"]] == [order[p - 1] for p in (1, 6, 10, 15, 20)]
    # rows per domain before and after each step, brute-forced from the pool and the drops
    frame = source.scan().select("id", "domain", pl.col("response").str.len_chars().alias("n")).collect()
    with ws.catalog() as con:
        step_of = dict(con.execute("SELECT id, step FROM drops WHERE name = ? AND version = 1",
                                   [made.version.name]).fetchall())
    for k, step in enumerate(data["steps"]):
        flow = step["domains"]
        assert flow["domains"] == list(DOMAINS)
        for d, domain in enumerate(DOMAINS):
            ids = frame.filter(pl.col("domain") == domain)["id"].to_list()
            assert flow["before"][d] == sum(1 for i in ids if step_of.get(i, 99) >= k)
            assert flow["after"][d] == sum(1 for i in ids if step_of.get(i, 99) > k)
    assert sum(data["steps"][-1]["domains"]["after"]) == made.version.rows


def test_the_length_histogram_marks_the_cut_between_kept_and_dropped(report, ws):
    _, _, data = report
    scores = data["steps"][0]["scores"]
    lengths = np.sort(resolve(ws, "pool@v1").scan().select(pl.col("response").str.len_chars()).collect()
                      .to_series().to_numpy().astype(float))
    assert scores["rows"] == 120 and scores["kept"] == 60 and scores["no_score"] == 0
    assert sum(scores["histogram"]["kept"]) == 60 and sum(scores["histogram"]["dropped"]) == 60
    assert scores["histogram"]["edges"][0] == lengths[0] and scores["histogram"]["edges"][-1] == lengths[-1]
    assert scores["cuts"] == [[lengths[-60], "kept ≥"]]  # the 60th longest response


def test_histogram_and_cuts_by_hand():
    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan])
    kept = np.array([False, False, True, True, False])
    hist = histogram(values, kept, bins=3)
    assert hist == {"edges": [0.0, 1.0, 2.0, 3.0], "kept": [0, 0, 2], "dropped": [1, 1, 0]}
    assert cuts_of("length", {}, values, kept) == [[2.0, "kept ≥"]]
    assert cuts_of("perplexity", {}, values, ~kept & np.isfinite(values)) == [[1.0, "kept ≤"]]
    assert cuts_of("fisher", {}, values, np.array([True, False, True, False, False])) == []  # no threshold
    assert cuts_of("dedup", {"threshold": 0.9}, values, kept) == [[0.9, "threshold"]]
    assert cuts_of("difficulty", {"mode": "band", "lo": 0.2, "hi": 0.8}, values, kept) == [[0.2, "lo"], [0.8, "hi"]]


def test_lineage_graph_runs_from_the_file_to_the_version(report):
    _, _, data = report
    graph = data["lineage_graph"]
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    source = next(i for i, k in kinds.items() if k == "source")
    assert source.endswith("pool.jsonl")
    chain = [source, "pool@v1#0", "pool@v1", "pool-length-random@v1#0", "pool-length-random@v1#1",
             "pool-length-random@v1"]
    assert sorted(graph["edges"]) == sorted([a, b] for a, b in zip(chain, chain[1:]))
    assert data["licenses"] == ["CC0-1.0"] and data["sources"] == [source]
