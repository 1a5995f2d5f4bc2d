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


def test_blank_responses_are_not_counted_as_present(ws, tmp_path):
    rows = [{"prompt": "a", "response": "ok"}, {"prompt": "b", "response": ""}, {"prompt": "c", "response": " \n\t"},
            {"prompt": "d", "response": None}]
    summary = summarize(ws, ingest_rows(ws, tmp_path, rows).version)
    assert summary.non_null["response"] == 3
    assert summary.present["response"] == 1 and summary.present["prompt"] == 4 and summary.present["answer"] == 0


def test_every_domain_is_listed_most_rows_first(ws, tmp_path):
    rows = [{"prompt": f"p{d}-{i}", "domain": f"d{d:02d}"} for d in range(25) for i in range(1 + d % 3)]
    rows.append({"prompt": "no domain"})
    summary = summarize(ws, ingest_rows(ws, tmp_path, rows).version)
    assert len(summary.domains) == 26
    assert sum(n for _, n in summary.domains) == len(rows)
    counts = [n for _, n in summary.domains]
    assert counts == sorted(counts, reverse=True)
    assert summary.domains[:2] == [("d02", 3), ("d05", 3)] and summary.domains[-1] == (None, 1)


def test_answer_conflicts_count_prompts_and_rows_with_examples(ws, tmp_path):
    rows = [{"prompt": "q1", "answer": "1"}, {"prompt": "q1", "answer": "2"}, {"prompt": "q2", "answer": "5"},
            {"prompt": "q3", "answer": "7"}, {"prompt": "q3", "answer": "8"}, {"prompt": "q3", "answer": "9"},
            {"prompt": "q2", "response": "r", "answer": "5"}, {"prompt": "q4", "answer": None},
            {"prompt": "q4", "answer": "3"}]
    summary = summarize(ws, ingest_rows(ws, tmp_path, rows).version)
    conflicts = summary.conflicts
    assert (conflicts.prompts, conflicts.rows) == (2, 5)  # q1 (2 rows) and q3 (3 rows); q2 agrees, q4 has one answer
    assert [(e["prompt"], e["answers"]) for e in conflicts.examples] == [("q1", ["1", "2"]), ("q3", ["7", "8", "9"])]
    assert all(len(e["ids"]) == len(e["answers"]) for e in conflicts.examples)


def test_answer_conflicts_of_message_prompts(ws, tmp_path):
    chat = [{"role": "user", "content": "hi"}]
    rows = [{"prompt": chat, "answer": "a"}, {"prompt": chat, "answer": "b"},
            {"prompt": [{"role": "user", "content": "other"}], "answer": "a"}]
    summary = summarize(ws, ingest_rows(ws, tmp_path, rows).version)
    assert (summary.conflicts.prompts, summary.conflicts.rows) == (1, 2)
    assert summary.conflicts.examples[0]["answers"] == ["a", "b"]
