"""The real datasets in ../shared/data (skipped cleanly when that folder is absent)."""

from __future__ import annotations

import json

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.summary import summarize
from tests.conftest import shared_file

from ._helpers import metas_of, rows_of

ROLES = {"system", "user", "assistant", "tool"}


def _ingest(ws, path, name):
    return ingest(ws, str(path), IngestOptions(name=name))


def test_gsm8k_train_every_row_has_its_answer(ws, shared):
    path = shared_file(shared, "data/gsm8k/train.jsonl")
    report = _ingest(ws, path, "gsm8k")
    version = report.version
    assert report.shape == "gsm8k"
    assert (report.rows_read, version.rows, report.duplicates) == (7473, 7473, 0)
    summary = summarize(ws, version)
    assert summary.non_null["answer"] == 7473  # what `curate show` reports as answer non-null 7,473/7,473
    assert summary.non_null["response"] == 7473 and summary.non_null["tests"] == 0
    frame = version.scan().collect()
    assert frame["answer"][0] == "72"
    assert frame["answer"].str.contains(r"^-?[0-9][0-9.]*$").all()  # plain numbers: no commas, no text
    first = json.loads(path.open().readline())
    assert frame["prompt"][0] == first["question"] and frame["response"][0] == first["answer"]


def test_mbpp_every_row_has_tests(ws, shared):
    path = shared_file(shared, "data/mbpp/mbpp.jsonl")
    report = _ingest(ws, path, "mbpp")
    assert report.shape == "mbpp"
    assert report.version.rows == 974
    summary = summarize(ws, report.version)
    assert summary.non_null["tests"] == 974
    frame = report.version.scan().collect()
    assert (frame["tests"].str.strip_chars().str.len_chars() > 0).all()
    assert frame["tests"].str.contains("assert").all()
    source = [json.loads(line) for line in path.open()]
    assert frame["tests"][0] == "\n".join(source[0]["test_list"])
    with_setup = next(i for i, row in enumerate(source) if row["test_setup_code"].strip())
    assert frame["tests"][with_setup].startswith(source[with_setup]["test_setup_code"].strip("\n"))


def test_alpaca_demo_drops_its_exact_duplicates(ws, shared):
    path = shared_file(shared, "data/llama_factory_demo/alpaca_en_demo.json")
    report = _ingest(ws, path, "alpaca")
    assert report.shape == "alpaca"
    assert (report.rows_read, report.version.rows, report.duplicates) == (999, 985, 14)
    summary = summarize(ws, report.version)
    assert summary.drops == {"duplicate": 14}
    assert summary.lineage[0]["drop_counts"] == {"duplicate": 14}


def test_glaive_toolcall_demo_is_messages_with_tools_in_meta(ws, shared):
    path = shared_file(shared, "data/llama_factory_demo/glaive_toolcall_en_demo.json")
    report = _ingest(ws, path, "glaive")
    version = report.version
    assert report.shape == "sharegpt"
    assert version.prompt_type == "messages"
    assert report.rows_read == 300 and version.rows + report.duplicates == 300
    rows = rows_of(version)
    assert all("tools" in json.loads(r["meta"]) for r in rows)
    assert all({m["role"] for m in r["prompt"]} <= ROLES for r in rows)
    assert any(m["role"] == "tool" for r in rows for m in r["prompt"])  # observations became tool turns
    assert all(r["prompt"][0]["role"] in ("system", "user") for r in rows)


def test_dpo_demo_keeps_chosen_and_rejected_in_every_row(ws, shared):
    path = shared_file(shared, "data/llama_factory_demo/dpo_en_demo.json")
    report = _ingest(ws, path, "dpo")
    assert report.shape == "dpo"
    assert report.version.prompt_type == "messages"
    rows, metas = rows_of(report.version), metas_of(report.version)
    assert report.version.rows > 0
    assert all("chosen" in m and "rejected" in m for m in metas)
    assert all(r["response"] == m["chosen"]["value"] for r, m in zip(rows, metas))


def test_self_instruct_seed_tasks_one_row_per_instance(ws, shared):
    path = shared_file(shared, "data/self_instruct/seed_tasks.jsonl")
    instances = sum(len(json.loads(line)["instances"]) for line in path.open())
    report = _ingest(ws, path, "seeds")
    assert report.shape == "self-instruct"
    assert report.rows_read == instances
    assert report.version.rows + report.duplicates == instances
