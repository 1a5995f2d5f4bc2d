"""Synthesized rows into versions: streaming sink, duplicates across batches, drops, empty versions."""

from __future__ import annotations

import pytest

from curate.catalog.ids import content_id
from curate.catalog.versions import Lineage
from curate.errors import CurateError
from curate.synth.writer import Drop, NothingSynthesized, SynthRow, commit_rows, row_sink


def step() -> Lineage:
    return Lineage(op="synth", inputs=["x"], strategy="test")


def test_the_sink_streams_batches_and_drops_duplicates_across_them(ws):
    with row_sink(ws) as sink:
        sink.add([SynthRow("p1", "r1"), SynthRow("p2", "r2", domain="d")], [Drop("a", "too_short", "3 words")])
        sink.add([SynthRow("p2", "r2"), SynthRow("p3", "r3")])
        version = sink.commit(ws, "s", step(), "MIT")
    rows = version.scan().collect()
    assert rows["id"].to_list() == [content_id("p1", "r1"), content_id("p2", "r2"), content_id("p3", "r3")]
    assert version.license == "MIT" and version.prompt_type == "text"
    with ws.catalog() as con:
        drops = sorted(con.execute("SELECT id, reason FROM drops WHERE name = 's'").fetchall())
        counts = con.execute("SELECT rows_out, drop_counts FROM lineage WHERE name = 's'").fetchone()
    assert drops == sorted([("a", "too_short"), (content_id("p2", "r2"), "duplicate")])
    assert counts == (3, '{"duplicate": 1, "too_short": 1}')


def test_message_prompts_and_mixing(ws):
    messages = [{"role": "user", "content": "hi"}]
    version = commit_rows(ws, "m", [SynthRow(messages, "hello")], [], step(), None)
    assert version.prompt_type == "messages" and version.scan().collect()["prompt"].to_list() == [messages]
    with pytest.raises(CurateError, match="mix text and message prompts"):
        commit_rows(ws, "mixed", [SynthRow(messages, "a"), SynthRow("text", "b")], [], step(), None)


def test_empty_results(ws):
    with pytest.raises(NothingSynthesized, match='dropped: {"truncated": 1}'):
        commit_rows(ws, "e", [], [Drop("a", "truncated")], step(), None)
    version = commit_rows(ws, "e", [], [Drop("a", "truncated")], step(), None, allow_empty=True,
                          prompt_type="messages")
    assert version.rows == 0 and version.prompt_type == "messages"
    assert version.scan().collect().columns == ["id", "prompt", "response", "answer", "tests", "domain", "meta"]
    assert not list(ws.staging_root.iterdir())  # nothing left behind by the failed attempt
