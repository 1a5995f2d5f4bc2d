"""An API key given to synth (the environment or --api-key) is nowhere afterwards: not in the catalog, lineage,
request cache, metrics, the lock's owner file, or what the command printed; a refused key's error neither."""

from __future__ import annotations

import pytest

from tests.synth.conftest import write_seed_tasks
from tests.synth.server import FakeOpenAI

from .helpers import run

SECRET = "sk-issue15-Zq9SecretKey"


def _leaks(ws, *outputs: str) -> list[str]:
    found = [str(p) for p in ws.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    return found + [f"output {i}" for i, text in enumerate(outputs) if SECRET in text]


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_key_is_nowhere_in_the_workspace_or_the_output(tmp_path, how):
    seeds = write_seed_tasks(tmp_path / "seeds.jsonl")
    server = FakeOpenAI().start()
    ws = tmp_path / "ws"
    args = ["synth", "self-instruct", str(seeds), "--backend", "openai", "--base-url",
            server.url, "--endpoint", "completions", "--model", "served", "-n", "6", "--out", "si", "--debug"]
    try:
        if how == "env":
            result = run(*args, ws=ws, OPENAI_API_KEY=SECRET)
        else:
            result = run(*args, "--api-key", SECRET, ws=ws, OPENAI_API_KEY="")
        assert server.records and all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in server.records)
        assert "synthesized si@v1" in result.stdout
        assert not _leaks(ws, result.stdout, result.stderr)
        server.fail = [401] * 10
        refused = run(*args, "--out", "si2", "-n", "12", "--api-key", SECRET, "--max-retries", "0",
                      ws=ws, check=None)
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
        assert not _leaks(ws, refused.stdout, refused.stderr)
    finally:
        server.stop()
