"""Trainer exports (verl, TRL preference and conversational, LLaMA-Factory), read back with the consumers' own code."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from curate.catalog.export_formats import export_for_trainer
from curate.errors import BadInput, BadUsage
from tests.conftest import shared_file

from ._helpers import ingest_file, ingest_rows

GSM = [{"question": f"Tom has {i} apples and buys {i + 1} more. How many?", "answer": f"{i}+{i + 1}\n#### {2 * i + 1}",
        "domain": "math" if i % 2 else None} for i in range(6)]
PREFERENCE_TEXT = [{"prompt": f"Say {w}.", "chosen": f"{w}!", "rejected": f"not {w}"} for w in ("yes", "no", "maybe")]
ANTHROPIC = [{"chosen": f"\n\nHuman: q{i}?\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}?\n\nAssistant: bad {i}"}
             for i in range(3)]
PREFERENCE_CHAT = [{"conversations": [{"from": "human", "value": f"question {i}"}],
                    "chosen": {"from": "gpt", "value": f"good {i}"}, "rejected": {"from": "gpt", "value": f"bad {i}"}}
                   for i in range(3)]
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant: {% endif %}")


def test_verl_schema_as_verl_reads_it(ws, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    version = ingest_rows(ws, tmp_path, GSM, name="gsm").version
    report = export_for_trainer(version, tmp_path / "rl.parquet", "verl", data_source="openai/gsm8k")
    schema = pq.read_schema(report.path)
    assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert str(schema.field("prompt").type) == "list<element: struct<role: string, content: string>>"
    assert [f.name for f in schema.field("reward_model").type] == ["style", "ground_truth"]
    assert {"index", "id", "split"} <= {f.name for f in schema.field("extra_info").type}
    rows = datasets.load_dataset("parquet", data_files=str(report.path), split="train")  # as verl's RLHFDataset
    assert len(rows) == 6 and report.rows == 6
    first = rows[0]
    assert first["data_source"] == "openai/gsm8k" and first["ability"] == "general" and rows[1]["ability"] == "math"
    assert first["reward_model"] == {"style": "rule", "ground_truth": "1"}
    assert first["prompt"] == [{"role": "user", "content": GSM[0]["question"]}]
    assert [r["extra_info"]["index"] for r in rows] == list(range(6))
    assert [r["extra_info"]["id"] for r in rows] == version.scan().collect()["id"].to_list()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    text = tokenizer.apply_chat_template(first["prompt"], chat_template=TEMPLATE, add_generation_prompt=True,
                                         tokenize=False)
    assert text == f"user: {GSM[0]['question']}\nassistant: "


def test_verl_refuses_rows_without_ground_truth_and_other_file_types(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, [{"prompt": "a question", "response": "an answer"}], name="open").version
    with pytest.raises(BadInput, match="no answer and no tests"):
        export_for_trainer(version, tmp_path / "x.parquet", "verl")
    with pytest.raises(BadUsage, match="verl writes parquet"):
        export_for_trainer(version, tmp_path / "x.jsonl", "verl")
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


def _dpo_tokenized(path: Path, tokenizer, tmp_path):
    """The rows as `trl.DPOTrainer` prepares them (its own `_prepare_dataset`)."""
    from trl import DPOConfig, DPOTrainer

    class Stub:
        _tokenizer = tokenizer

    dataset = datasets.load_dataset("json" if path.suffix == ".jsonl" else "parquet", data_files=str(path),
                                    split="train")
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), report_to=[], max_length=256, bf16=False, use_cpu=True)
    return DPOTrainer._prepare_dataset(Stub(), dataset, tokenizer, args, "train")


@pytest.mark.parametrize("rows,suffix", [(PREFERENCE_TEXT, ".jsonl"), (ANTHROPIC, ".parquet"),
                                         (PREFERENCE_CHAT, ".jsonl")])
def test_preference_pairs_go_through_dpo_tokenisation(ws, tmp_path, tiny_model_dir, rows, suffix):
    from transformers import AutoTokenizer

    version = ingest_rows(ws, tmp_path, rows, name="prefs").version
    report = export_for_trainer(version, tmp_path / f"dpo{suffix}", "trl-preference")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.chat_template = TEMPLATE
    tokenized = _dpo_tokenized(report.path, tokenizer, tmp_path)
    assert len(tokenized) == len(rows) == report.rows
    for row, example in zip(rows, tokenized):
        chosen, rejected = tokenizer.decode(example["chosen_ids"]), tokenizer.decode(example["rejected_ids"])
        if "conversations" in row:
            # the template's generation prompt ("assistant: ") is part of the prompt
            assert (chosen, rejected) == (row["chosen"]["value"] + "\n", row["rejected"]["value"] + "\n")
        elif "prompt" in row:
            assert (chosen, rejected) == (row["chosen"] + "</s>", row["rejected"] + "</s>")
        else:  # Anthropic: the last assistant turn of each side, after the shared dialogue
            assert chosen.strip() == row["chosen"].rsplit("Assistant: ", 1)[1] + "</s>"
            assert rejected.strip() == row["rejected"].rsplit("Assistant: ", 1)[1] + "</s>"
        assert example["prompt_ids"]


def test_preference_export_refuses_rows_without_a_pair(ws, tmp_path):
    version = ingest_rows(ws, tmp_path, [{"prompt": "p", "response": "r"}], name="sft").version
    with pytest.raises(BadInput, match="no chosen/rejected pair"):
        export_for_trainer(version, tmp_path / "x.jsonl", "trl-preference")


def test_messages_carry_tools_for_trl(ws, tmp_path, shared):
    source = shared_file(shared, "data/llama_factory_demo/glaive_toolcall_en_demo.json")
    version = ingest_file(ws, source, name="tools").version
    report = export_for_trainer(version, tmp_path / "sft.parquet", "trl-messages")
    rows = datasets.load_dataset("parquet", data_files=str(report.path), split="train")
    metas = [json.loads(m) for m in version.scan().collect()["meta"].to_list()]
    assert [r["tools"] for r in rows] == [m.get("tools") for m in metas]  # the source's string, verbatim
    with_tools = [json.loads(r["tools"]) for r in rows if r["tools"] not in (None, "[]")]
    assert with_tools and all("name" in t[0] for t in with_tools)  # SFTTrainer json.loads a string `tools`
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)


def test_llamafactory_entries_match_the_files(ws, tmp_path):
    text = ingest_rows(ws, tmp_path, GSM, name="gsm").version
    chat = ingest_rows(ws, tmp_path, PREFERENCE_CHAT, name="pairs").version
    out = tmp_path / "lf"
    first = export_for_trainer(text, out / "gsm.json", "llamafactory")
    second = export_for_trainer(chat, out / "pairs.jsonl", "llamafactory")
    assert first.dataset_info == second.dataset_info == out / "dataset_info.json"
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["gsm"] == {"file_name": "gsm.json", "columns": {"prompt": "prompt", "response": "response"}}
    assert info["pairs"]["ranking"] is True and info["pairs"]["formatting"] == "sharegpt"
    assert info["pairs"]["columns"] == {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}
    assert json.loads((out / "gsm.json").read_text())[0] == {"prompt": GSM[0]["question"],
                                                             "response": GSM[0]["answer"]}
    for name, entry in info.items():  # every mapped column exists; sharegpt roles use the declared tags
        rows = datasets.load_dataset("json", data_files=str(out / entry["file_name"]), split="train")
        assert set(entry["columns"].values()) <= set(rows.column_names), name
        if entry.get("formatting") == "sharegpt":
            tags = entry["tags"]
            assert rows[0]["messages"][0][tags["role_tag"]] == tags["user_tag"]
            assert rows[0]["chosen"][tags["role_tag"]] == tags["assistant_tag"]
    (out / "dataset_info.json").write_text("{broken")
    with pytest.raises(BadInput, match="dataset_info.json is not valid JSON"):
        export_for_trainer(text, out / "again.jsonl", "llamafactory")
