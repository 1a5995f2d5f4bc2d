"""`make_backend` and the `vllm` backend (vLLM is never installed here: a fake module stands in)."""

from __future__ import annotations

import sys
import types
from typing import ClassVar

import pytest

from curate.errors import BadUsage, CurateError
from curate.lm.backends import BackendOptions, make_backend
from curate.lm.identity import derive_seed
from curate.lm.generation import SamplingParams


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLLM:
    instances: ClassVar[list] = []

    def __init__(self, **kwargs):
        from transformers import AutoTokenizer

        self.kwargs = kwargs
        self.calls: list = []
        self.tokenizer = AutoTokenizer.from_pretrained(FakeLLM.tokenizer_dir)
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        outputs = []
        for prompt, p in zip(prompts, params):
            choices = [types.SimpleNamespace(text=f"out{j}-{len(prompt['prompt_token_ids'])}", token_ids=[5, 6 + j],
                                             finish_reason="length" if j == 1 else "stop")
                       for j in range(p.kwargs["n"])]
            outputs.append(types.SimpleNamespace(outputs=choices))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model_dir):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    FakeLLM.tokenizer_dir = str(tiny_model_dir)
    FakeLLM.instances = []
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(CurateError) as caught:
        make_backend("vllm", "some/model")
    assert "needs the vllm package" in caught.value.message
    assert "pip install 'curate[vllm]'" in caught.value.hint and "--backend openai" in caught.value.hint


def test_vllm_maps_requests_and_sampling(fake_vllm, tiny_model_dir):
    backend = make_backend("vllm", str(tiny_model_dir), BackendOptions(tensor_parallel_size=2, dtype="bfloat16",
                                                                       max_model_len=2048, template="raw"))
    llm = FakeLLM.instances[-1]
    assert llm.kwargs == {"model": str(tiny_model_dir), "dtype": "bfloat16", "tensor_parallel_size": 2,
                          "gpu_memory_utilization": 0.9, "trust_remote_code": False, "max_model_len": 2048}
    sampling = SamplingParams(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=33, seed=4, stop=("Task:",))
    out = backend.generate(["ab", "abcd"], 2, sampling)
    prompts, params = llm.calls[-1]
    ids = backend.tokenizer("ab")["input_ids"]
    assert prompts[0] == {"prompt_token_ids": ids}  # raw: the text as it is, with BOS
    first = params[0].kwargs
    assert (first["n"], first["temperature"], first["top_p"], first["top_k"], first["max_tokens"], first["stop"]) == \
        (2, 0.7, 0.9, -1, 33, ["Task:"])
    assert first["seed"] == derive_seed(4, "vllm", '"ab"') and params[1].kwargs["seed"] != first["seed"]
    assert [[c.text for c in g] for g in out] == [[f"out0-{len(ids)}", f"out1-{len(ids)}"],
                                                   [f"out0-{len(prompts[1]['prompt_token_ids'])}",
                                                    f"out1-{len(prompts[1]['prompt_token_ids'])}"]]
    assert [c.finish_reason for c in out[0]] == ["stop", "length"] and out[0][1].truncated
    assert out[1][0].prompt_index == 1 and out[0][1].sample_index == 1 and out[0][0].token_ids == [5, 6]
    assert backend.identity.backend == "vllm" and backend.identity.model_hash  # a local folder is fingerprinted
    with pytest.raises(BadUsage, match="identical"):
        backend.generate(["x"], 2, SamplingParams(temperature=0))


def test_vllm_top_k_and_seed_per_prompt_do_not_depend_on_the_batch(fake_vllm, tiny_model_dir):
    backend = make_backend("vllm", str(tiny_model_dir))
    backend.generate(["a", "b"], 1, SamplingParams(top_k=5, seed=1))
    _, params = FakeLLM.instances[-1].calls[-1]
    backend.generate(["b"], 1, SamplingParams(top_k=5, seed=1))
    _, alone = FakeLLM.instances[-1].calls[-1]
    assert params[0].kwargs["top_k"] == 5 and params[1].kwargs["seed"] == alone[0].kwargs["seed"]


def test_hf_backend_resolves_auto_and_reports_identity(tiny_model_dir):
    backend = make_backend("hf", str(tiny_model_dir), dtype="float32", device="cpu", batch_size=8)
    assert backend.template == "raw"  # the byte tokenizer has no chat template
    assert backend.identity.model_hash and backend.identity.backend == "hf" and backend.chunk_size(4) == 2
    out = backend.generate(["abc", "de"], 2, SamplingParams(max_new_tokens=4, seed=3))
    again = backend.generate(["abc", "de"], 2, SamplingParams(max_new_tokens=4, seed=3))
    assert [[c.text for c in g] for g in out] == [[c.text for c in g] for g in again]
    assert [len(g) for g in out] == [2, 2]


def test_factory_errors():
    with pytest.raises(BadUsage, match="not a backend"):
        make_backend("tgi", "m")
    with pytest.raises(BadUsage, match="needs --base-url"):
        make_backend("openai", "m")
    with pytest.raises(BadUsage, match="not a template"):
        make_backend("openai", "m", base_url="http://localhost:1/v1", template="fancy")
    with pytest.raises(BadUsage, match="--revision is not supported by the hf backend"):
        make_backend("hf", "m", revision="abc123")


def test_derive_seed_is_stable():
    assert derive_seed(0, "x", 1) == derive_seed(0, "x", 1) != derive_seed(1, "x", 1)
    assert 0 <= derive_seed(123, "anything") < 2 ** 31
