"""Exact duplicates are kept once, counted, and every dropped copy names its source line."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.catalog import readers
from curate.catalog.ids import content_id
from curate.catalog.versions import lineage_of, list_versions
from curate.errors import BadInput

from ._helpers import drops_of, ingest_file, ingest_rows, rows_of, write_lines


def test_exact_duplicates_kept_once_and_counted(ws, tmp_path):
    rows = [{"prompt": "a", "response": "1"}, {"prompt": "b", "response": "2"}, {"prompt": "a", "response": "1"},
            {"prompt": "a", "response": "other"}, {"prompt": "b", "response": "2"}, {"prompt": "a", "response": "1"}]
    report = ingest_rows(ws, tmp_path, rows, name="dup")
    assert (report.rows_read, report.duplicates, report.version.rows) == (6, 3, 3)
    assert [(r["prompt"], r["response"]) for r in rows_of(report.version)] == [("a", "1"), ("b", "2"), ("a", "other")]
    (step,) = lineage_of(ws, report.version)
    assert step["op"] == "ingest"
    assert (step["rows_in"], step["rows_out"]) == (6, 3)
    assert step["drop_counts"] == {"duplicate": 3}


def test_duplicate_drops_name_the_source_line_and_the_kept_id(ws, tmp_path):
    rows = [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}, {"prompt": "b"}]
    report = ingest_rows(ws, tmp_path, rows, name="dup")
    drops = drops_of(ws, report.version)
    assert drops == [(content_id("a", None), "duplicate", "dup.jsonl, line 3"),
                     (content_id("b", None), "duplicate", "dup.jsonl, line 4")]


def test_duplicate_whose_meta_differs_says_so_in_the_detail(ws, tmp_path):
    rows = [{"prompt": "a", "src": "x"}, {"prompt": "a", "src": "y"}, {"prompt": "a", "src": "x"}]
    report = ingest_rows(ws, tmp_path, rows, name="dup")
    assert json.loads(rows_of(report.version)[0]["meta"]) == {"src": "x"}  # the first copy is the one kept
    details = [d for _, _, d in drops_of(ws, report.version)]
    assert len(details) == 2
    assert details[0].startswith("dup.jsonl, line 2; meta differs")
    assert '{"src":"y"}' in details[0]
    assert details[1] == "dup.jsonl, line 3"


def test_no_duplicates_means_no_drop_rows_and_empty_drop_counts(ws, tmp_path):
    report = ingest_rows(ws, tmp_path, [{"prompt": "a"}, {"prompt": "b"}], name="uniq")
    assert report.duplicates == 0
    assert drops_of(ws, report.version) == []
    assert lineage_of(ws, report.version)[0]["drop_counts"] == {}


def test_duplicates_across_files_of_a_folder_name_the_later_file(ws, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_lines(folder / "1.jsonl", ['{"prompt": "a"}', '{"prompt": "b"}'])
    write_lines(folder / "2.jsonl", ['{"prompt": "c"}', '{"prompt": "a"}'])
    report = ingest_file(ws, folder, name="parts")
    assert report.duplicates == 1
    assert [d for _, _, d in drops_of(ws, report.version)] == ["2.jsonl, line 2"]


def test_duplicates_in_json_array_and_csv_name_item_and_row(ws, tmp_path):
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}]))
    report = ingest_file(ws, array, name="arr")
    assert [d for _, _, d in drops_of(ws, report.version)] == ["arr.json, item 3"]
    csv = tmp_path / "rows.csv"
    pl.DataFrame({"prompt": ["x", "x", "y", "x"]}).write_csv(csv)
    report = ingest_file(ws, csv, name="csv")
    assert [d for _, _, d in drops_of(ws, report.version)] == ["rows.csv, row 2", "rows.csv, row 4"]


# ---------------------------------------------------------------- across JSONL blocks


def _messy_lines(count: int, distinct: int) -> tuple[list[str], list[int]]:
    """JSON lines with blank and whitespace-only lines between them; returns (lines, duplicate line numbers)."""
    lines: list[str] = []
    seen: set[int] = set()
    duplicate_lines: list[int] = []
    for i in range(count):
        if i % 7 == 3:
            lines.append("")
        if i % 11 == 5:
            lines.append("   ")
        key = i % distinct
        lines.append(json.dumps({"prompt": f"question {key}", "response": "answer", "n": i}))
        if key in seen:
            duplicate_lines.append(len(lines))
        seen.add(key)
    return lines, duplicate_lines


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_duplicate_line_numbers_exact_across_small_blocks_with_blank_lines(ws, tmp_path, monkeypatch, newline):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 200)
    lines, duplicate_lines = _messy_lines(80, 25)
    path = write_lines(tmp_path / "pool.jsonl", lines, newline)
    assert path.stat().st_size > 20 * 200  # the file really spans many blocks
    report = ingest_file(ws, path, name="pool")
    assert (report.rows_read, report.duplicates, report.version.rows) == (80, 55, 25)
    details = [d for _, _, d in drops_of(ws, report.version)]
    got = sorted(int(d.split(", line ")[1].split(";")[0]) for d in details)
    assert got == duplicate_lines
    assert all("meta differs" in d for d in details)  # every copy carries a different "n"


def test_block_size_does_not_change_kept_rows_or_content_hash(ws, tmp_path, monkeypatch):
    lines, _ = _messy_lines(60, 20)
    path = write_lines(tmp_path / "pool.jsonl", lines)
    whole = ingest_file(ws, path, name="whole").version
    monkeypatch.setattr(readers, "BLOCK_BYTES", 150)
    blocked = ingest_file(ws, path, name="blocked").version
    assert rows_of(blocked) == rows_of(whole)
    assert blocked.content_hash == whole.content_hash


def test_last_line_without_newline_is_read(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"p{i}"}) for i in range(10)))  # no final newline
    version = ingest_file(ws, path, name="tail").version
    assert [r["prompt"] for r in rows_of(version)] == [f"p{i}" for i in range(10)]


def test_malformed_line_in_a_later_block_is_named_exactly(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 200)
    lines, _ = _messy_lines(60, 60)
    bad_line = len(lines) - 5
    lines[bad_line - 1] = '{"prompt": "broken", }'
    path = write_lines(tmp_path / "pool.jsonl", lines)
    with pytest.raises(BadInput) as info:
        ingest_file(ws, path, name="pool")
    assert str(info.value).startswith(f"pool.jsonl, line {bad_line}: malformed JSON")


def test_invalid_utf8_in_a_later_block_is_named_exactly(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 200)
    lines, _ = _messy_lines(60, 60)
    raw = "".join(line + "\n" for line in lines).encode()
    bad_line = len(lines) - 3
    target = lines[bad_line - 1].encode()
    raw = raw.replace(target, target.replace(b"question", b"questi\xf6n"))
    path = tmp_path / "pool.jsonl"
    path.write_bytes(raw)
    with pytest.raises(BadInput) as info:
        ingest_file(ws, path, name="pool")
    assert str(info.value).startswith(f"pool.jsonl, line {bad_line}: not valid UTF-8")


def test_empty_prompt_in_a_later_block_is_named_exactly(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 200)
    lines, _ = _messy_lines(60, 60)
    bad_line = len(lines) - 2
    lines[bad_line - 1] = json.dumps({"prompt": "", "response": "answer", "n": -1})
    path = write_lines(tmp_path / "pool.jsonl", lines)
    with pytest.raises(BadInput) as info:
        ingest_file(ws, path, name="pool")
    assert str(info.value).startswith(f"pool.jsonl, line {bad_line}: the prompt is empty or missing")


# ---------------------------------------------------------------- the answer is part of the content


def _svamp_rows() -> list[dict]:
    """SVAMP-shaped problems (Body, Question, Answer as a number) mapped with --map prompt=Question."""
    items = [("Jack has 5 apples and eats 2.", "How many apples are left?", 3.0),
             ("Jill has 9 apples and eats 4.", "How many apples are left?", 5.0),
             ("Tom has 8 apples and eats 5.", "How many apples are left?", 3.0),  # same question and answer
             ("A box holds 6 pens.", "How many pens are there?", 6.0),
             ("A box holds 2 pens.", "How many pens are there?", 2.0),
             ("A box holds 7 pens.", "How many pens are there?", 7.0)]
    return [{"ID": f"chal-{i}", "Body": b, "Question": q, "Answer": a} for i, (b, q, a) in enumerate(items)]


def test_svamp_rows_with_equal_questions_and_different_answers_all_survive(ws, tmp_path):
    mapping = {"prompt": "Question", "answer": "Answer"}
    report = ingest_rows(ws, tmp_path, _svamp_rows(), name="svamp", mapping=mapping)
    kept = rows_of(report.version)
    assert [(r["prompt"], r["answer"]) for r in kept] == [
        ("How many apples are left?", "3.0"), ("How many apples are left?", "5.0"),
        ("How many pens are there?", "6.0"), ("How many pens are there?", "2.0"), ("How many pens are there?", "7.0")]
    assert len({r["id"] for r in kept}) == 5
    # the one true copy (same question, same answer) is dropped, its Body kept in the drop detail
    assert (report.duplicates, report.duplicates_differing) == (1, 1)
    ((_, reason, detail),) = drops_of(ws, report.version)
    assert reason == "duplicate" and "line 3; meta differs" in detail and "Tom has 8 apples" in detail


def test_rows_differing_only_in_tests_are_not_duplicates(ws, tmp_path):
    rows = [{"prompt": "write f", "response": "def f(): return 1", "tests": t} for t in ("assert f() == 1", "assert f()")]
    rows.append(dict(rows[0]))
    report = ingest_rows(ws, tmp_path, rows, name="code")
    assert (report.version.rows, report.duplicates) == (2, 1)


def test_duplicate_whose_domain_differs_says_so_in_the_detail(ws, tmp_path):
    rows = [{"prompt": "a", "domain": "math"}, {"prompt": "a", "domain": "code"}, {"prompt": "a", "domain": "math"}]
    report = ingest_rows(ws, tmp_path, rows, name="dup")
    assert [r["domain"] for r in rows_of(report.version)] == ["math"]
    details = [d for _, _, d in drops_of(ws, report.version)]
    assert details == ["dup.jsonl, line 2; domain differs from the kept copy: code", "dup.jsonl, line 3"]
    assert report.duplicates_differing == 1


def test_reingesting_the_same_content_makes_no_new_version_unless_asked(ws, tmp_path):
    rows = [{"prompt": "a", "response": "1"}, {"prompt": "b", "response": "2"}]
    first = ingest_rows(ws, tmp_path, rows, name="same", license="MIT")
    again = ingest_rows(ws, tmp_path, rows, name="same")
    assert again.unchanged and again.version == first.version
    assert [v.ref for v in list_versions(ws, "same")] == ["same@v1"]
    relicensed = ingest_rows(ws, tmp_path, rows, name="same", license="CC0-1.0")
    assert not relicensed.unchanged and relicensed.version.ref == "same@v2"
    forced = ingest_rows(ws, tmp_path, rows, name="same", new_version=True)
    assert not forced.unchanged and forced.version.ref == "same@v3"
    changed = ingest_rows(ws, tmp_path, rows[:1], name="same")
    assert not changed.unchanged and changed.version.ref == "same@v4"
