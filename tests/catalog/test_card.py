"""Dataset cards written with exports (loaded with huggingface_hub), and the offline `--push-to-hub` message."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
import pytest
from huggingface_hub import DatasetCard

from curate.catalog.card import size_category, write_card
from curate.catalog.versions import Lineage, ShardWriter, commit_version
from curate.selectors.pipeline import run_select
from tests.conftest import write_jsonl

ROWS = [{"question": f"What is {i} plus {i}?", "answer": f"{i}+{i}\n#### {2 * i}"} for i in range(30)]


def cli(*args: str, env: dict | None = None, check: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "curate.cli.app", *args], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **(env or {})})
    assert result.returncode == check, result.stdout + result.stderr
    return result


@pytest.fixture
def selected(tmp_path):
    ws = tmp_path / "ws"
    cli("ingest", str(write_jsonl(tmp_path / "pool.jsonl", ROWS)), "--name", "pool", "--license", "MIT",
        "--workspace", str(ws))
    cli("select", "pool", "--strategy", "length", "--budget", "10", "--workspace", str(ws))
    return ws


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 54_321, 2_000_000)] == ["n<1K", "n<1K", "1K<n<10K",
                                                                              "10K<n<100K", "1M<n<10M"]


def test_card_beside_a_file_loads_with_huggingface_hub(selected, tmp_path):
    out = tmp_path / "export"
    cli("export", "pool-length", "--to", str(out / "sft.jsonl"), "--trl", "--card", "--workspace", str(selected))
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "mit" and card.data.size_categories == ["n<1K"]
    assert card.data.task_categories == ["text-generation"] and card.data.source_datasets == ["original"]
    assert card.data.pretty_name == "pool-length@v1" and "curate" in card.data.tags
    assert "**select** `length` 30 → 10 rows" in card.text
    assert card.text.index("**ingest** 30 → 30 rows") < card.text.index("**select**")  # oldest first
    assert "`sft.jsonl`" in card.text and "pool.jsonl" in card.text
    again = cli("export", "pool-length", "--to", str(out / "other.jsonl"), "--card", "--workspace", str(selected),
                check=2)
    assert "README.md already exists" in again.stderr and not (out / "other.jsonl").exists()


def test_a_folder_export_always_gets_a_card(selected, tmp_path):
    out = tmp_path / "hf-folder"
    cli("export", "pool-length", "--to", str(out), "--workspace", str(selected))
    assert DatasetCard.load(out / "README.md").data.license == "mit"


def test_generators_and_their_terms_are_on_the_card(ws, tmp_path):
    folder = ws.staging_root / "synth-test"
    folder.mkdir(parents=True)
    writer = ShardWriter(folder)
    writer.write(pl.DataFrame({"id": ["a"], "prompt": ["p"], "response": ["r"]}))
    step = Lineage(op="synth", inputs=["seeds@v1"], strategy="self-instruct", model_id="meta-llama/Llama-3.1-8B",
                   params={"generator_license": {"id": "llama3.1", "name": "Llama 3.1 Community License",
                                                 "kind": "conditions", "url": "https://www.llama.com/llama3_1/license/"},
                           "license_warning": "the generator's license attaches conditions to training"},
                   rows_in=3, rows_out=1)
    version = commit_version(ws, "synthetic", writer.close(), [step], prompt_type="text", license="llama3.1")
    card = DatasetCard.load(write_card(ws, version, tmp_path / "card", "canonical", ["data.jsonl"]))
    assert "synthetic" in card.data.tags and card.data.license == "llama3.1"
    assert "`meta-llama/Llama-3.1-8B` (self-instruct): Llama 3.1 Community License" in card.text
    assert "attaches conditions to training" in card.text and "seeds@v1" in card.text


@pytest.mark.parametrize("env,says", [({"HF_HUB_OFFLINE": "1"}, "offline mode is on"),
                                      ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached")])
def test_push_to_hub_says_clearly_that_it_is_offline(selected, tmp_path, env, says):
    target = tmp_path / "push" / "sft.parquet"
    result = cli("export", "pool-length", "--to", str(target), "--push-to-hub", "me/curated", "--workspace",
                 str(selected), env={**env, "HF_TOKEN": "hf_not_a_real_token"}, check=1)
    assert says in result.stderr and "hf upload me/curated" in result.stderr and "Traceback" not in result.stderr
    assert target.exists() and (target.parent / "README.md").exists()  # the export and its card stay
