"""The `openai` backend against a real HTTP server on localhost (tests.synth.server)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from curate.errors import BadUsage, CurateError
from curate.lm.generation import SamplingParams
from curate.lm.openai_backend import BackendError, OpenAIBackend, OpenAIConfig
from tests.synth.server import FakeOpenAI

SECRET = "sk-test-Zq8v1Secret"


@pytest.fixture
def server():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def backend(server: FakeOpenAI, **overrides) -> OpenAIBackend:
    settings = {"model": "served-model", "base_url": server.url, "endpoint": "completions", "concurrency": 4,
                "timeout": 5.0, "max_retries": 3, "backoff": 0.05, "backoff_max": 1.0}
    settings.update(overrides)
    return OpenAIBackend(OpenAIConfig(**settings))


def echo(body: dict) -> list[str]:
    text = body.get("prompt") or body["messages"][-1]["content"]
    return [f"{text}|{i}" for i in range(body["n"])]


def test_completions_endpoint_sends_the_request_and_reads_choices(server):
    server.responder = echo
    sampling = SamplingParams(temperature=0.5, top_p=0.9, top_k=20, max_new_tokens=17, seed=3, stop=("\n\n",))
    out = backend(server).generate(["alpha", "beta"], 2, sampling)
    assert [[c.text for c in group] for group in out] == [["alpha|0", "alpha|1"], ["beta|0", "beta|1"]]
    assert [(c.prompt_index, c.sample_index) for c in out[1]] == [(1, 0), (1, 1)]
    assert all(c.finish_reason == "stop" for group in out for c in group)
    bodies = sorted((r.body for r in server.records), key=lambda b: b["prompt"])
    first = bodies[0]
    assert server.records[0].path == "/v1/completions"
    assert first["prompt"] == "alpha"  # completion style: the text as it is
    assert (first["model"], first["n"], first["max_tokens"], first["temperature"], first["top_p"], first["top_k"],
            first["stop"]) == ("served-model", 2, 17, 0.5, 0.9, 20, ["\n\n"])
    assert bodies[0]["seed"] != bodies[1]["seed"]  # each prompt has its own seed


def test_chat_endpoint_sends_messages_and_reads_message_content(server):
    server.responder = echo
    out = backend(server, endpoint="chat").generate([[{"role": "user", "content": "hi there"}], "plain text"], 1,
                                                    SamplingParams(seed=1))
    assert [g[0].text for g in out] == ["hi there|0", "plain text|0"]
    paths = {r.path for r in server.records}
    assert paths == {"/v1/chat/completions"}
    messages = sorted(r.body["messages"][0]["content"] for r in server.records)
    assert messages == ["hi there", "plain text"]


def test_seeds_depend_on_the_prompt_not_on_the_batch(server):
    first = backend(server)
    first.generate(["a", "b"], 1, SamplingParams(seed=7))
    seeds = {r.body["prompt"]: r.body["seed"] for r in server.records}
    server.records.clear()
    backend(server).generate(["z", "b"], 1, SamplingParams(seed=7))
    assert {r.body["prompt"]: r.body["seed"] for r in server.records}["b"] == seeds["b"]


def test_429_and_500_are_retried_with_exponential_backoff(server):
    server.fail = [429, 500, 502]
    client = backend(server, max_retries=3, backoff=0.1, backoff_max=5.0)
    out = client.generate(["x"], 1, SamplingParams())
    assert out[0][0].text
    assert len(server.records) == 4 and client.stats.retries == 3
    gaps = [b.time - a.time for a, b in zip(server.records, server.records[1:])]
    # equal jitter: the k-th delay is within [0.1 * 2**k / 2, 0.1 * 2**k]
    for k, gap in enumerate(gaps):
        assert 0.1 * 2 ** k / 2 - 0.01 <= gap, gaps
    assert [round(d / (0.1 * 2 ** k), 6) <= 1 for k, d in enumerate(client.stats.delays)] == [True] * 3
    assert gaps[2] > gaps[0]


def test_retry_after_header_is_honoured(server):
    server.fail = [503]  # the fake sends Retry-After: 0
    client = backend(server, backoff=30.0, backoff_max=60.0)
    started = time.monotonic()
    assert client.generate(["x"], 1, SamplingParams())[0][0].text
    assert time.monotonic() - started < 5 and client.stats.delays == [0.0]


def test_retries_give_up_with_a_clear_error(server):
    server.fail = [500] * 10
    client = backend(server, max_retries=2)
    with pytest.raises(BackendError, match="gave up after 3 attempts; last error: HTTP 500: scripted 500"):
        client.generate(["x"], 1, SamplingParams())
    assert len(server.records) == 3


@pytest.mark.parametrize("status, hint", [(400, "sampling options"), (401, "$MY_KEY"), (404, "--base-url")])
def test_client_errors_fail_at_once_with_the_servers_message(server, status, hint):
    server.fail = [status]
    with pytest.raises(BackendError) as caught:
        backend(server, api_key_env="MY_KEY").generate(["x"], 1, SamplingParams())
    assert f"HTTP {status}: scripted {status}" in caught.value.message and hint in caught.value.hint
    assert len(server.records) == 1


def test_a_slow_answer_times_out_and_is_retried(server):
    server.fail = ["sleep:1.0"]
    client = backend(server, timeout=0.3, max_retries=2, backoff=0.01)
    started = time.monotonic()
    assert client.generate(["x"], 1, SamplingParams())[0][0].text
    assert client.stats.retries == 1 and time.monotonic() - started < 1.0
    server.fail = ["sleep:1.0"] * 3
    with pytest.raises(BackendError, match=r"no answer within --timeout 0.3s"):
        client.generate(["y"], 1, SamplingParams())


def test_a_refused_connection_is_retried_then_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    client = OpenAIBackend(OpenAIConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2,
                                        backoff=0.01, timeout=1.0))
    with pytest.raises(BackendError, match="gave up after 3 attempts; last error: ConnectionRefusedError"):
        client.generate(["x"], 1, SamplingParams())


@pytest.mark.parametrize("action, what", [("not-json", "it is not JSON"), ("malformed", "'choices' is missing"),
                                          ("no-content", r"choices\[0\].message.content is missing")])
def test_malformed_answers_are_clear_errors_and_not_retried(server, action, what):
    server.fail = [action]
    endpoint = "chat" if action == "no-content" else "completions"
    with pytest.raises(BackendError, match=f"malformed response from {server.url}.*{what}"):
        backend(server, endpoint=endpoint).generate(["x"], 1, SamplingParams())
    assert len(server.records) == 1


def test_at_most_concurrency_requests_are_in_flight(server):
    server.gate = 3  # the first three requests are held until all three are in flight: a fourth would be seen
    client = backend(server, concurrency=3)
    started = time.monotonic()
    out = client.generate([f"p{i}" for i in range(12)], 1, SamplingParams())
    assert len(out) == 12 and all(group for group in out)
    assert server.max_in_flight == 3 and time.monotonic() - started < 10


def test_stream_yields_each_prompt_as_it_finishes(server):
    server.responder = echo
    seen = dict(backend(server, concurrency=2).stream(["a", "b", "c"], 1, SamplingParams()))
    assert {i: g[0].text for i, g in seen.items()} == {0: "a|0", 1: "b|0", 2: "c|0"}


def test_a_server_that_ignores_n_is_asked_for_the_rest(server):
    server.responder = echo
    server.max_choices = 1
    out = backend(server).generate(["q"], 3, SamplingParams(seed=5))
    assert len(out[0]) == 3 and len(server.records) == 3
    assert len({r.body["seed"] for r in server.records}) == 3


def test_length_finish_reason_marks_truncation(server):
    server.finish_reason = "length"
    assert backend(server).generate(["x"], 1, SamplingParams())[0][0].truncated


def test_the_key_is_sent_but_never_kept(server, monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", SECRET)
    client = backend(server, api_key_env="MY_TEST_KEY")
    client.generate(["x"], 1, SamplingParams())
    assert server.records[0].headers.get("Authorization") == f"Bearer {SECRET}"
    kept = json.dumps({"identity": client.identity.as_dict(), "config": repr(client.config),
                       "vars": repr(vars(client))}, default=str)
    assert SECRET not in kept and "MY_TEST_KEY" in kept


def test_no_key_means_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend(server).generate(["x"], 1, SamplingParams())
    assert "Authorization" not in server.records[0].headers


@pytest.mark.parametrize("url, what", [("http://user:pw@localhost:8000/v1", "credentials"),
                                       ("ftp://localhost/v1", "not an http"),
                                       ("http://localhost:8000/v1?key=1", "no query")])
def test_bad_base_urls_are_refused(url, what):
    with pytest.raises(BadUsage, match=what):
        OpenAIBackend(OpenAIConfig(model="m", base_url=url))


def test_option_errors_are_bad_usage():
    for overrides in ({"endpoint": "embeddings"}, {"concurrency": 0}, {"timeout": 0}, {"template": "chat",
                                                                                       "endpoint": "completions"}):
        with pytest.raises(BadUsage):
            OpenAIBackend(OpenAIConfig(**{"model": "m", "base_url": "http://localhost:1/v1", **overrides}))
    with pytest.raises(CurateError, match="identical"):
        OpenAIBackend(OpenAIConfig(model="m", base_url="http://localhost:1/v1")).generate(
            ["x"], 2, SamplingParams(temperature=0))


def test_a_server_backed_by_a_real_model(tiny_model_dir):
    """The fake server answers with the tiny HF model: the backend returns exactly what the model generated."""
    from curate.lm.generation import HFBackend
    from curate.lm.loading import load

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    hf = HFBackend(lm, batch_size=4, template="plain")
    generated: list[list[str]] = []

    def model_answer(body: dict) -> list[str]:
        sampling = SamplingParams(temperature=body["temperature"], max_new_tokens=body["max_tokens"],
                                  seed=body["seed"])
        prompt = body["messages"] if "messages" in body else body["prompt"]
        texts = [c.text for c in hf.generate([prompt], body["n"], sampling)[0]]
        generated.append(texts)
        return texts

    fake = FakeOpenAI(responder=model_answer).start()
    try:
        sampling = SamplingParams(temperature=1.0, max_new_tokens=8, seed=11)
        for endpoint in ("completions", "chat"):
            out = backend(fake, endpoint=endpoint, timeout=120.0).generate(["Hello"], 2, sampling)
            assert [c.text for c in out[0]] == generated[-1] and len(generated[-1]) == 2
        bodies = {r.path: r.body for r in fake.records}
        assert bodies["/v1/completions"]["prompt"] == "Hello"
        assert bodies["/v1/chat/completions"]["messages"] == [{"role": "user", "content": "Hello"}]
    finally:
        fake.stop()
