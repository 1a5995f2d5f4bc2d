"""`.gguf` model files: dequantised once into a cached folder, with the file's identity.

A tiny Llama written as GGUF by the tests themselves (tests/lm/gguf_writer.py) covers the path
everywhere; ../shared's SmolLM2-135M-Instruct Q4_1 checks it on a real quantised model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from curate.errors import ModelLoadError
from curate.lm import byte_tokenizer, gguf_cache
from curate.lm.loading import fingerprint, load
from tests.conftest import shared_file
from tests.lm.conftest import save_tiny_llama
from tests.lm.gguf_writer import write_tiny_gguf

SMOLLM = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> tuple[object, Path]:
    """(the original transformers model, the same weights and vocabulary as a GGUF file)."""
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny-gguf")
    original = LlamaForCausalLM.from_pretrained(save_tiny_llama(root / "hf", initializer_range=0.5)).eval()
    return original, write_tiny_gguf(original, root / "tiny.gguf", chat_template="{% for m in messages %}"
                                                                                 "{{ m['content'] }}\n{% endfor %}")


def no_conversion(monkeypatch) -> None:
    """From here on the GGUF file must not be read again: neither converted nor dequantised uncached."""
    def refuse(*args, **kwargs):
        raise AssertionError("read the GGUF file again instead of using the cache")

    monkeypatch.setattr(gguf_cache, "convert", refuse)
    monkeypatch.setattr(gguf_cache, "read", refuse)


def cli(capsys, ws: Path):
    """`curate ARGS --workspace ws` in this process; asserts exit code 0 and returns stdout."""
    from curate.cli.app import main

    def run(*args: str) -> str:
        with pytest.raises(SystemExit) as exited:
            main([*args, "--workspace", str(ws)])
        out, err = capsys.readouterr()
        assert exited.value.code == 0, out + err
        return out

    return run


def logits(model, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([byte_tokenizer.byte_ids(text)])).logits


def test_a_gguf_file_loads_as_the_model_it_was_written_from(tiny_gguf, tmp_path):
    original, path = tiny_gguf
    lm = load(str(path), dtype="float32", device="cpu", cache_dir=tmp_path / "cache")
    assert lm.name == str(path)
    assert torch.equal(logits(lm.model, "hello there, héllo"), logits(original, "hello there, héllo"))
    text = "Ünïcode and ascii"
    assert lm.tokenizer(text)["input_ids"] == byte_tokenizer.byte_ids(text, bos=False)
    assert lm.tokenizer.eos_token_id == byte_tokenizer.EOS and lm.tokenizer.pad_token_id == byte_tokenizer.PAD
    assert "m['content']" in lm.tokenizer.chat_template  # the chat template travels with the tokenizer
    (folder,) = (tmp_path / "cache").iterdir()  # one plain Hugging Face folder, no staging left behind
    assert folder.name.startswith("gguf-") and (folder / "model.safetensors").exists()
    assert (folder / "tokenizer.json").exists() and (folder / gguf_cache.MARKER).exists()


def test_second_load_uses_the_cache_and_keeps_the_file_identity(tiny_gguf, tmp_path, monkeypatch):
    _, path = tiny_gguf
    cache = tmp_path / "cache"
    folder, converted = gguf_cache.cached_folder(path, cache)
    assert converted
    no_conversion(monkeypatch)
    assert gguf_cache.cached_folder(path, cache) == (folder, False)
    again = load(str(path), dtype="float32", device="cpu", cache_dir=cache)
    identity = gguf_cache.file_fingerprint(path)
    assert again.model_hash == identity == fingerprint(path) == fingerprint(folder)
    assert load(str(folder), dtype="float32", device="cpu").model_hash == identity  # the folder opened directly


def test_identity_follows_the_content_not_the_name(tiny_gguf, tmp_path):
    _, path = tiny_gguf
    renamed = shutil.copy(path, tmp_path / "renamed.gguf")
    assert fingerprint(Path(renamed)) == fingerprint(path)
    changed = tmp_path / "changed.gguf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a weight byte in the middle of a file smaller than 2 MiB
    changed.write_bytes(bytes(data))
    assert fingerprint(changed) != fingerprint(path)


def test_without_a_cache_the_file_loads_as_an_ordinary_trainable_model(tiny_gguf, tmp_path):
    original, path = tiny_gguf
    lm = load(str(path), dtype="float32", device="cpu")
    assert lm.model_hash == gguf_cache.file_fingerprint(path)
    assert torch.equal(logits(lm.model, "plain"), logits(original, "plain"))
    assert getattr(lm.model.config, "quantization_config", None) is None
    lm.model.save_pretrained(str(tmp_path / "saved"))  # a GGUF-loaded model itself refuses this


def test_missing_or_broken_gguf_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="GGUF file .*nope.gguf does not exist") as missing:
        load(str(tmp_path / "nope.gguf"), cache_dir=tmp_path / "cache")
    assert missing.value.hint
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="could not load GGUF file .*broken.gguf") as bad:
        load(str(broken), cache_dir=tmp_path / "cache")
    assert bad.value.hint
    assert not [p for p in (tmp_path / "cache").iterdir()]  # a failed conversion leaves nothing behind


def test_missing_gguf_package_names_it(tiny_gguf, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelLoadError, match="needs the gguf package") as info:
        load(str(tiny_gguf[1]), cache_dir=tmp_path / "cache")
    assert "pip install gguf" in info.value.hint


def test_a_crash_mid_conversion_leaves_no_half_folder(tiny_gguf, tmp_path, monkeypatch):
    _, path = tiny_gguf
    real = gguf_cache.convert

    def crash(source, folder, *args):
        real(source, folder, *args)
        raise KeyboardInterrupt  # killed after writing everything but before the rename

    monkeypatch.setattr(gguf_cache, "convert", crash)
    with pytest.raises(KeyboardInterrupt):
        gguf_cache.cached_folder(path, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(gguf_cache, "convert", real)
    assert gguf_cache.cached_folder(path, tmp_path / "cache")[1]


def test_gguf_everywhere_a_model_is_accepted(tiny_gguf, tmp_path, capsys, monkeypatch):
    """select, score, token cleaning (which trains from the model), train sft, rollouts and synth with
    `--model x.gguf`: one conversion for all of them."""
    from tests.conftest import write_jsonl

    _, path = tiny_gguf
    ws = tmp_path / "ws"
    curate = cli(capsys, ws)
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 9)]
    curate("ingest", str(write_jsonl(tmp_path / "pool.jsonl", rows)), "--name", "pool")
    model = ["--model", str(path)]
    assert "pool@v1 -> pool-perplexity@v1" in curate("select", "pool", "--strategy", "perplexity", "--budget", "4",
                                                     *model)
    no_conversion(monkeypatch)  # from here on the workspace's cached folder serves every command
    assert "ifd scores of pool@v1" in curate("score", "pool", "--scorer", "ifd", *model)
    curate("select", "pool", "--strategy", "token-clean", *model, "--param", "token-clean.steps=1",
           "--param", "token-clean.warmup_rows=2", "--param", "token-clean.batch_tokens=512")
    curate("train", "sft", "pool", *model, "--out", str(tmp_path / "sft"), "--steps", "2", "--batch-tokens", "256")
    assert (tmp_path / "sft" / "model.safetensors").exists()
    curate("rollouts", "pool", *model, "-k", "2", "--max-completion-length", "4")
    curate("synth", "--recipe", "rejection", "--dataset", "pool", *model, "-k", "2", "--max-new-tokens", "4",
           "--name", "synth-out")
    from curate.catalog.ledger import read_rollouts
    from curate.catalog.workspace import Workspace

    rollouts = read_rollouts(Workspace.open(ws))
    # rollouts and rejection sampling both record k=2 samples of each of the 8 prompts, under the file's identity
    # (the ledger's model key is the model's identity, then `#` and the reward that scored the samples)
    model_keys = {key.partition("#")[0] for key in rollouts["model_key"]}
    assert rollouts.height == 2 * 8 * 2 and model_keys == {gguf_cache.file_fingerprint(path)}
    assert [p.name for p in (ws / "models").iterdir() if p.name.startswith("gguf-")] == \
        [f"gguf-{gguf_cache.file_fingerprint(path)[:16]}"]


@pytest.fixture(scope="module")
def smollm_cache(shared, tmp_path_factory) -> tuple[Path, Path]:
    """(SmolLM2's GGUF file, a cache folder it was converted into once for this module)."""
    path = shared_file(shared, SMOLLM)
    cache = tmp_path_factory.mktemp("smollm-cache")
    assert gguf_cache.cached_folder(path, cache)[1]
    return path, cache


@pytest.mark.slow
def test_smollm2_gguf_loads_from_the_cache_as_a_working_instruct_model(smollm_cache, monkeypatch):
    path, cache = smollm_cache
    no_conversion(monkeypatch)
    lm = load(str(path), dtype="float32", device="cpu", cache_dir=cache)
    assert lm.model_hash == gguf_cache.file_fingerprint(path)
    assert lm.model.config.hidden_size == 576 and lm.model.config.num_hidden_layers == 30
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")["input_ids"]
    assert lm.tokenizer.decode(ids[0]).startswith("<|im_start|>system")
    prefix = lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        next_token = lm.model(prefix).logits[0, -1].argmax()
    assert lm.tokenizer.decode(next_token).strip() == "Paris"  # dequantised weights, not noise


@pytest.mark.slow
def test_smollm2_gguf_from_the_command_line(smollm_cache, tmp_path, capsys, monkeypatch):
    """`select --model x.gguf` and `train sft --model x.gguf` on a few rows; the workspace's models/ holds
    the converted folder (linked to the module's cache: the conversion itself is tested above)."""
    from tests.conftest import write_jsonl

    path, cache = smollm_cache
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "models").symlink_to(cache, target_is_directory=True)
    curate = cli(capsys, ws)

    rows = [{"instruction": f"Name a colour number {i}.", "output": ["Red.", "Blue.", "Green.", "Teal."][i % 4]}
            for i in range(6)]
    curate("ingest", str(write_jsonl(tmp_path / "rows.jsonl", rows)), "--name", "rows")
    no_conversion(monkeypatch)
    out = curate("select", "rows", "--strategy", "perplexity", "--budget", "3", "--model", str(path))
    assert "rows@v1 -> rows-perplexity@v1" in out
    curate("train", "sft", "rows", "--model", str(path), "--out", str(tmp_path / "sft"), "--steps", "1",
           "--batch-tokens", "256")
    assert (tmp_path / "sft" / "model.safetensors").exists()
