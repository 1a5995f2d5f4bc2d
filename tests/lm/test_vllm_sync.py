"""GRPO's weight sync into a colocated vLLM engine, with a stand-in engine (vLLM needs a GPU).

The stand-in records what `load_weights` receives, as vLLM's model would; the checks are that
every tensor arrives under the base checkpoint's name with the trainer's current values, LoRA
adapters merged in, and that the trainer's model is left as it was (adapters unmerged).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM

from curate.errors import CurateError
from curate.lm.vllm_backend import VLLMBackend, trained_weights


class FakeEngineModel:
    def __init__(self):
        self.loaded: dict[str, torch.Tensor] = {}

    def load_weights(self, weights):
        for name, tensor in weights:
            self.loaded[name] = tensor.detach().clone()


def _backend(engine_model) -> VLLMBackend:
    backend = VLLMBackend.__new__(VLLMBackend)  # no engine start: only sync_weights is under test
    runner = SimpleNamespace(model=engine_model)
    backend.llm = SimpleNamespace(llm_engine=SimpleNamespace(model_executor=SimpleNamespace(
        driver_worker=SimpleNamespace(model_runner=runner))), reset_prefix_cache=lambda: setattr(backend, "reset", True))
    return backend


def test_full_model_weights_arrive_under_their_names(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # a "trained" change the engine must see
    engine = FakeEngineModel()
    backend = _backend(engine)
    backend.sync_weights(model)
    expected = dict(model.named_parameters())
    assert set(engine.loaded) == set(expected)
    assert all(torch.equal(engine.loaded[n], p.data) for n, p in expected.items())
    assert backend.reset is True


def test_lora_is_merged_for_the_engine_and_unmerged_after(tiny_model_dir):
    peft = pytest.importorskip("peft")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    names = {n for n, _ in base.named_parameters()}
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))  # non-zero B: merging changes q, v
    q_name = next(n for n in names if n.endswith("q_proj.weight"))
    layer = model.get_submodule("base_model.model." + q_name.removesuffix(".weight"))
    before = layer.base_layer.weight.detach().clone()
    merged = before + layer.get_delta_weight("default")
    engine = FakeEngineModel()
    _backend(engine).sync_weights(model)
    assert set(engine.loaded) == names  # no lora_A/lora_B, no base_model.model. prefix, no .base_layer
    assert torch.allclose(engine.loaded[q_name], merged, atol=1e-6)
    assert not torch.allclose(merged, before)
    assert torch.allclose(layer.base_layer.weight, before, atol=1e-6)  # unmerged again (to float rounding)


def test_an_engine_without_an_in_process_model_is_a_clear_error():
    backend = VLLMBackend.__new__(VLLMBackend)
    backend.llm = SimpleNamespace(llm_engine=SimpleNamespace())
    with pytest.raises(CurateError, match="does not expose its model") as info:
        backend.sync_weights(torch.nn.Linear(2, 2))
    assert "VLLM_ENABLE_V1_MULTIPROCESSING=0" in info.value.hint


def test_trained_weights_of_a_plain_module_are_its_parameters():
    module = torch.nn.Linear(3, 2)
    assert [n for n, _ in trained_weights(module)] == ["weight", "bias"]
