"""Several OpenAI-compatible servers behind one backend: spread, failover of a dead server's requests, exactly once."""

from __future__ import annotations

import pytest

from curate.lm.generation import SamplingParams
from curate.lm.openai_backend import OpenAIBackend, OpenAIConfig
from curate.lm.servers import ServerPool
from tests.synth.server import FakeOpenAI


def echo(body: dict) -> list[str]:
    text = body.get("prompt") or body["messages"][-1]["content"]
    return [f"{text}|{i}" for i in range(body["n"])]


@pytest.fixture
def servers():
    pair = [FakeOpenAI(responder=echo, delay=0.05).start() for _ in range(2)]
    yield pair
    for server in pair:
        if not server.dead:
            server.stop()


def backend(urls, **overrides) -> OpenAIBackend:
    settings = {"model": "served-model", "base_url": tuple(urls), "endpoint": "completions", "concurrency": 3,
                "timeout": 5.0, "max_retries": 4, "backoff": 0.05, "backoff_max": 0.5}
    return OpenAIBackend(OpenAIConfig(**{**settings, **overrides}))


SAMPLING = SamplingParams(temperature=1.0, max_new_tokens=8, seed=1)


def test_the_pool_picks_the_least_busy_live_server_and_rests_a_failing_one():
    now = [0.0]
    pool = ServerPool(["a", "b", "c"], cooloff=1.0, cooloff_max=3.0, clock=lambda: now[0])
    assert [pool.acquire()[0] for _ in range(3)] == ["a", "b", "c"]  # each has one in flight
    pool.release("b", ok=True)
    assert pool.acquire()[0] == "b"  # the only one with nothing in flight
    pool.release("a", ok=False)  # a fails: resting for 1 s
    assert pool.acquire(avoid={"a"}) == ("c", True)  # b and c tie at one in flight: the next in turn
    pool.release("b", ok=True)
    pool.release("c", ok=True)
    pool.release("c", ok=True)
    assert {pool.acquire()[0] for _ in range(4)} == {"b", "c"}  # a is avoided while it rests
    now[0] = 1.01
    assert pool.acquire()[0] == "a"  # back after its cool-off
    pool.release("a", ok=False)  # second failure in a row: 2 s
    now[0] = 2.5
    assert "a" not in {pool.acquire()[0] for _ in range(4)}
    url, live = ServerPool(["x"], clock=lambda: 0.0).acquire()
    assert (url, live) == ("x", True)
    only = ServerPool(["x"], cooloff=5.0, clock=lambda: 0.0)
    only.release(only.acquire()[0], ok=False)
    assert only.acquire() == ("x", False)  # nothing live: the one back soonest, flagged


def test_requests_spread_over_the_servers(servers):
    client = backend(s.url for s in servers)
    prompts = [f"p{i}" for i in range(30)]
    results = client.generate(prompts, 2, SAMPLING)
    assert [[c.text for c in r] for r in results] == [[f"p{i}|0", f"p{i}|1"] for i in range(30)]
    counts = [len(s.records) for s in servers]
    assert sum(counts) == 30 and min(counts) >= 10  # both carried a fair share
    # --concurrency is per server (the stub counts a request until its handler returns, just after the
    # client has its answer and may send the next one: hence the one extra)
    assert 2 <= max(s.max_in_flight for s in servers) <= 3 + 1
    assert client.identity.base_url == ",".join(s.url for s in servers)
    assert client.identity.cache_fields() == backend([servers[0].url]).identity.cache_fields()  # servers: no key


def test_a_server_killed_mid_run_loses_nothing_and_the_cache_records_each_prompt_once(servers, tmp_path):
    from curate.synth.cache import CachedBackend, GenerationCache

    doomed, survivor = servers
    doomed.delay = 0.3  # slow: several of its requests are in flight when it dies
    client = backend([doomed.url, survivor.url])
    cache = GenerationCache(tmp_path / "generations.sqlite")
    cached = CachedBackend(client, cache)

    killer = doomed.kill_when_busy(answered=2, in_flight=2)
    prompts = [f"q{i}" for i in range(40)]
    results = cached.generate(prompts, 2, SAMPLING)
    killer.join(timeout=10)
    assert doomed.dead
    assert [[c.text for c in r] for r in results] == [[f"q{i}|0", f"q{i}|1"] for i in range(40)]
    lost = len(doomed.records) - doomed.answered  # requests the dead server took and never answered
    assert lost >= 2 and doomed.answered == 2
    assert doomed.answered + survivor.answered == 40  # every prompt answered exactly once
    assert len(cache) == 40
    assert client.stats.retries >= lost
    sent_before = len(survivor.records)
    again = CachedBackend(backend([doomed.url, survivor.url]), cache).generate(prompts, 2, SAMPLING)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in results]
    assert len(survivor.records) == sent_before  # a rerun pays for nothing
    cache.close()
