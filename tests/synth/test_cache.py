"""The request cache: keys, persistence, and a backend that is only asked for what is missing."""

from __future__ import annotations

from curate.lm.identity import BackendIdentity
from curate.lm.generation import SamplingParams
from curate.synth.cache import CachedBackend, GenerationCache, request_key
from tests.synth.fakes import ScriptedBackend

IDENTITY = BackendIdentity(backend="openai", model="m", endpoint="chat", template="chat",
                           base_url="http://127.0.0.1:8000/v1")


def test_the_key_covers_prompt_params_model_and_backend_but_not_the_address():
    base = request_key(IDENTITY, "p", SamplingParams(), 1)
    assert base == request_key(IDENTITY, "p", SamplingParams(), 1)
    moved = BackendIdentity(**{**IDENTITY.as_dict(), "base_url": "http://10.0.0.2:9000/v1"})
    assert request_key(moved, "p", SamplingParams(), 1) == base
    changed = [
        request_key(IDENTITY, "q", SamplingParams(), 1),
        request_key(IDENTITY, [{"role": "user", "content": "p"}], SamplingParams(), 1),
        request_key(IDENTITY, "p", SamplingParams(temperature=0.5), 1),
        request_key(IDENTITY, "p", SamplingParams(seed=1), 1),
        request_key(IDENTITY, "p", SamplingParams(stop=("x",)), 1),
        request_key(IDENTITY, "p", SamplingParams(), 2),
        request_key(BackendIdentity(**{**IDENTITY.as_dict(), "model": "m2"}), "p", SamplingParams(), 1),
        request_key(BackendIdentity(**{**IDENTITY.as_dict(), "backend": "vllm"}), "p", SamplingParams(), 1),
        request_key(BackendIdentity(**{**IDENTITY.as_dict(), "model_hash": "h"}), "p", SamplingParams(), 1),
    ]
    assert len(set(changed)) == len(changed) and base not in changed
    hashed = BackendIdentity(backend="hf", model="/a/model", model_hash="h1")
    copied = BackendIdentity(backend="hf", model="/b/copy-of-model", model_hash="h1")
    assert request_key(hashed, "p", SamplingParams(), 1) == request_key(copied, "p", SamplingParams(), 1)


def test_only_missing_prompts_reach_the_backend_and_results_persist(tmp_path):
    backend = ScriptedBackend(chunk=2)
    cache = GenerationCache(tmp_path / "cache.sqlite")
    cached = CachedBackend(backend, cache)
    sampling = SamplingParams(seed=5)
    first = cached.generate(["a", "b", "c"], 2, sampling)
    assert backend.prompts_generated == 3 and [len(c) for c in backend.calls] == [2, 1]  # chunks of 2
    assert cached.stats.generated == 3 and cached.stats.hits == 0 and len(cache) == 3
    assert all(not c.cached and c.generated_at > 0 for group in first for c in group)
    cache.close()

    reopened = CachedBackend(backend, GenerationCache(tmp_path / "cache.sqlite"))
    second = reopened.generate(["c", "d", "a", "d"], 2, sampling)
    assert backend.calls[-1] == ["d"]  # "d" asked for twice, generated once
    assert reopened.stats.hits == 2 and reopened.stats.generated == 1
    assert [c.text for c in second[0]] == [c.text for c in first[2]]
    assert [c.text for c in second[2]] == [c.text for c in first[0]] and second[0][0].cached
    assert [c.sample_index for c in second[0]] == [0, 1]
    assert second[1][0].text == second[3][0].text


def test_streaming_backends_store_each_result_as_it_arrives(tmp_path):
    class Streaming(ScriptedBackend):
        def stream(self, prompts, n, sampling):
            for index, group in enumerate(self.generate(prompts, n, sampling)):
                yield index, group
                if prompts[index] == "boom":
                    raise RuntimeError("the server went away")

    backend = Streaming(chunk=10)
    cache = GenerationCache(tmp_path / "c.sqlite")
    cached = CachedBackend(backend, cache)
    try:
        cached.generate(["x", "boom", "yy"], 1, SamplingParams())
    except RuntimeError:
        pass
    # prompts go shortest first: "x", then "yy", then "boom" raised after being yielded and stored
    assert len(cache) == 3
    backend.calls.clear()
    cached.generate(["x", "boom", "yy"], 1, SamplingParams())
    assert backend.calls == []
