"""The proxy model behind `--model proxy`: trained on the dataset, cached by dataset and config."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace

import numpy as np
import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.workspace import Workspace
from curate.lm import byte_tokenizer
from curate.train.proxy import ProxyConfig, ensure_proxy, example_text, proxy_folder, sample_texts
from tests.conftest import write_jsonl

WORDS = ("the cat sat on a mat and then ran to the big red house where an old dog lives; "
         "it was a sunny day in the park with many trees birds and children playing").split()
TINY = ProxyConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, seq_len=64, steps=5,
                   batch_tokens=512, warmup=2, max_examples=200)


def synthetic_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": f"Q{i}: " + " ".join(rng.choices(WORDS, k=rng.randint(4, 12))) + "?",
             "response": " ".join(rng.choices(WORDS, k=rng.randint(6, 20))) + ".",
             "domain": rng.choice(["story", "chat"])} for i in range(n)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace.open(tmp_path_factory.mktemp("proxy") / "ws")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_rows(300, seed=0)


@pytest.fixture(scope="module")
def version(workspace, rows, tmp_path_factory):
    source = write_jsonl(tmp_path_factory.mktemp("data") / "pool.jsonl", rows)
    return ingest(workspace, str(source), IngestOptions(name="pool")).version


@pytest.fixture(scope="module")
def trained(workspace, version):
    """The first (uncached) call, with the steps it reported."""
    steps = []
    folder, stats = ensure_proxy(workspace, version, TINY, progress=lambda step, loss: steps.append((step, loss)))
    return folder, stats, steps


def test_ensure_proxy_trains_and_writes_a_model_folder(workspace, version, trained):
    folder, stats, steps = trained
    assert stats["cached"] is False
    assert folder == proxy_folder(workspace, version, TINY)
    assert folder.parent == workspace.models_dir and folder.is_dir()
    assert {"config.json", "model.safetensors", "tokenizer.json", "proxy.json"} <= {p.name for p in folder.iterdir()}
    saved = json.loads((folder / "proxy.json").read_text())
    assert saved["steps"] == 5 and saved["examples"] == 200  # max_examples caps the sample
    assert saved["dataset"] == version.ref
    assert saved["config"]["hidden_size"] == 32
    assert np.isfinite(saved["first_loss"]) and np.isfinite(saved["final_loss"])
    assert [s for s, _ in steps] == [1, 2, 3, 4, 5]  # progress once per step
    assert steps[0][1] == pytest.approx(saved["first_loss"])
    assert list(workspace.staging_root.iterdir()) == []  # no staging folder left behind


def test_proxy_loads_like_any_model(trained):
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs

    lm = load(str(trained[0]), dtype="float32", device="cpu")
    config = lm.model.config
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 32, 1)
    assert config.vocab_size == byte_tokenizer.VOCAB_SIZE
    assert lm.tokenizer("the cat")["input_ids"] == byte_tokenizer.byte_ids("the cat")
    (scores,) = token_logprobs(lm, encode_pairs(["Q: the cat?"], ["the dog."], lm.tokenizer))
    assert scores.shape == (len("the dog.") + 1,) and np.isfinite(scores).all() and (scores < 0).all()


def test_second_call_is_cached(workspace, version, trained):
    folder, stats, _ = trained
    weights = folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    calls = []
    start = time.perf_counter()
    again, cached = ensure_proxy(workspace, version, TINY, progress=lambda *a: calls.append(a))
    assert time.perf_counter() - start < 1.0
    assert cached["cached"] is True and again == folder
    assert calls == []  # no training step ran
    assert weights.stat().st_mtime_ns == mtime
    assert {k: v for k, v in cached.items() if k != "cached"} == {k: v for k, v in stats.items() if k != "cached"}


def test_loss_decreases_with_more_steps(workspace, version, trained):
    longer = replace(TINY, steps=40)
    folder, stats = ensure_proxy(workspace, version, longer)
    assert folder != trained[0]  # another config, another folder
    assert stats["cached"] is False and stats["steps"] == 40
    assert stats["first_loss"] == pytest.approx(trained[1]["first_loss"])  # same seed, same start
    assert stats["final_loss"] < stats["first_loss"] - 1.0
    assert stats["final_loss"] < trained[1]["final_loss"]


def test_config_and_dataset_version_pick_the_folder(workspace, version, tmp_path):
    assert proxy_folder(workspace, version, TINY) == proxy_folder(workspace, version, replace(TINY))
    assert proxy_folder(workspace, version, replace(TINY, seed=1)) != proxy_folder(workspace, version, TINY)
    assert proxy_folder(workspace, version, replace(TINY, lr=1e-3)) != proxy_folder(workspace, version, TINY)
    other_rows = synthetic_rows(120, seed=5)
    other = ingest(workspace, str(write_jsonl(tmp_path / "other.jsonl", other_rows)),
                   IngestOptions(name="pool")).version
    assert other.ref == "pool@v2" and other.content_hash != version.content_hash
    folder, stats = ensure_proxy(workspace, other, TINY)
    assert stats["cached"] is False and stats["examples"] == 120
    assert folder != proxy_folder(workspace, version, TINY)
    assert json.loads((folder / "proxy.json").read_text())["dataset"] == "pool@v2"


def test_sample_texts_is_deterministic_and_respects_the_limit(version, rows):
    everything = {example_text(r["prompt"], r["response"]) for r in rows}
    first = sample_texts(version, 50, seed=0)
    assert len(first) == 50 and len(set(first)) == 50
    assert set(first) <= everything
    assert sample_texts(version, 50, seed=0) == first
    assert sample_texts(version, 50, seed=1) != first
    assert len(sample_texts(version, 299, seed=0)) == 299
    assert sorted(sample_texts(version, 10_000, seed=0)) == sorted(everything)  # a limit above the rows: all


def test_example_text_uses_the_plain_template():
    assert example_text("What is 2+2?", "4") == "What is 2+2?\n4"
    assert example_text("Q", None) == "Q\n"
    assert example_text([{"role": "user", "content": "hi"}], "yo") == "User: hi\nAssistant: yo"


# --- regression: found while writing these tests, fixed in fd86027 ("full-row content hash") -----


def test_proxy_cache_tells_apart_datasets_with_the_same_user_ids(tmp_path):
    """With user ids (--map id=COLUMN) two datasets may share every id yet differ in text: the proxy
    cache (keyed by the version's content hash) must not hand one dataset the other's proxy."""
    ws = Workspace.open(tmp_path / "ws")
    old = [{"id": f"ex{i}", "prompt": f"question {i}?", "response": "an old answer"} for i in range(60)]
    new = [{"id": f"ex{i}", "prompt": f"question {i}?", "response": "A NEW, FIXED ANSWER"} for i in range(60)]
    first = ingest(ws, str(write_jsonl(tmp_path / "old.jsonl", old)), IngestOptions(name="old", mapping={"id": "id"}))
    second = ingest(ws, str(write_jsonl(tmp_path / "new.jsonl", new)), IngestOptions(name="new", mapping={"id": "id"}))
    assert first.version.scan().collect()["id"].to_list() == second.version.scan().collect()["id"].to_list()
    assert sample_texts(first.version, 100, 0) != sample_texts(second.version, 100, 0)  # different text
    assert first.version.content_hash != second.version.content_hash
    ensure_proxy(ws, first.version, TINY)
    folder, stats = ensure_proxy(ws, second.version, TINY)
    assert stats["cached"] is False and stats["dataset"] == "new@v1"


def test_selections_reuse_their_sources_proxy_and_the_newest_one_wins(tmp_path, monkeypatch):
    from curate.selectors.pipeline import run_select
    from curate.train import proxy as proxy_module

    ws = Workspace.open(tmp_path / "ws")
    pool = ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", synthetic_rows(80, seed=3))),
                  IngestOptions(name="pool")).version
    first, _ = ensure_proxy(ws, pool, TINY)
    picked = run_select(ws, pool.ref, "random", budget="40", seed=0, out="half").version
    again = run_select(ws, picked.ref, "random", budget="20", seed=1, out="quarter").version

    def no_training(*args, **kwargs):
        raise AssertionError("a proxy was trained although the source's proxy is cached")

    monkeypatch.setattr(proxy_module, "train_proxy", no_training)
    assert [v.ref for v in proxy_module.subset_chain(ws, again)] == [again.ref, picked.ref, pool.ref]
    for version in (pool, picked, again):  # `--model proxy` on the pool and on what was selected from it
        folder, stats = ensure_proxy(ws, version)
        assert (folder, stats["cached"]) == (first, True)
        assert proxy_module.resolve_model(ws, version, "proxy") == str(first)
    monkeypatch.undo()
    time.sleep(0.01)
    newer, _ = ensure_proxy(ws, pool, replace(TINY, steps=3))  # what `curate train proxy pool --steps 3` does
    assert newer != first and ensure_proxy(ws, again)[0] == newer


def test_without_a_cached_proxy_the_first_version_of_the_chain_is_trained_on(tmp_path, monkeypatch):
    from curate.selectors.pipeline import run_select
    from curate.train.proxy import STEPS_ENV

    ws = Workspace.open(tmp_path / "ws")
    pool = ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", synthetic_rows(60, seed=4))),
                  IngestOptions(name="pool")).version
    picked = run_select(ws, pool.ref, "random", budget="30", seed=0, out="half").version
    monkeypatch.setenv(STEPS_ENV, "2")
    folder, stats = ensure_proxy(ws, picked)
    assert stats["cached"] is False and stats["examples"] == 60  # the pool's rows, not the 30 selected
    assert json.loads((folder / "proxy.json").read_text())["dataset"] == pool.ref
