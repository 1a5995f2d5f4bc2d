"""The request cache: a finished generation is never paid for twice.

Key: xxh3-128 of the canonical JSON of (backend identity without the server address,
prompt, sampling parameters, n). The API key is never part of it (the backends do not
hold one). Value: the n completions (text, token ids, finish reason, when generated).

Storage: `WS/cache/generations.sqlite`, one row per request, written as soon as the
request finishes (one transaction per batch of the `hf`/`vllm` backends, per request of
the `openai` backend). SQLite rather than the DuckDB catalog because a synth run writes
it continuously for hours: every write is a small durable transaction that survives
`kill -9`, other processes (another synth run, `curate ls`) are never blocked for long,
and the catalog lock is held only to commit the final dataset version.

`CachedBackend` wraps any backend: it looks every prompt up, sends only the misses (in
chunks the backend handles well, shortest prompts first), stores each result as it
arrives and returns all of them in prompt order. With the deterministic seeds of the
backends and recipes, a rerun of an interrupted run asks for the same requests, finds
the finished ones in the cache and continues where the run stopped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash

from curate.lm.generation import Completion, SamplingParams
from curate.lm.identity import canonical

CACHE_FILE = "generations.sqlite"


@dataclass
class TimedCompletion(Completion):
    """A completion with the time it was generated and whether this run took it from the cache."""

    generated_at: float = 0.0
    cached: bool = False


def request_key(identity: Any, prompt: Any, sampling: SamplingParams, n: int) -> str:
    fields = identity.cache_fields() if hasattr(identity, "cache_fields") else dict(identity)
    payload = canonical({"identity": fields, "prompt": prompt, "sampling": asdict(sampling), "n": n})
    return xxhash.xxh3_128_hexdigest(payload.encode("utf-8"))


class GenerationCache:
    """A key -> completions table in a SQLite file (safe across threads and processes)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(path), timeout=60, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, backend TEXT NOT NULL, "
                          "model TEXT NOT NULL, completions TEXT NOT NULL, created_at REAL NOT NULL)")

    @classmethod
    def for_workspace(cls, root: Path) -> GenerationCache:
        return cls(root / "cache" / CACHE_FILE)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __len__(self) -> int:
        with self._lock:
            return self._con.execute("SELECT count(*) FROM generations").fetchone()[0]

    def keys(self) -> set[str]:
        with self._lock:
            return {k for (k,) in self._con.execute("SELECT key FROM generations")}

    def get_many(self, keys: Sequence[str]) -> dict[str, list[TimedCompletion]]:
        found: dict[str, list[TimedCompletion]] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                part = unique[start:start + 500]
                rows = self._con.execute(
                    f"SELECT key, completions, created_at FROM generations WHERE key IN ({','.join('?' * len(part))})",
                    part).fetchall()
                for key, payload, created in rows:
                    found[key] = [_load(item, created, sample) for sample, item in enumerate(json.loads(payload))]
        return found

    def put_many(self, items: Sequence[tuple[str, Any, list[Completion]]]) -> float:
        """Store (key, identity, completions) rows in one transaction; returns the time they carry."""
        now = time.time()
        rows = [(key, identity.backend, identity.model, json.dumps([_dump(c) for c in completions]), now)
                for key, identity, completions in items]
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
        return now


def _dump(completion: Completion) -> dict[str, Any]:
    return {"text": completion.text, "token_ids": list(completion.token_ids), "finish_reason": completion.finish_reason}


def _load(item: dict[str, Any], created: float, sample: int) -> TimedCompletion:
    return TimedCompletion(item["text"], list(item["token_ids"]), item["finish_reason"], sample_index=sample,
                           generated_at=created, cached=True)


@dataclass
class CacheStats:
    prompts: int = 0  # prompts asked for
    hits: int = 0  # answered from the cache
    generated: int = 0  # sent to the backend and stored


class CachedBackend:
    """Any generation backend, answered from the request cache where it can be."""

    def __init__(self, backend: Any, cache: GenerationCache,
                 on_generated: Callable[[int], None] | None = None):
        self.backend = backend
        self.cache = cache
        self.identity = backend.identity
        self.name = backend.name
        self.stats = CacheStats()
        self.on_generated = on_generated

    def generate(self, prompts: Sequence[Any], n: int, sampling: SamplingParams) -> list[list[TimedCompletion]]:
        keys = [request_key(self.identity, p, sampling, n) for p in prompts]
        found = self.cache.get_many(keys)
        self.stats.prompts += len(prompts)
        self.stats.hits += sum(1 for k in keys if k in found)
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in found:
                first.setdefault(key, index)
        todo = sorted(first.values(), key=lambda i: len(canonical(prompts[i])))
        chunk = max(1, int(self.backend.chunk_size(n)) if hasattr(self.backend, "chunk_size") else 16)
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            batch = [prompts[i] for i in part]
            stream = getattr(self.backend, "stream", None)
            if stream is not None:
                for position, completions in stream(batch, n, sampling):
                    self._store(found, [(keys[part[position]], completions)])
            else:
                results = self.backend.generate(batch, n, sampling)
                self._store(found, [(keys[i], completions) for i, completions in zip(part, results)])
        return [found[key] for key in keys]

    def _store(self, found: dict[str, list[TimedCompletion]], items: list[tuple[str, list[Completion]]]) -> None:
        now = self.cache.put_many([(key, self.identity, completions) for key, completions in items])
        for key, completions in items:
            found[key] = [TimedCompletion(c.text, list(c.token_ids), c.finish_reason, sample_index=sample,
                                          generated_at=now) for sample, c in enumerate(completions)]
        self.stats.generated += len(items)
        if self.on_generated:
            self.on_generated(len(items))
