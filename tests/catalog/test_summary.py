"""`summarize`: what `curate show` reports, computed over the shards."""

from __future__ import annotations

from curate.catalog.summary import summarize

from ._helpers import ingest_rows


def test_summary_counts_domains_non_null_lengths_drops_and_samples(ws, tmp_path):
    rows = [{"prompt": "abcd", "response": "xy", "domain": "math"},
            {"prompt": "ab", "response": None, "domain": "math"},
            {"prompt": "abcdef", "response": "xyz", "domain": "code"},
            {"prompt": "abcd", "response": "xy", "domain": "math"},
            {"prompt": "", "response": "orphan", "domain": "chat"}]
    version = ingest_rows(ws, tmp_path, rows, skip_invalid=True).version
    summary = summarize(ws, version, samples=2)
    assert summary.version == version
    assert summary.non_null == {"id": 3, "prompt": 3, "response": 2, "answer": 0, "tests": 0, "domain": 3, "meta": 3}
    assert summary.domains == [("math", 2), ("code", 1)]
    assert summary.lengths["prompt"] == {"min": 2.0, "median": 4.0, "mean": 4.0, "p95": 6.0, "max": 6.0}
    assert summary.lengths["response"]["min"] == 2.0 and summary.lengths["response"]["max"] == 3.0
    assert summary.drops == {"duplicate": 1, "missing_prompt": 1}
    assert [s["prompt"] for s in summary.samples] == ["abcd", "ab"]
    assert summary.lineage[0]["op"] == "ingest"


def test_summary_of_message_prompts_measures_all_turns(ws, tmp_path):
    rows = [{"messages": [{"role": "system", "content": "abc"}, {"role": "user", "content": "de"},
                          {"role": "assistant", "content": "reply"}]},
            {"messages": [{"role": "user", "content": "x"}]}]
    version = ingest_rows(ws, tmp_path, rows).version
    summary = summarize(ws, version, samples=1)
    assert summary.lengths["prompt"]["max"] == 5.0 and summary.lengths["prompt"]["min"] == 1.0
    assert summary.lengths["response"] == {"min": 5.0, "median": 5.0, "mean": 5.0, "p95": 5.0, "max": 5.0}
    assert summary.domains == [(None, 2)]
    assert summary.drops == {}
    assert len(summary.samples) == 1
