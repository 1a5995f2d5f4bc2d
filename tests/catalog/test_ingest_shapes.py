"""Ingest recognises the common dataset shapes and maps them onto the canonical columns."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.catalog.ids import content_id
from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.schema import CANONICAL_COLUMNS
from curate.errors import BadUsage

from ._helpers import ingest_file, ingest_rows, metas_of, rows_of, write_jsonl


def test_prompt_response_with_leftover_columns_kept_verbatim_in_meta(ws, tmp_path):
    rows = [{"prompt": "p1", "response": "r1", "source": "web", "score": 0.5,
             "tags": ["a", "b"], "nested": {"k": [1, 2], "deep": {"x": None, "y": "é"}}},
            {"prompt": "p2", "response": "r2", "source": "book", "score": 2.0, "tags": [],
             "nested": {"k": [], "deep": {"x": 3, "y": None}}}]
    report = ingest_rows(ws, tmp_path, rows)
    version = report.version
    assert report.shape == "prompt-response"
    assert version.prompt_type == "text"
    assert tuple(version.columns) == CANONICAL_COLUMNS
    stored = rows_of(version)
    assert [(r["prompt"], r["response"]) for r in stored] == [("p1", "r1"), ("p2", "r2")]
    assert metas_of(version) == [{k: v for k, v in row.items() if k not in ("prompt", "response")} for row in rows]
    assert all(r["answer"] is None and r["tests"] is None and r["domain"] is None for r in stored)


def test_field_whose_type_varies_is_kept_in_meta_as_its_json_text(ws, tmp_path):
    # documented in readers.py: a field Arrow cannot type is kept as JSON text
    rows = [{"prompt": "p1", "extra": [1, {"deep": None}]}, {"prompt": "p2", "extra": "plain"}]
    metas = metas_of(ingest_rows(ws, tmp_path, rows).version)
    assert json.loads(metas[0]["extra"]) == [1, {"deep": None}]
    assert metas[1]["extra"] == "plain"


def test_row_without_leftover_columns_has_empty_meta_object(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, [{"prompt": "p", "response": "r"}]).version
    assert rows_of(version)[0]["meta"] == "{}"


def test_trl_prompt_completion(ws, tmp_path):
    report = ingest_rows(ws, tmp_path, [{"prompt": "2+2?", "completion": "4"}])
    row = rows_of(report.version)[0]
    assert (row["prompt"], row["response"], row["meta"]) == ("2+2?", "4", "{}")
    assert row["id"] == content_id("2+2?", "4")


@pytest.mark.parametrize(("prompt_key", "response_key"), [("question", "response"), ("problem", "solution"),
                                                            ("query", "output"), ("prompt", "target")])
def test_prompt_and_response_aliases(ws, tmp_path, prompt_key, response_key):
    row = rows_of(ingest_rows(ws, tmp_path, [{prompt_key: "P", response_key: "R"}]).version)[0]
    assert (row["prompt"], row["response"]) == ("P", "R")


def test_prompt_only_rows_have_null_response(ws, tmp_path):
    report = ingest_rows(ws, tmp_path, [{"prompt": "p", "answer": "7"}])
    row = rows_of(report.version)[0]
    assert report.shape == "prompt-only"
    assert (row["response"], row["answer"]) == (None, "7")


def test_alpaca_input_joined_after_blank_line_only_when_non_empty(ws, tmp_path):
    rows = [{"instruction": "Translate.", "input": "bonjour", "output": "hello"},
            {"instruction": "Say hi.", "input": "", "output": "hi"},
            {"instruction": "Count.", "input": "   ", "output": "3"},
            {"instruction": "Wave.", "input": None, "output": "o/"}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "alpaca"
    stored = rows_of(report.version)
    assert [r["prompt"] for r in stored] == ["Translate.\n\nbonjour", "Say hi.", "Count.", "Wave."]
    assert [r["response"] for r in stored] == ["hello", "hi", "3", "o/"]
    assert all(r["meta"] == "{}" for r in stored)


def test_alpaca_without_input_column(ws, tmp_path):
    row = rows_of(ingest_rows(ws, tmp_path, [{"instruction": "Do it.", "output": "done", "lang": "en"}]).version)[0]
    assert (row["prompt"], row["response"], json.loads(row["meta"])) == ("Do it.", "done", {"lang": "en"})


def test_sharegpt_roles_system_column_and_last_assistant_turn(ws, tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "find a recipe"},
                               {"from": "function_call", "value": '{"name": "search"}'},
                               {"from": "observation", "value": '{"hits": 2}'},
                               {"from": "gpt", "value": "I found two."}],
             "system": "You are a chef.", "tools": "[search]"}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "sharegpt"
    assert report.version.prompt_type == "messages"
    row = rows_of(report.version)[0]
    expected_prompt = [{"role": "system", "content": "You are a chef."}, {"role": "user", "content": "find a recipe"},
                       {"role": "assistant", "content": '{"name": "search"}'},
                       {"role": "tool", "content": '{"hits": 2}'}]
    assert row["prompt"] == expected_prompt
    assert row["response"] == "I found two."
    assert json.loads(row["meta"]) == {"tools": "[search]"}
    assert row["id"] == content_id(expected_prompt, "I found two.")


def test_sharegpt_empty_system_adds_no_system_message(ws, tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "system": ""}]
    row = rows_of(ingest_rows(ws, tmp_path, rows).version)[0]
    assert row["prompt"] == [{"role": "user", "content": "q"}]


def test_sharegpt_last_turn_not_assistant_keeps_whole_conversation_as_prompt(ws, tmp_path):
    conversation = [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}]
    row = rows_of(ingest_rows(ws, tmp_path, [{"conversations": conversation}]).version)[0]
    assert row["response"] is None
    assert row["prompt"] == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                             {"role": "user", "content": "q2"}]


def test_openai_messages_last_assistant_turn_is_response(ws, tmp_path):
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                          {"role": "assistant", "content": "a"}], "source": "x"},
            {"messages": [{"role": "user", "content": "u2"}]}]
    report = ingest_rows(ws, tmp_path, rows)
    assert (report.shape, report.version.prompt_type) == ("openai-messages", "messages")
    first, second = rows_of(report.version)
    assert first["prompt"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert first["response"] == "a"
    assert json.loads(first["meta"]) == {"source": "x"}
    assert (second["prompt"], second["response"]) == ([{"role": "user", "content": "u2"}], None)


def test_gsm8k_answer_is_number_after_hashes_with_commas_stripped(ws, tmp_path):
    rows = [{"question": "How many?", "answer": "3 * 411 = <<3*411=1233>>1233 plus one\n#### 1,234"},
            {"question": "Loss?", "answer": "It fell.\n#### -5"},
            {"question": "Big?", "answer": "work\n####  1,000,000  "}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "gsm8k"
    stored = rows_of(report.version)
    assert [r["answer"] for r in stored] == ["1234", "-5", "1000000"]
    assert stored[0]["response"] == rows[0]["answer"]  # the worked solution is the SFT target, verbatim
    assert stored[0]["prompt"] == "How many?"


def test_mbpp_text_code_test_list_with_setup_code_prepended(ws, tmp_path):
    rows = [{"text": "Write add.", "code": "def add(a, b):\n    return a + b", "task_id": 7,
             "test_setup_code": "import math", "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]},
            {"text": "Write neg.", "code": "def neg(a):\n    return -a", "task_id": 8,
             "test_setup_code": "", "test_list": ["assert neg(1) == -1"]}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "mbpp"
    first, second = rows_of(report.version)
    assert (first["prompt"], first["response"]) == ("Write add.", "def add(a, b):\n    return a + b")
    assert first["tests"] == "import math\nassert add(1, 2) == 3\nassert add(0, 0) == 0"
    assert second["tests"] == "assert neg(1) == -1"
    assert json.loads(first["meta"]) == {"task_id": 7}


def test_dpo_string_pairs_keep_chosen_and_rejected_verbatim_in_meta(ws, tmp_path):
    rows = [{"prompt": "Which is better?", "chosen": "The good one.", "rejected": "The bad one."}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "dpo"
    row = rows_of(report.version)[0]
    assert (row["prompt"], row["response"]) == ("Which is better?", "The good one.")
    assert json.loads(row["meta"]) == {"chosen": "The good one.", "rejected": "The bad one."}


def test_dpo_sharegpt_pairs_have_message_prompt_and_chosen_text_response(ws, tmp_path):
    chosen = {"from": "gpt", "value": "good"}
    rejected = {"from": "gpt", "value": "bad"}
    rows = [{"conversations": [{"from": "human", "value": "q"}], "chosen": chosen, "rejected": rejected}]
    report = ingest_rows(ws, tmp_path, rows)
    assert (report.shape, report.version.prompt_type) == ("dpo", "messages")
    row = rows_of(report.version)[0]
    assert (row["prompt"], row["response"]) == ([{"role": "user", "content": "q"}], "good")
    assert json.loads(row["meta"]) == {"chosen": chosen, "rejected": rejected}


def test_self_instruct_seed_gives_one_row_per_instance(ws, tmp_path):
    rows = [{"id": "seed_task_0", "name": "greet", "instruction": "Greet the user.",
             "instances": [{"input": "", "output": "Hello!"}, {"input": "Name: Ada", "output": "Hello, Ada!"}],
             "is_classification": False},
            {"id": "seed_task_1", "name": "add", "instruction": "Add.", "instances": [{"input": "1+1", "output": "2"}],
             "is_classification": False}]
    report = ingest_rows(ws, tmp_path, rows)
    assert report.shape == "self-instruct"
    assert report.rows_read == 3
    stored = rows_of(report.version)
    assert [(r["prompt"], r["response"]) for r in stored] == [
        ("Greet the user.", "Hello!"), ("Greet the user.\n\nName: Ada", "Hello, Ada!"), ("Add.\n\n1+1", "2")]
    assert [json.loads(r["meta"])["id"] for r in stored] == ["seed_task_0", "seed_task_0", "seed_task_1"]


def test_map_names_columns_of_an_unknown_shape_including_a_struct_path(ws, tmp_path):
    rows = [{"q": {"text": "What is 6*7?"}, "sol": "42", "final": 42, "checks": ["assert f() == 42"], "src": "x"}]
    report = ingest_rows(ws, tmp_path, rows, mapping={"prompt": "q.text", "response": "sol", "answer": "final",
                                                      "tests": "checks"})
    assert report.shape == "mapped"
    row = rows_of(report.version)[0]
    assert (row["prompt"], row["response"], row["answer"], row["tests"]) == (
        "What is 6*7?", "42", "42", "assert f() == 42")
    assert json.loads(row["meta"]) == {"src": "x"}


def test_map_overrides_a_detected_column(ws, tmp_path):
    rows = [{"prompt": "p", "response": "short", "long_response": "a longer one"}]
    report = ingest_rows(ws, tmp_path, rows, mapping={"response": "long_response"})
    row = rows_of(report.version)[0]
    assert report.shape == "prompt-response+map"
    assert row["response"] == "a longer one"
    assert row["id"] == content_id("p", "a longer one")


def test_map_id_column_replaces_content_id(ws, tmp_path):
    rows = [{"prompt": "a", "uid": "ex-1"}, {"prompt": "b", "uid": "ex-2"}]
    version = ingest_rows(ws, tmp_path, rows, mapping={"id": "uid"}).version
    assert [r["id"] for r in rows_of(version)] == ["ex-1", "ex-2"]


def test_fixed_domain_and_license(ws, tmp_path):
    report = ingest_rows(ws, tmp_path, [{"prompt": "a"}, {"prompt": "b"}], domain="math", license="apache-2.0")
    assert [r["domain"] for r in rows_of(report.version)] == ["math", "math"]
    assert report.version.license == "apache-2.0"


def test_domain_field_takes_domain_from_a_column(ws, tmp_path):
    rows = [{"prompt": "a", "topic": "math", "x": 1}, {"prompt": "b", "topic": "code", "x": 2}]
    version = ingest_rows(ws, tmp_path, rows, domain_field="topic").version
    stored = rows_of(version)
    assert [r["domain"] for r in stored] == ["math", "code"]
    assert [json.loads(r["meta"]) for r in stored] == [{"x": 1}, {"x": 2}]


def test_domain_column_is_used_without_options(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, [{"prompt": "a", "domain": "chat"}]).version
    row = rows_of(version)[0]
    assert (row["domain"], row["meta"]) == ("chat", "{}")


def test_domain_and_domain_field_are_exclusive(ws, tmp_path):
    with pytest.raises(BadUsage, match="exclusive"):
        ingest_rows(ws, tmp_path, [{"prompt": "a", "topic": "t"}], domain="math", domain_field="topic")


def test_domain_field_that_does_not_exist_lists_columns(ws, tmp_path):
    with pytest.raises(BadUsage) as info:
        ingest_rows(ws, tmp_path, [{"prompt": "a", "topic": "t"}], domain_field="subject")
    assert "subject" in str(info.value) and "prompt, topic" in str(info.value)


def test_struct_path_mapping_keeps_sibling_fields_in_meta(ws, tmp_path):
    rows = [{"q": {"text": "t", "difficulty": 3}, "info": {"domain": "math", "grade": "hard"}}]
    version = ingest_rows(ws, tmp_path, rows, mapping={"prompt": "q.text"}, domain_field="info.domain").version
    row = rows_of(version)[0]
    assert (row["prompt"], row["domain"]) == ("t", "math")
    meta = row["meta"]
    assert "difficulty" in meta and "grade" in meta, meta


def test_tests_column_of_a_generic_source_becomes_canonical_tests(ws, tmp_path):
    rows = [{"prompt": "Write f.", "response": "def f(): return 1", "tests": "assert f() == 1"}]
    row = rows_of(ingest_rows(ws, tmp_path, rows).version)[0]
    assert row["tests"] == "assert f() == 1"


def test_progress_reports_cumulative_rows_read(ws, tmp_path, monkeypatch):
    from curate.catalog import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", 100)
    calls: list[int] = []
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"prompt number {i}"} for i in range(30)])
    report = ingest(ws, str(path), IngestOptions(name="p"), progress=calls.append)
    assert len(calls) > 3
    assert calls == sorted(calls) and calls[-1] == report.rows_read == 30


# ---------------------------------------------------------------- file formats

PAIRS = [("p1", "r1"), ("p, two", "r\n2"), ("p3", "r3")]


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"prompt": [p for p, _ in PAIRS], "response": [r for _, r in PAIRS],
                         "n": [str(i) for i in range(len(PAIRS))]})


def _ingest(ws, path, name="ds", **options):
    return ingest_file(ws, path, name, **options).version


def _check_pairs(version):
    stored = rows_of(version)
    assert [(r["prompt"], r["response"]) for r in stored] == PAIRS
    assert [r["id"] for r in stored] == [content_id(p, r) for p, r in PAIRS]
    assert [json.loads(r["meta"])["n"] for r in stored] == ["0", "1", "2"]


def test_format_json_array(ws, tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(_frame().to_dicts(), indent=2))
    _check_pairs(_ingest(ws, path))


def test_format_json_object_holding_a_list(ws, tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"version": 1, "data": _frame().to_dicts()}))
    _check_pairs(_ingest(ws, path))


def test_format_dot_json_with_json_lines_inside(ws, tmp_path):
    path = tmp_path / "data.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in _frame().to_dicts()))
    _check_pairs(_ingest(ws, path))


def test_format_csv_with_quoted_commas_and_newlines(ws, tmp_path):
    path = tmp_path / "data.csv"
    _frame().write_csv(path)
    _check_pairs(_ingest(ws, path))


def test_format_tsv(ws, tmp_path):
    path = tmp_path / "data.tsv"
    _frame().write_csv(path, separator="\t")
    _check_pairs(_ingest(ws, path))


def test_format_parquet(ws, tmp_path):
    path = tmp_path / "data.parquet"
    _frame().write_parquet(path)
    _check_pairs(_ingest(ws, path))


def test_format_option_overrides_the_suffix(ws, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("".join(json.dumps(r) + "\n" for r in _frame().to_dicts()))
    _check_pairs(_ingest(ws, path, format="jsonl"))


def test_format_folder_of_files_in_name_order(ws, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = _frame()
    frame.head(1).write_ndjson(folder / "a.jsonl")
    frame.slice(1, 1).write_csv(folder / "b.csv")
    frame.slice(2).write_parquet(folder / "c.parquet")
    (folder / "README.md").write_text("not data")
    _check_pairs(_ingest(ws, folder))


def test_format_save_to_disk_dataset(ws, tmp_path):
    import datasets

    datasets.Dataset.from_polars(_frame()).save_to_disk(str(tmp_path / "hf"))
    _check_pairs(_ingest(ws, tmp_path / "hf"))


def test_format_save_to_disk_dataset_dict_defaults_to_train(ws, tmp_path):
    import datasets

    frame = _frame()
    test = datasets.Dataset.from_polars(pl.DataFrame({"prompt": ["other"], "response": ["x"], "n": ["9"]}))
    datasets.DatasetDict({"train": datasets.Dataset.from_polars(frame), "test": test}).save_to_disk(str(tmp_path / "dd"))
    _check_pairs(_ingest(ws, tmp_path / "dd"))
    picked = rows_of(_ingest(ws, tmp_path / "dd", name="picked", split="test"))
    assert [r["prompt"] for r in picked] == ["other"]


def test_format_dataset_dict_without_train_split_names_its_splits(ws, tmp_path):
    import datasets

    part = datasets.Dataset.from_polars(_frame())
    datasets.DatasetDict({"validation": part, "test": part}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(BadUsage) as info:
        _ingest(ws, tmp_path / "dd")
    assert "['test', 'validation']" in str(info.value)
    assert "--split" in info.value.hint
