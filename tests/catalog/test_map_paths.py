"""Issue 16.10: `--map` picks list elements (`turns[0]`, `turns[-1]`) and joins columns with a template."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.catalog.shapes import parse_map
from curate.catalog.source_paths import resolve_path, template_expr
from curate.errors import BadUsage

from ._helpers import catalog_state, ingest_file, ingest_rows, rows_of

MT_BENCH = [  # MT-Bench's shape: a list of user turns, no answers
    {"question_id": 81, "category": "writing", "turns": ["Compose a travel blog post.", "Rewrite it in limericks."]},
    {"question_id": 82, "category": "math", "turns": ["What is 2+2?"]},
]


def by(rows, key):
    return {r[key]: r for r in rows}


def test_list_elements_first_and_last(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, MT_BENCH, name="mt", mapping=parse_map(["prompt=turns[0]",
                                                                                "response=turns[-1]"])).version
    rows = by(rows_of(version), "prompt")
    assert rows["Compose a travel blog post."]["response"] == "Rewrite it in limericks."
    assert rows["What is 2+2?"]["response"] == "What is 2+2?"  # one turn: the first is the last
    meta = json.loads(rows["Compose a travel blog post."]["meta"])
    assert meta["turns"] == MT_BENCH[0]["turns"]  # an element was picked: the list stays in meta whole


def test_a_dotted_index_is_an_element_of_a_list_and_out_of_range_is_null():
    frame = pl.DataFrame({"turns": [["a", "b"], ["c"]], "conv": [[{"from": "human", "value": "hi"}]] * 2})
    assert frame.select(resolve_path(frame, "turns.1").expr.alias("v"))["v"].to_list() == ["b", None]
    assert frame.select(resolve_path(frame, "turns[-2]").expr.alias("v"))["v"].to_list() == ["a", None]
    assert frame.select(resolve_path(frame, "conv[0].value").expr.alias("v"))["v"].to_list() == ["hi", "hi"]
    assert resolve_path(frame, "nope[0]") is None


def test_a_column_whose_name_has_dots_or_brackets_is_taken_whole():
    frame = pl.DataFrame({"a.b": ["x"], "c[0]": ["y"]})
    assert frame.select(resolve_path(frame, "a.b").expr)["a.b"].to_list() == ["x"]
    assert frame.select(resolve_path(frame, "c[0]").expr)["c[0]"].to_list() == ["y"]


def test_a_template_joins_columns(ws, tmp_path):
    source = tmp_path / "so.csv"
    source.write_text("Title,Body,Question,Answer\nt1,Alice has 3 apples.,How many?,3\nt2,Bob has {x},How many?,4\n")
    version = ingest_file(ws, source, "so", mapping=parse_map(["prompt=Q: {Body} {Question} {{literal}}",
                                                               "answer=Answer"])).version
    rows = by(rows_of(version), "answer")
    assert rows["3"]["prompt"] == "Q: Alice has 3 apples. How many? {literal}"
    assert rows["4"]["prompt"] == "Q: Bob has {x} How many? {literal}"  # braces in the data are data
    assert json.loads(rows["3"]["meta"]) == {"Title": "t1", "Body": "Alice has 3 apples.", "Question": "How many?"}


def test_template_nulls_render_empty_and_all_null_is_null():
    frame = pl.DataFrame({"a": ["x", None, None], "b": ["y", "z", None]})
    got = frame.select(template_expr(frame, "{a}|{b}", "--map prompt=...").alias("t"))["t"].to_list()
    assert got == ["x|y", "|z", None]


@pytest.mark.parametrize("spec, message, hint", [
    ("prompt=turns", "--map prompt=turns: turns is a list, not text", "turns[0] (the first) or turns[-1]"),
    ("prompt=category[0]", "category is a String value, so it has no element [0]", "use category itself"),
    ("prompt={Body} {Question}", "the template names {Body}, but the source has no column 'Body'", "columns: "),
    ("prompt={turns}", "{turns} is a list, not text", "turns[0]"),
    ("prompt={category", "an unmatched '{'", "{{ or }}"),
    ("prompt=turns[x", "cannot read the path after 'turns'", "col[0]"),
])
def test_bad_paths_and_templates_say_what_to_write(ws, tmp_path, spec, message, hint):
    source = tmp_path / "mt.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in MT_BENCH))
    before = catalog_state(ws)
    with pytest.raises(BadUsage) as error:
        ingest_file(ws, source, "mt", mapping=parse_map([spec]))
    assert message in error.value.message and hint in error.value.hint
    assert catalog_state(ws) == before
