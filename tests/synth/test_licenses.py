"""The generator-license table: detection by id, model card and declaration; warnings."""

from __future__ import annotations

import pytest

from curate.synth.licenses import CONDITIONS, NON_COMMERCIAL, PROHIBITS, data_warning, detect


@pytest.mark.parametrize("model, license_id, kind", [
    ("meta-llama/Llama-2-7b-chat-hf", "llama2", PROHIBITS),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3", PROHIBITS),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1", CONDITIONS),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama3.3", CONDITIONS),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4", CONDITIONS),
    ("google/gemma-2-9b-it", "gemma", CONDITIONS),
    ("Qwen/Qwen2.5-3B-Instruct", "qwen-research", NON_COMMERCIAL),
    ("Qwen/Qwen2.5-72B-Instruct", "qwen", CONDITIONS),
    ("Qwen/Qwen-7B-Chat", "tongyi-qianwen", PROHIBITS),
    ("Qwen/Qwen1.5-14B-Chat", "tongyi-qianwen", PROHIBITS),
    ("mistralai/Mistral-Large-Instruct-2411", "mrl", NON_COMMERCIAL),
    ("CohereForAI/c4ai-command-r-v01", "cc-by-nc-4.0", NON_COMMERCIAL),
    ("gpt-4o-mini", "openai-terms", PROHIBITS),
])
def test_known_restrictive_generators_warn(model, license_id, kind):
    found = detect(model)
    assert (found.id, found.source, found.terms.kind) == (license_id, "model id", kind)
    assert found.warning and found.terms.name in found.warning and found.terms.url in found.warning


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3",
                                   "openai/gpt-oss-20b", "EleutherAI/gpt-j-6b", "my-model"])
def test_other_generators_do_not_warn(model):
    found = detect(model)
    assert found.warning is None and found.id is None and found.source == "unknown"


def test_model_card_front_matter_of_a_local_folder(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: other\nlicense_name: qwen-research\n---\n# A model\n")
    found = detect(str(folder))
    assert (found.id, found.source) == ("qwen-research", "model card") and found.terms.kind == NON_COMMERCIAL
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    found = detect(str(folder))
    assert found.id == "apache-2.0" and found.warning is None and not found.terms.restricts_training
    llama = tmp_path / "Llama-2-7b-hf"
    llama.mkdir()
    assert detect(str(llama)).id == "llama2"  # no card: the folder's name


def test_a_declared_license_wins_and_the_api_host_counts():
    assert detect("meta-llama/Llama-2-7b-hf", declared="Apache-2.0").warning is None
    found = detect("my-finetune", declared="Llama 3.1")
    assert (found.id, found.source, found.terms.kind) == ("llama3.1", "declared", CONDITIONS)
    assert detect("some-model", base_url="https://api.openai.com/v1").id == "openai-terms"
    assert detect("some-model", declared="custom-terms").as_dict() == {"id": "custom-terms", "source": "declared"}


def test_non_commercial_source_data_warns():
    assert "CC BY-NC 4.0" in data_warning("CC-BY-NC-4.0") and "derive from it" in data_warning("cc-by-nc-4.0")
    assert data_warning("MIT") is None and data_warning(None) is None and data_warning("my own terms") is None
