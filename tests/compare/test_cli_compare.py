"""`curate compare` from the command line (in process, as `main(argv)`), and its section in `curate show`."""

from __future__ import annotations

import json

from curate.catalog.workspace import Workspace
from tests.compare.helpers import pool_and_eval
from tests.conftest import run_curate
from tests.selectors.sft_helpers import ingest_rows


def test_compare_prints_a_table_and_json_and_show_lists_it(tmp_path, capsys, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ws = Workspace.open(tmp_path / "ws")
    pool_and_eval(ws, tmp_path)
    common = ["compare", "pool", "--strategy", "length", "--budget", "8", "--seeds", "2", "--steps", "2",
              "--model", str(tiny_model_dir), "--scorer-model", str(tiny_model_dir), "--eval", "held",
              "--metric", "loss", "--lr", "1e-3", "--batch-tokens", "1024", "--device", "cpu", "--out", "ablation",
              "--workspace", str(ws.root)]
    code, out, err = run_curate(capsys, *common, "--resume")
    assert code == 2 and "--resume: comparison ablation has no cells with these settings yet" in err

    code, out, err = run_curate(capsys, *common)
    assert code == 0, err
    assert "loss on held@v1 (lower is better), 8 rows from pool@v1 per arm" in out
    assert "random" in out and "length" in out and "(base, untrained)" in out and "W/T/L" in out
    assert "comparison ablation" in out and "5 run now, 0 reused" in out
    assert "note:" in err and "cannot be checked" in err  # the tiny base has no training record

    code, out, err = run_curate(capsys, *common, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["computed"], payload["reused"], payload["metric"]) == (0, 5, "loss")
    assert [a["strategy"] for a in payload["arms"]] == ["random", "length"]
    assert all(a["n"] == 2 and a["mean"] > 0 for a in payload["arms"])
    assert payload["arms"][1]["diff_ci_bootstrap"] is not None and len(payload["cells"]) == 5
    assert payload["config"]["scorer_model"] == str(tiny_model_dir) and payload["base_model"] == str(tiny_model_dir)

    code, out, err = run_curate(capsys, "show", "pool", "--samples", "0", "--workspace", str(ws.root))
    assert code == 0 and "comparisons (curate compare)" in out and "ablation" in out
    code, out, err = run_curate(capsys, "show", "pool", "--json", "--workspace", str(ws.root))
    shown = json.loads(out)["comparisons"]
    assert {(c["strategy"], c["seeds"], c["metric"]) for c in shown} == {
        ("(base)", 1, "loss"), ("random", 2, "loss"), ("length", 2, "loss")}


def test_leakage_is_a_clear_error_without_a_traceback(tmp_path, capsys, tiny_model_dir):
    ws = Workspace.open(tmp_path / "ws")
    pool, _ = pool_and_eval(ws, tmp_path)
    ingest_rows(ws, tmp_path, pool.scan().head(3).collect().select("prompt", "response", "answer").to_dicts(), "leaky")
    code, out, err = run_curate(capsys, "compare", "pool", "-s", "length", "--model", str(tiny_model_dir),
                            "--eval", "leaky", "--budget", "8", "--workspace", str(ws.root))
    assert code == 1 and "error: leakage: EVAL leaky@v1 shares 3 of its 3 rows with POOL pool@v1" in err
    assert "hint:" in err and "Traceback" not in err + out
    code, out, err = run_curate(capsys, "compare", "pool", "-s", "length", "--model", "proxy", "--eval", "held",
                            "--workspace", str(ws.root))
    assert code == 2 and "the proxy belongs in --scorer-model" in err


def test_a_config_file_names_options_as_they_are_spelled(tmp_path, capsys, tiny_model_dir):
    ws = Workspace.open(tmp_path / "ws")
    pool_and_eval(ws, tmp_path)
    config = tmp_path / "compare.yaml"
    config.write_text(f"eval: held\nstrategy: [length, 'dedup,fisher']\nmodel: {tiny_model_dir}\nbudget: 8\n"
                      f"scorer-model: {tiny_model_dir}\nworkspace: {ws.root}\n")
    code, out, err = run_curate(capsys, "compare", "pool", "--config", str(config), "--resume")
    assert code == 2 and "--resume: comparison pool-compare has no cells with these settings yet" in err
    config.write_text("evaluate: held\n")
    code, out, err = run_curate(capsys, "compare", "pool", "--config", str(config))
    assert code == 2 and "unknown option 'evaluate'" in err


def test_the_defaults_the_help_shows_are_the_config_defaults():
    import typer.main

    from curate.cli.app import app
    from curate.compare import CompareConfig

    command = typer.main.get_command(app).commands["compare"]
    command.get_help(command.make_context("compare", ["pool", "-s", "x", "-m", "m", "-e", "e"]))  # help fills them
    config = CompareConfig(pool="p", eval="e", model="m", strategies=["random"])
    shown = {p.name: p.show_default for p in command.params
             if isinstance(p.show_default, str) and p.name not in ("workspace", "seed", "wait")}
    assert "POOL-compare" in next(p.help for p in command.params if p.name == "out")
    assert shown.pop("eval_base") == ("on" if config.eval_base else "off")
    assert shown.pop("reward") == ",".join(config.reward)
    assert shown.pop("max_completion_length") == str(config.max_new_tokens)
    expected = {name: (("on" if value else "off") if isinstance(value, bool) else str(value))
                for name, value in ((name, getattr(config, name)) for name in shown)}
    assert len(shown) >= 6 and shown == expected
