"""Content ids: the polars fast path must agree with the Python reference byte for byte."""

from __future__ import annotations

import json

import polars as pl
import pytest
import xxhash

from curate.catalog.ids import canonical_json, content_id, content_id_expr
from curate.catalog.schema import MESSAGES

from ._helpers import ingest_file, ingest_rows, rows_of

TRICKY_PAIRS = [
    pytest.param("a", "x", id="plain"),
    pytest.param('say "hi"', 'a "quoted" reply', id="double-quotes"),
    pytest.param("back\\slash \\n not a newline", "C:\\path\\to", id="backslashes"),
    pytest.param("nul\x00 soh\x01 us\x1f del\x7f", "tab\t newline\n cr\r ff\f bs\b", id="control-chars"),
    pytest.param("héllo wörld ñ ç", "日本語のテキスト", id="non-ascii"),
    pytest.param("emoji 😀🎉 family 👨‍👩‍👧", "thumbs 👍🏽", id="emoji"),
    pytest.param("line\u2028separator\u2029paragraph", "x\u2028", id="u2028-u2029"),
    pytest.param("", "", id="empty-strings"),
    pytest.param("prompt only", None, id="none-response"),
    pytest.param("</script> & <b>", "'single' / slash", id="html-ish"),
    pytest.param("e\u0301 combining", "\U0010ffff max codepoint", id="combining-and-max"),
]


@pytest.mark.parametrize(("prompt", "response"), TRICKY_PAIRS)
def test_content_id_expr_matches_reference_for_tricky_text(prompt, response):
    frame = pl.DataFrame({"prompt": [prompt], "response": [response]},
                         schema={"prompt": pl.String, "response": pl.String})
    fast = frame.select(content_id_expr(()).alias("id"))["id"][0]
    assert fast == content_id(prompt, response)


def test_content_id_expr_matches_reference_across_a_whole_column():
    pairs = [p.values for p in TRICKY_PAIRS]
    frame = pl.DataFrame({"prompt": [p for p, _ in pairs], "response": [r for _, r in pairs]},
                         schema={"prompt": pl.String, "response": pl.String})
    fast = frame.select(content_id_expr(()).alias("id"))["id"].to_list()
    assert fast == [content_id(p, r) for p, r in pairs]
    assert len(set(fast)) == len(pairs)


MESSAGE_PROMPTS = [
    pytest.param([{"role": "user", "content": "hi"}], "hello", id="one-turn"),
    pytest.param([{"role": "system", "content": 'be "nice"\\'}, {"role": "user", "content": "q\u2028😀"},
                  {"role": "assistant", "content": "a\n"}, {"role": "user", "content": "日本"}], "r", id="multi-turn"),
    pytest.param([{"role": "user", "content": "ctl\x00\x1f"}], None, id="none-response"),
    pytest.param([{"role": "user", "content": ""}], "", id="empty-content"),
]


@pytest.mark.parametrize(("messages", "response"), MESSAGE_PROMPTS)
def test_content_id_expr_matches_reference_for_message_prompts(messages, response):
    frame = pl.DataFrame({"prompt": [messages], "response": [response]},
                         schema={"prompt": MESSAGES, "response": pl.String})
    fast = frame.select(content_id_expr(()).alias("id"))["id"][0]
    assert fast == content_id(messages, response)


def test_content_id_uses_only_role_and_content_in_that_order():
    reordered = [{"content": "hi", "name": "bob", "role": "user"}]
    assert content_id(reordered, "r") == content_id([{"role": "user", "content": "hi"}], "r")
    assert canonical_json(reordered, "r") == '{"prompt":[{"role":"user","content":"hi"}],"response":"r"}'


def test_content_id_is_xxh3_128_of_compact_canonical_json():
    assert content_id("a", "x") == xxhash.xxh3_128_hexdigest(b'{"prompt":"a","response":"x"}')
    assert content_id("a", "x") == "4406e0cb2ad372641ed4e7ec918462d4"


def test_canonical_json_keeps_non_ascii_raw_and_writes_null():
    assert canonical_json("é😀", None) == '{"prompt":"é😀","response":null}'
    assert content_id("é", None) == xxhash.xxh3_128_hexdigest('{"prompt":"é","response":null}'.encode())


def test_null_response_and_empty_response_get_different_ids():
    assert content_id("p", None) != content_id("p", "")
    assert content_id("p", "r") != content_id("r", "p")


def test_ingested_ids_equal_reference_ids_for_tricky_text(ws, tmp_path):
    pairs = [p.values for p in TRICKY_PAIRS if p.values[0]]  # an empty prompt is refused by ingest
    report = ingest_rows(ws, tmp_path, [{"prompt": p, "response": r} for p, r in pairs])
    rows = rows_of(report.version)
    assert [(r["prompt"], r["response"]) for r in rows] == pairs
    assert [r["id"] for r in rows] == [content_id(p, r) for p, r in pairs]


def test_ingested_ids_equal_reference_ids_for_message_prompts(ws, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "q\u2028 \"x\" 😀"}, {"role": "assistant", "content": "a\\b"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "only"}]}]
    report = ingest_rows(ws, tmp_path, rows)
    stored = rows_of(report.version)
    assert stored[0]["id"] == content_id([{"role": "user", "content": "q\u2028 \"x\" 😀"}], "a\\b")
    assert stored[1]["id"] == content_id([{"role": "system", "content": "s"}, {"role": "user", "content": "only"}], None)


def test_same_examples_get_same_ids_from_jsonl_csv_and_parquet(ws, tmp_path):
    pairs = [("q, with comma", 'r "quoted"'), ("ünï\ncode", "😀")]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    parquet = tmp_path / "a.parquet"
    pl.DataFrame({"prompt": [p for p, _ in pairs], "response": [r for _, r in pairs]}).write_parquet(parquet)
    csv = tmp_path / "a.csv"
    pl.DataFrame({"prompt": [p for p, _ in pairs], "response": [r for _, r in pairs]}).write_csv(csv)
    expected = [content_id(p, r) for p, r in pairs]
    for index, path in enumerate((jsonl, parquet, csv)):
        version = ingest_file(ws, path, name=f"fmt{index}").version
        assert [row["id"] for row in rows_of(version)] == expected, path.name


# ---------------------------------------------------------------- answer and tests are content


def test_answer_and_tests_join_the_canonical_json_only_when_present():
    assert canonical_json("q", None, "7") == '{"prompt":"q","response":null,"answer":"7"}'
    assert canonical_json("q", "r", None, "assert f()") == '{"prompt":"q","response":"r","tests":"assert f()"}'
    assert canonical_json("q", "r", "", "") == '{"prompt":"q","response":"r","answer":"","tests":""}'
    # without an answer or tests the id is the one prompt and response always gave
    assert content_id("a", "x", None, None) == "4406e0cb2ad372641ed4e7ec918462d4"


def test_rows_differing_only_in_answer_or_tests_get_different_ids():
    ids = {content_id("q", None), content_id("q", None, "5"), content_id("q", None, "6"),
           content_id("q", None, None, "assert 1"), content_id("q", None, "5", "assert 1"), content_id("q", None, "")}
    assert len(ids) == 6


CONTENT_ROWS = [
    ("q", None, None, None), ("q", None, "7", None), ("q", "r", None, "assert f() == 1\nassert g()"),
    ('say "hi"', "C:\\x", 'a "quoted" answer\u2028😀', "tab\t nul\x00"), ("q", "r", "", ""), ("p", None, "}", "{"),
]


def test_content_id_expr_matches_reference_with_answer_and_tests():
    frame = pl.DataFrame([list(r) for r in CONTENT_ROWS], schema=["prompt", "response", "answer", "tests"],
                         orient="row")
    fast = frame.select(content_id_expr().alias("id"))["id"].to_list()
    assert fast == [content_id(*row) for row in CONTENT_ROWS]
    only_answer = frame.drop("tests").select(content_id_expr(("answer",)).alias("id"))["id"].to_list()
    assert only_answer == [content_id(p, r, a) for p, r, a, _ in CONTENT_ROWS]


def test_ingested_ids_cover_answer_and_tests(ws, tmp_path):
    rows = [{"prompt": p, "response": r, "answer": a, "tests": t} for p, r, a, t in CONTENT_ROWS]
    stored = rows_of(ingest_rows(ws, tmp_path, rows).version)
    assert [r["id"] for r in stored] == [content_id(*row) for row in CONTENT_ROWS]
