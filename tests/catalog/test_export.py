"""Export: Parquet, JSON lines and `datasets` folders, in the canonical and the trainer layouts."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.catalog.export import export_version, infer_format
from curate.errors import BadInput, BadUsage

from ._helpers import ingest_file, ingest_rows, rows_of

CANONICAL = ["id", "prompt", "response", "answer", "tests", "domain", "meta"]

TEXT_ROWS = [
    {"question": "What is 2+2?", "answer": "Adding.\n#### 4", "level": 1, "tags": {"topic": ["add"]}},
    {"question": "What is 3*3?", "answer": "Multiplying.\n#### 9", "level": 2, "tags": {"topic": []}},
]
CHAT_ROWS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}], "src": "a"},
    {"messages": [{"role": "user", "content": "open question"}], "src": "b"},
]


@pytest.fixture
def text_version(ws, tmp_path):
    return ingest_rows(ws, tmp_path, TEXT_ROWS, name="text").version


@pytest.fixture
def chat_version(ws, tmp_path):
    return ingest_rows(ws, tmp_path, CHAT_ROWS, name="chat").version


def _read(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if fmt == "parquet":
        return pl.read_parquet(path).to_dicts()
    import datasets

    return datasets.load_from_disk(str(path)).to_list()


@pytest.mark.parametrize(("filename", "fmt"), [("out.parquet", "parquet"), ("out.jsonl", "jsonl"), ("out_hf", "hf")])
def test_canonical_export_round_trips_rows_and_columns(text_version, tmp_path, filename, fmt):
    target = tmp_path / "exports" / filename
    report = export_version(text_version, target)
    assert (report.format, report.columns, report.rows, report.path) == (fmt, "canonical", 2, target)
    exported = _read(target, fmt)
    assert [list(r) for r in exported] == [CANONICAL, CANONICAL]
    stored = rows_of(text_version)
    assert [r["id"] for r in exported] == [r["id"] for r in stored]
    assert [r["answer"] for r in exported] == ["4", "9"]
    if fmt == "jsonl":
        assert [r["meta"] for r in exported] == [{"level": 1, "tags": {"topic": ["add"]}},
                                                 {"level": 2, "tags": {"topic": []}}]  # nested objects, not strings
    else:
        assert [r["meta"] for r in exported] == [r["meta"] for r in stored]
    assert sorted(p.name for p in target.parent.iterdir()) == [filename]  # no partial or scratch files


def test_canonical_jsonl_of_message_prompts_writes_message_objects(chat_version, tmp_path):
    export_version(chat_version, tmp_path / "chat-out.jsonl")
    first, second = _read(tmp_path / "chat-out.jsonl", "jsonl")
    assert first["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert (first["response"], first["meta"]) == ("hello", {"src": "a"})
    assert (second["response"], second["meta"]) == (None, {"src": "b"})


def test_prompt_completion_layout_for_text(text_version, tmp_path):
    export_version(text_version, tmp_path / "sft.jsonl", columns="prompt-completion")
    rows = _read(tmp_path / "sft.jsonl", "jsonl")
    assert list(rows[0]) == ["id", "prompt", "completion", "answer", "tests"]
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        ("What is 2+2?", "Adding.\n#### 4"), ("What is 3*3?", "Multiplying.\n#### 9")]


def test_prompt_completion_layout_for_messages_is_conversational(chat_version, tmp_path):
    report = export_version(chat_version, tmp_path / "sft.parquet", columns="prompt-completion", allow_empty=True)
    (first,) = _read(tmp_path / "sft.parquet", "parquet")  # the open question has no response: left out
    assert (report.rows, report.dropped_empty) == (1, 1)
    assert first["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert first["completion"] == [{"role": "assistant", "content": "hello"}]


def test_messages_layout_for_text_wraps_prompt_and_response(text_version, tmp_path):
    export_version(text_version, tmp_path / "chat-out.jsonl", columns="messages")
    rows = _read(tmp_path / "chat-out.jsonl", "jsonl")
    assert list(rows[0]) == ["id", "messages", "answer", "tests"]
    assert rows[0]["messages"] == [{"role": "user", "content": "What is 2+2?"},
                                   {"role": "assistant", "content": "Adding.\n#### 4"}]


def test_messages_layout_for_messages_appends_the_reply(chat_version, tmp_path):
    export_version(chat_version, tmp_path / "chat-out.jsonl", columns="messages", allow_empty=True)
    (first,) = _read(tmp_path / "chat-out.jsonl", "jsonl")
    assert first["messages"] == [*CHAT_ROWS[0]["messages"]]


@pytest.mark.parametrize("layout", ["prompt-completion", "messages"])
def test_sft_layouts_refuse_rows_without_a_response_and_name_the_count(ws, tmp_path, layout):
    rows = [{"prompt": "a", "response": "x"}, {"prompt": "b"}, {"prompt": "c", "response": "  \n"},
            {"prompt": "d", "response": ""}, {"prompt": "e", "response": "y"}]
    version = ingest_rows(ws, tmp_path, rows, name="mixed").version
    target = tmp_path / "sft.jsonl"
    with pytest.raises(BadInput) as info:
        export_version(version, target, columns=layout)
    assert "3 of 5 rows have no response" in str(info.value) and "--allow-empty" in info.value.hint
    assert not target.exists() and list(tmp_path.glob(".sft*")) == []
    report = export_version(version, target, columns=layout, allow_empty=True)
    assert (report.rows, report.dropped_empty) == (2, 3)
    exported = _read(target, "jsonl")
    assert [r["id"] for r in exported] == [r["id"] for r in rows_of(version) if r["prompt"] in ("a", "e")]


def test_prompt_layout_keeps_prompt_only_rows_and_all_empty_sft_export_is_refused(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, [{"prompt": "a"}, {"prompt": "b"}], name="prompts").version
    assert export_version(version, tmp_path / "rl.jsonl", columns="prompt").rows == 2
    with pytest.raises(BadInput, match="no row has a response"):
        export_version(version, tmp_path / "sft.jsonl", columns="prompt-completion", allow_empty=True)


def test_prompt_layout_for_grpo(text_version, tmp_path):
    report = export_version(text_version, tmp_path / "rl.parquet", columns="prompt")
    rows = _read(tmp_path / "rl.parquet", "parquet")
    assert report.rows == 2
    assert list(rows[0]) == ["id", "prompt", "answer", "tests", "domain"]
    assert [(r["prompt"], r["answer"]) for r in rows] == [("What is 2+2?", "4"), ("What is 3*3?", "9")]


def test_hf_folder_in_a_trainer_layout(chat_version, tmp_path):
    import datasets

    export_version(chat_version, tmp_path / "hf", columns="prompt-completion", allow_empty=True)
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded.column_names == ["id", "prompt", "completion", "answer", "tests"]
    assert loaded[0]["completion"] == [{"role": "assistant", "content": "hello"}]


def test_refuses_to_overwrite_without_the_flag(text_version, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("precious\n")
    with pytest.raises(BadUsage) as info:
        export_version(text_version, target)
    assert str(target) in info.value.message and "--overwrite" in info.value.hint
    assert target.read_text() == "precious\n"
    export_version(text_version, target, overwrite=True)
    assert len(_read(target, "jsonl")) == 2


def test_overwrite_replaces_a_datasets_folder(text_version, chat_version, tmp_path):
    target = tmp_path / "hf"
    export_version(text_version, target)
    with pytest.raises(BadUsage):
        export_version(chat_version, target)
    export_version(chat_version, target, overwrite=True)
    assert _read(target, "hf")[0]["response"] == "hello"


@pytest.mark.parametrize(("name", "fmt"), [("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.jsonl", "jsonl"),
                                           ("a.json", "jsonl"), ("a.ndjson", "jsonl"), ("folder", "hf")])
def test_infer_format(name, fmt):
    assert infer_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["data.csv", "data.txt", "data.jsonl.gz"])
def test_infer_format_refuses_unknown_suffix(name):
    with pytest.raises(BadUsage) as info:
        infer_format(Path(name))
    assert name in info.value.message
    assert "--format" in info.value.hint


def test_explicit_format_beats_the_suffix(text_version, tmp_path):
    report = export_version(text_version, tmp_path / "data.txt", format="jsonl")
    assert report.format == "jsonl" and len(_read(tmp_path / "data.txt", "jsonl")) == 2


def test_unknown_format_and_layout_are_bad_usage(text_version, tmp_path):
    with pytest.raises(BadUsage, match="unknown export format 'csv'"):
        export_version(text_version, tmp_path / "x.csv", format="csv")
    with pytest.raises(BadUsage, match="unknown column layout 'alpaca'"):
        export_version(text_version, tmp_path / "x.jsonl", columns="alpaca")
    assert list(tmp_path.glob("x*")) == [] and list(tmp_path.glob(".x*")) == []


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_reingesting_a_canonical_export_gives_identical_ids(ws, text_version, chat_version, tmp_path, fmt):
    suffix = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": ""}[fmt]
    for version in (text_version, chat_version):
        target = tmp_path / f"{version.name}-export{suffix}"
        export_version(version, target)
        again = ingest_file(ws, target, name=f"{version.name}-again").version
        assert again.prompt_type == version.prompt_type
        original, reread = rows_of(version), rows_of(again)
        assert [r["id"] for r in reread] == [r["id"] for r in original]
        assert [(r["prompt"], r["response"], r["answer"]) for r in reread] == [
            (r["prompt"], r["response"], r["answer"]) for r in original]
        assert again.content_hash == version.content_hash


def test_reingesting_a_canonical_export_restores_tests_and_meta(ws, tmp_path):
    rows = [{"text": "Write f.", "code": "def f(): return 1", "test_list": ["assert f() == 1"], "task_id": 3}]
    version = ingest_rows(ws, tmp_path, rows, name="code").version
    export_version(version, tmp_path / "code-export.jsonl")
    again = ingest_file(ws, tmp_path / "code-export.jsonl", name="code-again").version
    assert rows_of(again) == rows_of(version)


@pytest.mark.parametrize("where", ["workspace", "target"])
def test_export_paths_with_a_single_quote(tmp_path, where):
    from curate.catalog.workspace import Workspace

    ws = Workspace.open(tmp_path / ("o'brien" if where == "workspace" else "plain") / "ws")
    version = ingest_rows(ws, tmp_path, [{"prompt": "a"}], name="q").version
    target = tmp_path / ("it's.jsonl" if where == "target" else "out.jsonl")
    report = export_version(version, target)
    assert report.rows == 1 and _read(target, "jsonl")[0]["prompt"] == "a"
