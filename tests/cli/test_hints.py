"""Issue 16.10: every option an error or hint names is one the command has.

Three layers: every option named anywhere in curate's source exists on some command; the
errors that shared code raises for several commands name each command's own spelling; and
the suite runs with CURATE_STRICT_HINTS (tests/conftest.py), so every error any CLI test
triggers is checked against the command that printed it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer

from curate.cli import hints
from curate.cli.app import app, main
from tests.conftest import write_jsonl

ROOT = typer.main.get_command(app)
PACKAGE = Path(__file__).resolve().parents[2] / "curate"


def commands(command=ROOT, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_strict_mode_is_on_for_the_suite():
    import os

    assert os.environ.get("CURATE_STRICT_HINTS") == "1"


CSS_PROPERTY = re.compile(r"var\(--[\w-]+\)|--[\w-]+\s*:")


def _strings(tree: ast.AST):
    """Every string literal with its node; an f-string whole, its fields as X (so a quoted command stays one piece)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inside |= {id(v) for v in node.values}
            yield node, "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            yield node, node.value


def test_every_option_named_in_the_source_exists_on_some_command():
    """Old spellings (docs/cli.md) and hidden options may be named only where the CLI declares them."""
    known = set(hints.options_of(ROOT)) | {"--help", "-h"}
    parsed = set(known) | {"--recipe"}  # `curate synth --recipe NAME`, the old form of `curate synth NAME`
    for _, command in commands():
        known |= hints.options_of(command)
        parsed |= hints.options_of(command, documented=False)
    missing = {}
    for file in PACKAGE.rglob("*.py"):
        allowed = parsed if file.parent.name == "cli" else known
        for node, text in _strings(ast.parse(file.read_text())):
            text = CSS_PROPERTY.sub("", text)  # the report's stylesheet: `--ink: #222`, `var(--ink)`
            for option in (o for part in hints._outside_quotes_parts(text) for o in hints.OPTION.findall(part)):
                if option not in allowed:
                    missing.setdefault(option, []).append(f"{file.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not missing, missing


def command(name: str):
    return hints.resolve(ROOT, name.split())


@pytest.mark.parametrize("name, text, want", [
    ("mix", "pass --budget 500 or less", "pass --budget 500 or less"),
    ("synth gap-fill", "pass --budget 5 or less", "pass --budget 5 or less"),
    ("select", "pass --budget 500 or less", "pass --budget 500 or less"),
    ("curriculum", "pick one with --param difficulty.model_key=KEY", "pick one with --model-key KEY"),
    ("mix", "pick one with --param difficulty.model_key=KEY", "pick one with --model-key KEY"),
    ("select", "pick one with --param difficulty.model_key=KEY", "pick one with --param difficulty.model_key=KEY"),
    ("mix", "run `curate select x --budget 5` first", "run `curate select x --budget 5` first"),
])
def test_fit_rewrites_options_to_the_running_commands_spelling(name, text, want):
    assert hints.fit(text, command(name)) == want


def test_unknown_names_options_of_the_command_they_belong_to():
    mix = command("mix")
    assert hints.unknown("pass --budget 5", mix, ROOT) == []
    assert hints.unknown("pass --size 5", mix, ROOT) == ["--size"]  # an old spelling, hidden: not to be printed
    assert hints.unknown("pass --lo 0.1", command("loop"), ROOT) == ["--lo"]  # a hidden option, likewise
    assert hints.unknown("run `curate rollouts NAME --model M` first", mix, ROOT) == []
    assert hints.unknown("run `curate rollouts NAME --size M` first", mix, ROOT) == ["--size"]
    assert hints.unknown("run `curate nosuch x` first", mix, ROOT) == ["`curate nosuch` (no such command)"]
    assert hints.unknown("see `curate train sft DATA --lora-r 8`", mix, ROOT) == []
    # another program's command keeps its own options; a bare quoted option is still ours
    assert hints.unknown("upload with `hf upload me/x PATH --repo-type dataset`", mix, ROOT) == []
    assert hints.unknown("pass `--repo-type x`", mix, ROOT) == ["--repo-type"]
    assert (hints.fit("`hf upload x --param difficulty.model_key=K` or --param difficulty.model_key=K", mix)
            == "`hf upload x --param difficulty.model_key=K` or --model-key K")


@pytest.fixture
def pool_ws(tmp_path):
    rows = [{"prompt": f"What is {i} + 1?", "response": f"{i + 1}", "answer": f"{i + 1}",
             "domain": "a" if i % 2 else "b"} for i in range(20)]
    ws = str(tmp_path / "ws")
    run_cli(["ingest", str(write_jsonl(tmp_path / "pool.jsonl", rows)), "--out", "pool", "-w", ws])
    return ws


def run_cli(argv: list[str], code: int = 0) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == code


@pytest.mark.parametrize("argv, hint", [
    (["select", "pool", "-s", "random", "-b", "999"], "pass --budget 20 or less"),
    (["mix", "pool", "--budget", "999", "--method", "static", "--weights", "a=1,b=1"], "pass --budget 20 or less"),
    (["mix", "pool", "--budget", "5", "--method", "static", "--weights", "a"], "e.g. --weights math=0.6,code=0.4"),
    (["curriculum", "pool"], "pick one with --model-key KEY"),
    (["mix", "pool", "--budget", "5", "--method", "progress"], "pick one with --model-key KEY"),
    (["select", "pool", "-s", "difficulty", "-b", "5"], "pick one with --param difficulty.model_key=KEY"),
])
def test_shared_errors_name_each_commands_own_options(pool_ws, argv, hint, capsys, monkeypatch):
    """Under CURATE_STRICT_HINTS an unknown option would be an internal error (exit 1), not exit 2."""
    from curate.selectors.rl import difficulty

    monkeypatch.setattr(difficulty, "ledger_model_keys", lambda ws, ids: ["model-a", "model-b"])
    capsys.readouterr()
    run_cli([*argv, "-w", pool_ws], code=2)
    err = capsys.readouterr().err
    assert f"hint: {hint}" in err, err


def test_a_hint_quoting_another_command_is_checked_against_that_command(pool_ws, capsys, monkeypatch):
    from curate.selectors.rl import difficulty

    monkeypatch.setattr(difficulty, "ledger_model_keys", lambda ws, ids: [])
    capsys.readouterr()
    run_cli(["curriculum", "pool", "-w", pool_ws], code=2)
    assert "`curate rollouts NAME --model M`" in capsys.readouterr().err
