"""Found by the kill campaign: a kill that came after `select` (or `synth`) had committed, then the rerun, left two
identical versions. A rerun of the same selection now returns the version it made (as ingest does)."""

from __future__ import annotations

from tests.conftest import write_jsonl

from .helpers import run


def test_rerunning_a_finished_selection_makes_no_second_version(tmp_path):
    ws = tmp_path / "ws"
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"prompt": f"q{i} " * (i % 5 + 1), "response": f"a{i}"}
                                                  for i in range(30)])
    run("ingest", str(pool), "--out", "pool", ws=ws)
    select = ("select", "pool", "--strategy", "random", "--budget", "10", "--out", "sel", "--quiet")
    assert run(*select, ws=ws).stdout.split() == run(*select, ws=ws).stdout.split() == ["sel@v1"]
    run("select", "pool", "--strategy", "random", "--budget", "12", "--out", "sel", ws=ws)  # another selection
    run(*select, ws=ws)  # the first again: its content differs from the latest, so a new version
    assert run("ls", "sel", "--quiet", ws=ws).stdout.split() == ["sel@v1", "sel@v2", "sel@v3"]


def test_rerunning_a_finished_synth_makes_no_second_version(tmp_path):
    """Found by the kill campaign too: every generation came from the cache, the rows were identical,
    and a second version was made."""
    from tests.synth.conftest import write_seed_tasks
    from tests.synth.server import FakeOpenAI

    seeds = write_seed_tasks(tmp_path / "seeds.jsonl")
    server = FakeOpenAI().start()
    try:
        synth = ("synth", "self-instruct", str(seeds), "--backend", "openai", "--base-url",
                 server.url, "--endpoint", "completions", "--model", "served", "-n", "8", "--out", "syn", "--quiet")
        first = run(*synth, ws=tmp_path / "ws").stdout.split()
        sent = len(server.records)
        assert run(*synth, ws=tmp_path / "ws").stdout.split() == first == ["syn@v1"]
        assert len(server.records) == sent  # and nothing was asked again
    finally:
        server.stop()
