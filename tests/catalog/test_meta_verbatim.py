"""`meta` keeps each row's unmapped fields as that row wrote them, not as the block's unified struct."""

from __future__ import annotations

import json

from curate.catalog import readers
from curate.catalog.export import export_version

from ._helpers import ingest_file, ingest_rows, metas_of, write_lines

IFEVAL_ROWS = [  # IFEval-shaped: each instruction's kwargs object has its own keys, or none
    {"key": 1000, "prompt": "Write a 300+ word summary without commas.",
     "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
                             "length_constraints:number_words"],
     "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]},
    {"key": 1001, "prompt": "Repeat the request, then answer it.", "instruction_id_list": ["combination:repeat_prompt"],
     "kwargs": [{"prompt_to_repeat": "Repeat the request, then answer it.", "language": None}]},
    {"key": 1002, "prompt": "Answer in lowercase.", "instruction_id_list": ["change_case:english_lowercase"],
     "kwargs": [{}]},
]


def _leftovers(row: dict, used: tuple[str, ...] = ("prompt",)) -> dict:
    return {k: v for k, v in row.items() if k not in used}


def test_ifeval_kwargs_stay_as_written_empty_objects_and_explicit_nulls_included(ws, tmp_path):
    metas = metas_of(ingest_rows(ws, tmp_path, IFEVAL_ROWS, name="ifeval").version)
    assert metas == [_leftovers(r) for r in IFEVAL_ROWS]
    assert metas[0]["kwargs"][0] == {} and metas[2]["kwargs"] == [{}]
    assert metas[1]["kwargs"][0]["language"] is None  # a null the row wrote is kept


def test_json_array_source_keeps_meta_verbatim(ws, tmp_path):
    path = tmp_path / "ifeval.json"
    path.write_text(json.dumps(IFEVAL_ROWS))
    assert metas_of(ingest_file(ws, path, name="arr").version) == [_leftovers(r) for r in IFEVAL_ROWS]


def test_a_key_some_rows_lack_is_not_added_to_them(ws, tmp_path):
    rows = [{"prompt": "a", "source": "web"}, {"prompt": "b"}, {"prompt": "c", "source": None},
            {"prompt": "d", "opts": {"t": 1}}, {"prompt": "e", "opts": {"k": None}}]
    assert metas_of(ingest_rows(ws, tmp_path, rows).version) == [_leftovers(r) for r in rows]


def test_rows_map_to_their_own_lines_across_blocks_and_blank_lines(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 120)
    rows = [{"prompt": f"q{i}", "n": i, "opts": ({"a": i} if i % 3 else {})} for i in range(30)]
    lines = []
    for i, row in enumerate(rows):
        if i % 4 == 1:
            lines.append("   ")
        lines.append(json.dumps(row))
    metas = metas_of(ingest_file(ws, write_lines(tmp_path / "blocks.jsonl", lines, "\r\n"), name="blocks").version)
    assert metas == [_leftovers(r) for r in rows]


def test_struct_path_mapping_removes_only_the_fields_it_used(ws, tmp_path):
    rows = [{"q": {"text": "t1", "difficulty": 3, "hint": None}, "info": {"domain": "math", "grade": "hard"}},
            {"q": {"text": "t2"}, "info": {"domain": "code"}}]
    version = ingest_rows(ws, tmp_path, rows, mapping={"prompt": "q.text"}, domain_field="info.domain").version
    assert metas_of(version) == [{"q": {"difficulty": 3, "hint": None}, "info": {"grade": "hard"}},
                                 {"q": {}, "info": {}}]


def test_meta_survives_a_jsonl_export_and_a_second_ingest(ws, tmp_path):
    first = ingest_rows(ws, tmp_path, IFEVAL_ROWS, name="ifeval").version
    exported = export_version(first, tmp_path / "export.jsonl").path
    again = ingest_file(ws, exported, name="again").version
    assert metas_of(again) == metas_of(first)


def test_meta_is_rebuilt_in_python_when_duckdb_returns_broken_utf8(ws, tmp_path, monkeypatch):
    """Fuzzing found DuckDB's JSON functions handing back invalid UTF-8 for some text: the Python
    merge patch then rebuilds the same meta (here forced, on the IFEval rows)."""
    from curate.catalog import meta

    def broken(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xc2(", 0, 1, "invalid continuation byte")

    monkeypatch.setattr(meta, "query_frame", broken)
    metas = metas_of(ingest_rows(ws, tmp_path, IFEVAL_ROWS, name="ifeval").version)
    assert metas == [_leftovers(r) for r in IFEVAL_ROWS]
    assert metas[1]["kwargs"][0]["language"] is None


def test_python_merge_patch_follows_rfc_7386():
    from curate.catalog.meta import _merge_patch

    # RFC 7386, appendix A (a selection)
    assert _merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert _merge_patch({"a": "b"}, {"a": None}) == {}
    assert _merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert _merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert _merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert _merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert _merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_python_rebuild_reads_a_first_line_with_a_byte_order_mark():
    from curate.catalog.meta import _rebuild

    assert _rebuild('\ufeff{"prompt": "p", "a": 1, "b": {"c": 2, "d": 3}}', {"prompt"}, {"b": {"c"}}, False) == \
        '{"a":1,"b":{"d":3}}'
