"""The `curate` command end to end, through a subprocess as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_curate_process, write_jsonl


def run(*args: str, ws: Path | None = None, check: int | None = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_curate_process(*args, *(["--workspace", str(ws)] if ws is not None else []), code=check,
                              timeout=timeout)


@pytest.fixture
def pool(tmp_path) -> Path:
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i:,}",
             "domain": "add" if i % 2 else "double", "level": i % 3} for i in range(1, 400)]
    rows.append(dict(rows[0]))  # an exact duplicate
    return write_jsonl(tmp_path / "pool.jsonl", rows)


def test_ingest_show_ls_export(tmp_path, pool):
    ws = tmp_path / "ws"
    out = run("ingest", str(pool), "--out", "pool", "--license", "MIT", ws=ws).stdout
    assert "pool@v1" in out and "gsm8k" in out
    shown = json.loads(run("show", "pool", "--json", ws=ws).stdout)
    assert shown["rows"] == 399 and shown["license"] == "MIT"
    assert shown["non_null"]["answer"] == 399
    assert dict((d, n) for d, n in shown["domains"]) == {"add": 200, "double": 199}
    assert shown["lineage"][0]["drop_counts"] == {"duplicate": 1}
    assert shown["samples"][0]["answer"] == "2"
    assert run("ls", "--quiet", ws=ws).stdout.split() == ["pool@v1"]
    table = run("show", "pool@v1", ws=ws).stdout
    for section in ("columns", "domains", "lengths", "lineage", "sample 1"):
        assert section in table
    target = tmp_path / "out.jsonl"
    run("export", "pool", "--to", str(target), "--trl", ws=ws)
    first = json.loads(target.read_text().splitlines()[0])
    assert set(first) >= {"prompt", "completion", "answer"}
    assert len(target.read_text().splitlines()) == 399


def test_user_errors_have_no_traceback_and_exit_1(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b"\n')
    result = run("ingest", str(bad), ws=tmp_path / "ws", check=1)
    assert "bad.jsonl, line 2" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops}\n")
    result = run("ingest", str(bad), "--debug", ws=tmp_path / "ws", check=1)
    assert "Traceback" in result.stderr and "bad.jsonl, line 1" in result.stderr


def test_missing_prompt_lists_columns_and_suggests_map(tmp_path):
    source = write_jsonl(tmp_path / "odd.jsonl", [{"q": "x", "a": "y"}])
    result = run("ingest", str(source), ws=tmp_path / "ws", check=1)
    assert "q, a" in result.stderr and "--map prompt=" in result.stderr
    mapped = run("ingest", str(source), "--map", "prompt=q", "--map", "response=a", ws=tmp_path / "ws")
    assert "odd@v1" in mapped.stdout


def test_bad_usage_exits_2(tmp_path):
    assert run("ingest", check=2).returncode == 2
    assert run("show", "bad@name@x", ws=tmp_path / "ws", check=2).returncode == 2
    assert run("no-such-command", check=2).returncode == 2


def test_unknown_dataset_names_what_exists(tmp_path, pool):
    ws = tmp_path / "ws"
    run("ingest", str(pool), "--out", "pool", ws=ws)
    result = run("show", "poool", ws=ws, check=1)
    assert "poool" in result.stderr and "pool" in result.stderr.split("hint:")[1]
    result = run("show", "pool@v7", ws=ws, check=1)
    assert "v1" in result.stderr


def test_config_file_sets_defaults_and_flags_win(tmp_path, pool):
    ws = tmp_path / "ws"
    config = tmp_path / "ingest.yaml"
    config.write_text(f"out: fromconfig\nlicense: CC-BY-4.0\nworkspace: {ws}\n")
    run("ingest", str(pool), "--config", str(config))
    assert json.loads(run("show", "fromconfig", "--json", ws=ws).stdout)["license"] == "CC-BY-4.0"
    run("ingest", str(pool), "--config", str(config), "--out", "fromflag")
    assert run("ls", "-q", ws=ws).stdout.split() == ["fromconfig@v1", "fromflag@v1"]
    config.write_text("name: old-spelling\n")  # an old spelling is a key too (docs/cli.md)
    run("ingest", str(pool), "--config", str(config), "--new-version", ws=ws)
    assert "old-spelling@v1" in run("ls", "-q", ws=ws).stdout.split()
    config.write_text("otu: typo\n")
    result = run("ingest", str(pool), "--config", str(config), check=2)
    assert "otu" in result.stderr and " out," in result.stderr and "map," in result.stderr


def test_workspace_from_environment(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("CURATE_WORKSPACE", str(tmp_path / "envws"))
    run("ingest", str(pool), "--out", "viaenv")
    assert (tmp_path / "envws" / "catalog.duckdb").exists()
    assert run("ls", "-q").stdout.split() == ["viaenv@v1"]


def test_version_and_help():
    assert run("--version").stdout.startswith("curate ")
    help_text = run("--help").stdout
    for command in ("ingest", "ls", "show", "export", "demo", "train"):
        assert command in help_text


@pytest.mark.slow
def test_demo_runs_offline(tmp_path):
    ws = tmp_path / "ws"
    result = run("demo", "--rows", "400", "--proxy-steps", "20", "--budget", "40", "--sft-steps", "2", "--seeds", "2",
                 "--base-steps", "2", "--held-out", "20", "--loop-rounds", "1", ws=ws,
                 timeout=900)  # a whole demo, small: ~2.5 CPU-minutes; a shared machine stretches that
    assert "curate demo" in result.stdout and "held-out accuracy" in result.stdout
    assert "curate loop (thompson, reward curate.demo.loop:demo_reward)" in result.stdout
    assert "curate compare demo -s dedup,random" in result.stdout  # the commands that run every candidate arm
    assert "-s dedup,perplexity,random,token-clean" in result.stdout
    curated = json.loads(run("show", "demo-compare-dedup-perplexity-random", "--json", ws=ws).stdout)
    chain = [s["strategy"] for s in curated["lineage"]]
    assert curated["rows"] == 40 and chain == ["dedup", "perplexity", "random"]
    rounds = [json.loads(line) for line in next((ws / "demo").glob("loop-*/metrics.jsonl")).read_text().splitlines()]
    assert len(rounds) == 1 and rounds[0]["rollouts"] > 0
    pool = (ws / "demo" / "pool.jsonl").read_text().splitlines()
    copies = len(pool) - len(set(pool))
    shown = json.loads(run("show", "demo", "--json", ws=ws).stdout)
    assert copies > 0 and shown["rows"] == 400 - copies
    assert shown["lineage"][0]["drop_counts"] == {"duplicate": copies}
    unique = [json.loads(line) for line in dict.fromkeys(pool)]  # truncated and off-task rows have no final answer
    assert shown["non_null"]["answer"] == sum("#### " in r["answer"] for r in unique) < shown["rows"]
    assert len(list((ws / "models").glob("proxy-*/proxy.json"))) == 1


def test_ls_and_show_do_not_create_a_missing_workspace(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (("ls",), ("show", "pool"), ("export", "pool", "--to", str(tmp_path / "o.jsonl"))):
        result = run(*args, ws=missing, check=1)
        assert "no curate workspace" in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()


def test_ls_of_an_unknown_name_fails_and_reingest_of_same_content_makes_no_version(tmp_path, pool):
    ws = tmp_path / "ws"
    run("ingest", str(pool), "--out", "pool", ws=ws)
    result = run("ls", "pooll", ws=ws, check=1)
    assert "pooll" in result.stderr and "pool" in result.stderr.split("hint:")[1]
    again = run("ingest", str(pool), "--out", "pool", ws=ws).stdout
    assert "pool@v1 already holds exactly this content" in again and "--new-version" in again
    assert run("ls", "-q", ws=ws).stdout.split() == ["pool@v1"]
    run("ingest", str(pool), "--out", "pool", "--new-version", ws=ws)
    assert run("ls", "-q", "pool", ws=ws).stdout.split() == ["pool@v1", "pool@v2"]


def test_show_lists_every_domain_in_json_says_how_many_more_in_the_table_and_reports_conflicts(tmp_path):
    rows = [{"prompt": f"question {d}", "answer": str(d + i), "domain": f"topic{d:02d}", "response": " " if i else "r"}
            for d in range(25) for i in range(2)]
    source = write_jsonl(tmp_path / "many.jsonl", rows)
    ws = tmp_path / "ws"
    ingested = run("ingest", str(source), "--out", "many", ws=ws).stdout
    assert "answer conflicts" in ingested and "25 prompts" in ingested
    shown = json.loads(run("show", "many", "--json", ws=ws).stdout)
    assert len(shown["domains"]) == 25
    assert shown["answer_conflicts"]["prompts"] == 25 and shown["answer_conflicts"]["rows"] == 50
    assert shown["present"]["response"] == 25 and shown["non_null"]["response"] == 50
    table = run("show", "many", ws=ws).stdout
    assert "and 5 more" in table and "answer conflicts: 25 prompts" in table
    refused = run("export", "many", "--to", str(tmp_path / "sft.jsonl"), "--trl", ws=ws, check=1)
    assert "25 of 50 rows have no response" in refused.stderr and not (tmp_path / "sft.jsonl").exists()
    exported = run("export", "many", "--to", str(tmp_path / "sft.jsonl"), "--trl", "--allow-empty", ws=ws)
    assert "left out 25 of 50 rows" in exported.stderr
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 25


def test_mix_static_weights_validated_and_exact_from_the_command_line(tmp_path, pool):
    ws = tmp_path / "ws"
    run("ingest", str(pool), "--out", "pool", ws=ws)  # 200 add, 199 double
    missing = run("mix", "pool", "--budget", "10", "--method", "static", ws=ws, check=2)
    assert "static mixing needs weights" in missing.stderr and "internal error" not in missing.stderr
    negative = run("mix", "pool", "--budget", "10", "--weights", "add=1,double=-1", ws=ws, check=2)
    assert "'double=-1'" in negative.stderr
    out = run("mix", "pool", "--budget", "10", "--weights", "add=0.7,double=0.3", ws=ws).stdout
    assert "pool-mix@v1" in out
    shown = json.loads(run("show", "pool-mix", "--json", ws=ws).stdout)
    assert dict((d, n) for d, n in shown["domains"]) == {"add": 7, "double": 3}
    zero = run("mix", "pool", "--budget", "10", "--weights", "add=1,double=0", "--out", "only-add", ws=ws).stdout
    assert "only-add@v1" in zero
    assert json.loads(run("show", "only-add", "--json", ws=ws).stdout)["domains"] == [["add", 10]]
