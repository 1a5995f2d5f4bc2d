"""Loading models from local folders: identity (`model_hash`) and clear errors for folders that do not load."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
import torch

from curate.errors import CurateError, ModelLoadError
from curate.lm import byte_tokenizer
from curate.lm.loading import LM, describe, fingerprint, load
from tests.conftest import shared_file
from tests.lm.conftest import save_tiny_llama


def test_load_tiny_model(tiny_model_dir):
    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    assert isinstance(lm, LM)
    assert lm.name == str(tiny_model_dir)
    assert lm.device == torch.device("cpu")
    assert not lm.model.training  # eval mode
    assert next(lm.model.parameters()).dtype == torch.float32
    assert lm.model.config.vocab_size == byte_tokenizer.VOCAB_SIZE
    assert lm.tokenizer.eos_token_id == byte_tokenizer.EOS
    assert lm.tokenizer.pad_token_id == byte_tokenizer.PAD
    assert lm.max_length == 1024
    assert len(lm.model_hash) == 32 and int(lm.model_hash, 16) >= 0
    info = describe(lm)
    assert info["hash"] == lm.model_hash and info["type"] == "llama" and info["dtype"] == "float32"
    assert info["params"] == sum(p.numel() for p in lm.model.parameters())
    with torch.no_grad():
        logits = lm.model(torch.tensor([byte_tokenizer.byte_ids("hello")])).logits
    assert logits.shape == (1, 6, byte_tokenizer.VOCAB_SIZE) and torch.isfinite(logits).all()


def test_model_hash_is_stable_and_content_based(tiny_model_dir, tmp_path):
    first = load(str(tiny_model_dir)).model_hash
    assert load(str(tiny_model_dir)).model_hash == first  # same folder twice
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert load(str(copy)).model_hash == first  # same content elsewhere: same identity
    other = save_tiny_llama(tmp_path / "other", seed=1)  # same architecture, other weights
    assert load(str(other)).model_hash != first


def test_model_hash_changes_with_the_config(tiny_model_dir, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, changed)
    config = (changed / "config.json").read_text().replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05')
    assert config != (tiny_model_dir / "config.json").read_text()
    (changed / "config.json").write_text(config)
    assert fingerprint(changed) != fingerprint(tiny_model_dir)


def test_pad_token_is_set_when_the_tokenizer_has_none(shared):
    lm = load(str(shared_file(shared, "models/stories260K")), dtype="float32", device="cpu")
    assert lm.model.config.vocab_size == 512
    assert lm.tokenizer.pad_token_id == lm.tokenizer.eos_token_id == 2  # stories260K ships no pad token
    assert lm.max_length == 512
    assert lm.model_hash == load(str(shared_file(shared, "models/stories260K"))).model_hash
    ids = lm.tokenizer("Once upon a time")["input_ids"]
    assert ids[0] == lm.tokenizer.bos_token_id
    with torch.no_grad():
        assert torch.isfinite(lm.model(torch.tensor([ids])).logits).all()


def assert_load_error(model: str, *fragments: str) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        load(model)
    error = info.value
    assert model in error.message  # the message names the model
    assert error.hint  # and says what to do
    assert f"hint: {error.hint}" in str(error)
    for fragment in fragments:
        assert fragment in error.message
    return error


def test_empty_folder_is_a_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    error = assert_load_error(str(tmp_path / "empty"), "could not load model")
    assert "config.json" in error.hint


def test_garbage_config_is_a_load_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "garbage"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "config.json").write_text("{this is not json")
    assert_load_error(str(bad), "could not load model")
    only = tmp_path / "only-config"
    only.mkdir()
    (only / "config.json").write_text("garbage")
    assert_load_error(str(only))


def test_unknown_architecture_is_a_load_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "config.json").write_text('{"model_type": "no_such_architecture"}')
    assert_load_error(str(bad), "no_such_architecture")


def test_folder_without_weights_is_a_load_error(tiny_model_dir, tmp_path):
    """transformers must not silently build a randomly initialised model from the config alone."""
    bare = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, bare)
    (bare / "model.safetensors").unlink()
    assert_load_error(str(bare))


@pytest.mark.parametrize("path", ["./does/not/exist", "does/not/exist", "/nonexistent/model/folder", "~/no/such/model"])
def test_missing_path_is_a_load_error(path):
    error = assert_load_error(path, "does not exist")
    assert "save_pretrained" in error.hint


def test_a_file_is_not_a_model_folder(tiny_model_dir):
    assert_load_error(str(tiny_model_dir / "config.json"), "is a file")


def test_unknown_dtype_is_a_load_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="unknown dtype") as info:
        load(str(tiny_model_dir), dtype="float8")
    assert info.value.hint


def test_model_load_error_is_a_user_error():
    """The CLI prints a CurateError's message and hint without a traceback and exits 1."""
    assert issubclass(ModelLoadError, CurateError)
    assert ModelLoadError("x").exit_code == 1


# --- known bugs -------------------------------------------------------------------------------


def write_float_at_end(path: Path, value: float) -> None:
    data = bytearray(path.read_bytes())
    data[-4:] = struct.pack("<f", value)
    path.write_bytes(bytes(data))


def test_model_hash_sees_weights_past_the_first_mib(tmp_path):
    from curate.train.proxy import ProxyConfig, build_model

    first = tmp_path / "a"
    build_model(ProxyConfig()).save_pretrained(str(first))  # the default proxy architecture
    byte_tokenizer.save(first)
    weights = first / "model.safetensors"
    assert (1 << 20) < weights.stat().st_size < (2 << 20)
    second = tmp_path / "b"
    shutil.copytree(first, second)
    write_float_at_end(second / "model.safetensors", 0.123)  # change the last weight of the last tensor
    a, b = load(str(first)), load(str(second))
    changed = [name for name, p in a.model.state_dict().items() if not torch.equal(p, b.model.state_dict()[name])]
    assert changed  # the two folders hold different models ...
    assert a.model_hash != b.model_hash  # ... so they must not share an identity (scores are cached by it)


def test_model_hash_changes_with_the_tokenizer(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    changed = tmp_path / "chat"
    shutil.copytree(tiny_model_dir, changed)
    tokenizer = AutoTokenizer.from_pretrained(str(changed))
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    tokenizer.save_pretrained(str(changed))
    from curate.lm.templates import encode_pair

    before, after = load(str(tiny_model_dir)), load(str(changed))
    assert encode_pair("hi", "x", before.tokenizer) != encode_pair("hi", "x", after.tokenizer)  # other tokens
    assert before.model_hash != after.model_hash
