"""Bad input gets a clear, specific error naming the file, the line or field, and the fix; and changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from curate.catalog import readers
from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.shapes import parse_map
from curate.catalog.versions import lineage_of, list_versions
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage, CurateError

from ._helpers import (
    catalog_state,
    drops_of,
    ingest_file,
    ingest_rows,
    rows_of,
    version_dirs,
)


@pytest.fixture(scope="module")
def _populated_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("populated")
    ws = Workspace.open(folder / "ws")
    ingest_rows(ws, folder, [{"prompt": "kept", "response": "yes"}], name="earlier")
    return ws.root, _snapshot(ws)


def _snapshot(ws):
    return catalog_state(ws), [v.ref for v in list_versions(ws)], version_dirs(ws)


@pytest.fixture
def populated(tmp_path, _populated_template):
    """A workspace holding one earlier dataset, and a check that a failed ingest left it exactly as it was."""
    template, before = _populated_template
    ws = Workspace((tmp_path / "ws").resolve())
    shutil.copytree(template, ws.root)
    assert before[1] == ["earlier@v1"]

    def unchanged() -> None:
        assert _snapshot(ws) == before
        assert list(ws.staging_root.iterdir()) == []  # no staging folder left behind

    return ws, unchanged


def _fail(ws, tmp_path, filename: str, content: bytes | str, error=CurateError, **options) -> CurateError:
    path = tmp_path / filename
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(error) as info:
        ingest(ws, str(path), IngestOptions(name="new", **options))
    return info.value


def test_malformed_json_line_names_file_line_and_fix(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "bad.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c",,}\n{"prompt": "d"}\n',
                BadInput)
    assert str(err).startswith("bad.jsonl, line 3: malformed JSON")
    assert "fix or delete that line" in err.hint
    unchanged()


def test_line_that_is_an_array_not_an_object(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "arr.jsonl", '{"prompt": "a"}\n[1, 2, 3]\n', BadInput)
    assert err.message == "arr.jsonl, line 2: expected a JSON object, got an array"
    assert "one JSON object" in err.hint
    unchanged()


def test_missing_prompt_lists_columns_and_suggests_map(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "cols.jsonl", '{"body": "a", "reply": "b", "lang": "en"}\n', BadInput)
    assert "cols.jsonl" in err.message and "cannot find the prompt" in err.message
    assert "body, reply, lang" in err.message
    assert "--map prompt=" in err.hint
    unchanged()


@pytest.mark.parametrize(("filename", "content"), [
    ("empty.jsonl", b""),
    ("blank.jsonl", b"\n  \n\n"),
    ("empty.json", b"[]"),
    ("empty.csv", b""),
    ("header_only.csv", b"prompt,response\n"),
    ("empty.parquet", None),
])
def test_empty_input_is_refused(populated, tmp_path, filename, content):
    ws, unchanged = populated
    if content is None:
        import polars as pl

        pl.DataFrame(schema={"prompt": pl.String}).write_parquet(tmp_path / filename)
        with pytest.raises(BadInput) as info:
            ingest_file(ws, tmp_path / filename, name="new")
        err = info.value
    else:
        err = _fail(ws, tmp_path, filename, content, BadInput)
    assert filename in err.message
    assert "empty" in err.message
    unchanged()


def test_nonexistent_file(populated, tmp_path):
    ws, unchanged = populated
    missing = tmp_path / "nowhere" / "train.jsonl"
    with pytest.raises(BadInput) as info:
        ingest(ws, str(missing), IngestOptions(name="new"))
    assert str(missing) in info.value.message and "no such file" in info.value.message
    assert "check the path" in info.value.hint
    unchanged()


def test_folder_without_data_files(populated, tmp_path):
    ws, unchanged = populated
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("hi")
    with pytest.raises(BadInput, match="no data files") as info:
        ingest(ws, str(tmp_path / "docs"), IngestOptions(name="new"))
    assert "save_to_disk" in info.value.hint
    unchanged()


def test_unknown_suffix_asks_for_format(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "data.txt", '{"prompt": "a"}\n', BadInput)
    assert "data.txt" in err.message and "format" in err.message
    assert "--format" in err.hint
    unchanged()


def test_permission_error_is_reported_with_a_fix(populated, tmp_path, monkeypatch):
    ws, unchanged = populated
    path = tmp_path / "secret.jsonl"
    path.write_text('{"prompt": "a"}\n')
    real_open = open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(readers, "open", guarded_open, raising=False)
    with pytest.raises(BadInput) as info:
        ingest(ws, str(path), IngestOptions(name="new"))
    assert "secret.jsonl" in info.value.message and "permission denied" in info.value.message
    assert "chmod" in info.value.hint
    unchanged()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_error_from_a_real_chmod(populated, tmp_path):
    ws, unchanged = populated
    path = tmp_path / "secret.jsonl"
    path.write_text('{"prompt": "a"}\n')
    path.chmod(0)
    try:
        with pytest.raises(BadInput, match="permission denied"):
            ingest(ws, str(path), IngestOptions(name="new"))
    finally:
        path.chmod(0o644)
    unchanged()


def test_non_utf8_jsonl_names_the_line(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "latin.jsonl", b'{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "caf\xe9"}\n', BadInput)
    assert err.message.startswith("latin.jsonl, line 3: not valid UTF-8")
    assert "iconv" in err.hint
    unchanged()


def test_non_utf8_json_array_names_the_line(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "latin.json", b'[{"prompt": "a"},\n {"prompt": "caf\xe9"}]', BadInput)
    assert err.message.startswith("latin.json, line 2: not valid UTF-8")
    unchanged()


def test_non_utf8_csv_is_refused_naming_the_file(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "latin.csv", b"prompt,response\na,b\ncaf\xe9,c\n", BadInput)
    assert "latin.csv" in err.message and "UTF-8" in err.message
    assert "re-encode" in err.hint
    unchanged()


@pytest.mark.parametrize(("filename", "sep"), [("latin.csv", ","), ("latin.tsv", "\t")])
def test_non_utf8_csv_names_the_line(ws, tmp_path, filename, sep):
    content = f"prompt{sep}response\na{sep}b\nx{sep}y\n".encode() + b"caf\xe9" + f"{sep}c\n".encode()
    err = _fail(ws, tmp_path, filename, content, BadInput)
    assert re.search(r"(line 4|row 3)\b", err.message), err.message


def test_empty_prompt_is_an_error_naming_the_line(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "gaps.jsonl", '{"prompt": "a"}\n{"prompt": "  "}\n{"prompt": null}\n{"response": "r"}\n',
                BadInput)
    assert err.message.startswith("gaps.jsonl, line 2: the prompt is empty or missing (3 such rows")
    assert "--skip-invalid" in err.hint and "--map prompt=" in err.hint
    unchanged()


def test_skip_invalid_drops_and_records_rows_without_prompt(ws, tmp_path):
    rows = [{"prompt": "a"}, {"prompt": ""}, {"prompt": "b"}, {"prompt": None, "response": "orphan"}, {"prompt": "a"}]
    report = ingest_rows(ws, tmp_path, rows, name="gaps", skip_invalid=True)
    assert (report.rows_read, report.invalid, report.duplicates, report.version.rows) == (5, 2, 1, 2)
    assert [r["prompt"] for r in rows_of(report.version)] == ["a", "b"]
    drops = drops_of(ws, report.version)
    assert [(reason, detail) for _, reason, detail in drops] == [
        ("missing_prompt", "gaps.jsonl, line 2"), ("missing_prompt", "gaps.jsonl, line 4"),
        ("duplicate", "gaps.jsonl, line 5")]
    assert lineage_of(ws, report.version)[0]["drop_counts"] == {"duplicate": 1, "missing_prompt": 2}


def test_skip_invalid_with_nothing_left_is_an_error(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "none.jsonl", '{"prompt": ""}\n{"prompt": null}\n', BadInput, skip_invalid=True)
    assert "no rows left" in err.message and "2 invalid rows" in err.message
    unchanged()


def test_empty_message_list_counts_as_missing_prompt(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "chat.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
                + json.dumps({"messages": []}) + "\n", BadInput)
    assert err.message.startswith("chat.jsonl, line 2: the prompt is empty")
    unchanged()


def test_map_to_a_missing_column(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "m.jsonl", '{"question": "q", "solution": "s"}\n', BadUsage,
                mapping={"prompt": "question", "response": "answer_text"})
    assert "--map response=answer_text" in err.message and "'answer_text'" in err.message
    assert err.hint == "columns: question, solution"
    unchanged()


@pytest.mark.parametrize(("items", "fragment"), [(["prompt"], "is not DST=SRC"), (["=question"], "is not DST=SRC"),
                                                 (["text=question"], "is not a canonical column")])
def test_parse_map_rejects_bad_items(items, fragment):
    with pytest.raises(BadUsage, match=fragment):
        parse_map(items)


def test_parse_map_accepts_dst_equals_src():
    assert parse_map(["prompt=q.text", " response = sol "]) == {"prompt": "q.text", "response": "sol"}


def test_mapped_id_that_repeats_for_different_content(populated, tmp_path):
    ws, unchanged = populated
    content = '{"prompt": "a", "uid": "u1"}\n{"prompt": "b", "uid": "u2"}\n{"prompt": "c", "uid": "u1"}\n'
    err = _fail(ws, tmp_path, "ids.jsonl", content, BadInput, mapping={"id": "uid"})
    assert err.message == "ids.jsonl, line 3: the id column 'u1' is used again for different content"
    assert "unique" in err.hint and "--map id" in err.hint
    unchanged()


def test_mapped_id_that_is_empty(populated, tmp_path):
    ws, unchanged = populated
    err = _fail(ws, tmp_path, "ids.jsonl", '{"prompt": "a", "uid": "u1"}\n{"prompt": "b", "uid": null}\n', BadInput,
                mapping={"id": "uid"})
    assert err.message == "ids.jsonl, line 2: the id column is empty"
    unchanged()


def test_mapped_id_repeated_on_an_exact_duplicate_is_just_a_duplicate(ws, tmp_path):
    rows = [{"prompt": "a", "uid": "u1"}, {"prompt": "a", "uid": "u1"}]
    report = ingest_rows(ws, tmp_path, rows, name="ids", mapping={"id": "uid"})
    assert (report.version.rows, report.duplicates) == (1, 1)
    assert drops_of(ws, report.version) == [("u1", "duplicate", "ids.jsonl, line 2")]


def test_invalid_dataset_name_is_refused_before_reading(populated, tmp_path):
    ws, unchanged = populated
    with pytest.raises(BadUsage, match="invalid dataset name 'my data'"):
        ingest(ws, str(tmp_path / "does-not-matter.jsonl"), IngestOptions(name="my data"))
    unchanged()


def test_failure_in_a_later_block_leaves_no_staging_folder(populated, tmp_path, monkeypatch):
    ws, unchanged = populated
    monkeypatch.setattr(readers, "BLOCK_BYTES", 100)
    lines = [json.dumps({"prompt": f"p{i}"}) for i in range(50)] + ["{oops"]
    err = _fail(ws, tmp_path, "late.jsonl", "\n".join(lines) + "\n", BadInput)
    assert err.message.startswith("late.jsonl, line 51: malformed JSON")
    unchanged()


def test_pretty_printed_object_in_jsonl_gives_a_clear_error(populated, tmp_path):
    ws, unchanged = populated
    try:
        ingest_file(ws, _write(tmp_path / "pretty.jsonl", '{"prompt": "a"}\n{\n  "prompt": "b"\n}\n'), name="new")
    except CurateError as exc:
        assert "pretty.jsonl, line" in exc.message
    except Exception as exc:  # noqa: BLE001 - the bug: an internal error escapes
        pytest.fail(f"internal {type(exc).__name__} escaped: {exc}")
    unchanged()


def test_two_objects_on_one_line_give_a_clear_error(populated, tmp_path):
    ws, unchanged = populated
    try:
        ingest_file(ws, _write(tmp_path / "two.jsonl", '{"prompt": "a"} {"prompt": "b"}\n'), name="new")
    except CurateError as exc:
        assert "two.jsonl, line 1" in exc.message
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"internal {type(exc).__name__} escaped: {exc}")
    unchanged()


def test_binary_column_in_parquet_does_not_crash(populated, tmp_path):
    import polars as pl

    ws, unchanged = populated
    path = tmp_path / "blob.parquet"
    pl.DataFrame({"prompt": ["a"], "image": [b"\x89PNG\x00"]}).write_parquet(path)
    try:
        ingest_file(ws, path, name="new")
    except CurateError:
        unchanged()
    except BaseException as exc:  # noqa: BLE001 - PanicException is not an Exception
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")


def _write(path, text):
    path.write_text(text)
    return path
