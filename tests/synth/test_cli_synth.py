"""`curate synth` as a user runs it: a subprocess against a real HTTP server (and the stories260K model)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_curate, run_curate_process
from tests.synth.server import FakeOpenAI

SECRET = "sk-cli-Kq7Secret0"


def command(*args: str, ws: Path) -> list[str]:
    return [sys.executable, "-m", "curate.cli.app", *args, "--workspace", str(ws)]


def run(*args: str, ws: Path, check: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_curate_process(*args, "--workspace", str(ws), code=check, env=env)


def cli(capsys, *args: str, ws: Path, check: int = 0) -> tuple[str, str]:
    """The same command in this process (no interpreter start-up): (stdout, stderr)."""
    return run_curate(capsys, *args, "--workspace", str(ws), code=check)[1:]


def synth_args(seed_file: Path, server: FakeOpenAI, *extra: str) -> list[str]:
    return ["synth", "self-instruct", str(seed_file), "--backend", "openai",
            "--base-url", server.url, "--endpoint", "completions", *extra]


def test_synth_over_http_records_provenance_and_warns_about_the_license(tmp_path, seed_file, openai_server, capsys):
    ws = tmp_path / "ws"
    result = run(*synth_args(seed_file, openai_server, "--model", "meta-llama/Llama-2-7b-chat-hf", "-n", "6",
                             "--out", "si"), ws=ws, env={"OPENAI_API_KEY": SECRET})
    assert "warning: the generator's license (Llama 2 Community License) forbids training other models" in \
        " ".join(result.stderr.split())
    assert "synthesized si@v1" in result.stdout
    assert openai_server.records[0].headers["Authorization"] == f"Bearer {SECRET}"
    shown = json.loads(cli(capsys, "show", "si", "--json", ws=ws)[0])
    (step,) = shown["lineage"]
    assert step["op"] == "synth" and step["strategy"] == "self-instruct"
    assert step["model_id"] == "meta-llama/Llama-2-7b-chat-hf"
    params = step["params"]
    assert params["generator"]["backend"] == "openai" and params["generator"]["base_url"] == openai_server.url
    assert params["generator_license"]["id"] == "llama2" and "forbids" in params["license_warning"]
    assert shown["license"] == "source: unknown; generator: llama2 (prohibits)"
    meta = json.loads(shown["samples"][0]["meta"])
    assert meta["synth"]["generator"]["model"] == "meta-llama/Llama-2-7b-chat-hf"
    assert meta["synth"]["sampling"]["instructions"]["temperature"] == 0.7 and meta["synth"]["seed"] == 0
    table = " ".join(cli(capsys, "show", "si", ws=ws)[0].split())
    for text in ("lineage step 0: synth", "self-instruct", "license_warning", "generated_at", "Llama 2"):
        assert text in table, text
    for path in ws.rglob("*"):  # the key is nowhere in the workspace: catalog, shards, cache
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_kill_9_mid_run_then_rerun_regenerates_nothing_finished(tmp_path, seed_file, capsys):
    """Count the server's requests: the rerun asks only for what the killed run had not cached."""
    args = ["--model", "served", "-n", "24", "--concurrency", "2", "--out", "k"]
    clean = FakeOpenAI().start()
    try:
        cli(capsys, *synth_args(seed_file, clean, *args), ws=tmp_path / "clean")
        total = len(clean.records)
    finally:
        clean.stop()
    server = FakeOpenAI(delay=0.05).start()
    ws = tmp_path / "ws"
    try:
        process = subprocess.Popen(command(*synth_args(seed_file, server, *args), ws=ws),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(server.records) < total // 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        before = len(server.records)
        with sqlite3.connect(ws / "cache" / "generations.sqlite") as con:
            cached = con.execute("SELECT count(*) FROM generations").fetchone()[0]
        assert 0 < cached <= before < total
        server.delay = 0.0
        cli(capsys, *synth_args(seed_file, server, *args), ws=ws)
        asked_again = len(server.records) - before
        assert asked_again == total - cached, (total, cached, asked_again)
    finally:
        server.stop()

    def instructions(root: Path) -> list[str]:
        shown = json.loads(cli(capsys, "show", "k", "--json", "--samples", "100", ws=root)[0])
        return [json.loads(s["meta"])["self_instruct"]["instruction"] for s in shown["samples"]]

    assert instructions(ws) == instructions(tmp_path / "clean")


def test_the_offline_command_on_stories260k(tmp_path, stories_model, shared, capsys):
    seeds = shared / "data" / "self_instruct" / "seed_tasks.jsonl"
    if not seeds.exists():
        pytest.skip(f"{seeds} is absent")
    ws = tmp_path / "ws"
    from curate.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(["synth", "self-instruct", str(seeds), "--model", str(stories_model), "-n", "2",
              "--max-completion-length", "24", "--max-instances", "1", "--no-classify", "--out", "tiny",
              "--workspace", str(ws)])
    err = " ".join(capsys.readouterr().err.split())
    if exited.value.code == 1:  # every instance cut by the token limit: the message says so
        assert "no synthesized row passed the filters" in err and "truncated" in err
        return
    assert exited.value.code == 0, err
    shown = json.loads(cli(capsys, "show", "tiny", "--json", ws=ws)[0])
    step = shown["lineage"][0]
    assert step["model_hash"] and step["params"]["generator"]["template"] == "raw"
    assert step["params"]["generator_license"]["source"] == "unknown"


def test_usage_errors(tmp_path, seed_file, capsys):
    ws = tmp_path / "ws"
    assert "needs the seed tasks" in cli(capsys, "synth", "self-instruct", "--model", "m", ws=ws, check=2)[1]
    assert "not a recipe" in cli(capsys, "synth", "magic", "--model", "m", ws=ws, check=2)[1]
    assert "needs --base-url" in cli(capsys, "synth", "self-instruct", str(seed_file),
                                     "--model", "m", "--backend", "openai", ws=ws, check=2)[1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{oops\n')
    err = cli(capsys, "synth", "self-instruct", str(bad), "--model", "m", ws=ws, check=1)[1]
    assert "bad.jsonl, line 2: not valid JSON" in " ".join(err.split()) and "Traceback" not in err
    assert "needs the source dataset" in cli(capsys, "synth", "rejection", "--model", "m", ws=ws, check=2)[1]
    assert "no dataset named 'nope'" in cli(capsys, "synth", "gap-fill", "nope", "--model", "m", ws=ws, check=1)[1]


def test_the_old_recipe_form_still_parses(tmp_path, seed_file, capsys):
    """`curate synth --recipe NAME` (docs/cli.md, old spellings) runs the subcommand NAME, old options included."""
    ws = tmp_path / "ws"
    assert "needs the seed tasks" in cli(capsys, "synth", "--recipe", "self-instruct", "--model", "m", ws=ws,
                                         check=2)[1]
    assert "not a recipe" in cli(capsys, "synth", "--recipe", "magic", "--model", "m", ws=ws, check=2)[1]
    assert "needs --base-url" in cli(capsys, "synth", "--recipe", "self-instruct", "--seeds", str(seed_file), "--model",
                                     "m", "--backend", "openai", "--out", "x", ws=ws, check=2)[1]
    assert "no dataset named 'nope'" in cli(capsys, "synth", "--recipe=gap-fill", "--model", "m", "--dataset",
                                            "nope", "--select-budget", "5", ws=ws, check=1)[1]


def test_gap_fill_and_rejection_from_the_command_line(tmp_path, openai_server, capsys):
    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.workspace import Workspace
    from tests.conftest import write_jsonl

    ws = tmp_path / "ws"
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"#### {2 * i}", "domain": "add" if i < 9 else "mul"}
            for i in range(1, 12)]
    ingest(Workspace.open(ws), str(write_jsonl(tmp_path / "q.jsonl", rows)), IngestOptions(name="q"))
    common = ["--model", "served", "--backend", "openai", "--base-url", openai_server.url, "--endpoint", "completions"]
    out, _ = cli(capsys, "synth", "gap-fill", "q", *common, "-n", "4", "--weights", "add=1",
                 "--weights", "mul=3", "--strategy", "none", "--no-responses", "--quiet", ws=ws)
    assert out.strip() == "q-gapfill@v1"
    shown = json.loads(cli(capsys, "show", "q-gapfill", "--json", ws=ws)[0])
    assert dict(shown["domains"]) == {"mul": 4}  # 3/4 of 15 rows is 11.25 > 3: every new row goes to mul
    plan = shown["lineage"][0]["params"]["plan"]
    assert [(g["name"], g["allocated"]) for g in plan["groups"]] == [("add", 0), ("mul", 4)]
    out, err = cli(capsys, "synth", "rejection", "q", *common, "-G", "2", "--reward",
                   "math", "--quiet", ws=ws)
    # canned answers hold no number, so none is right: an empty version, and the ledger has every try
    assert out.strip() == "q-rejection@v1" and "no sample was accepted (22 attempted on 11 prompts)" in err
    shown = json.loads(cli(capsys, "show", "q-rejection", "--json", ws=ws)[0])
    assert shown["rows"] == 0 and shown["drops"] == {"no_accepted_sample": 11}
    from curate.catalog.ledger import read_stats

    stats = read_stats(Workspace.open(ws))
    assert stats.height == 11 and set(stats["attempts"].to_list()) == {2}
    bad = cli(capsys, "synth", "gap-fill", "q", *common, "--weights", "add=1,mul=x", ws=ws, check=2)
    assert "the weight must be a number" in bad[1]
