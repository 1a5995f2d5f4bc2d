"""One vocabulary (docs/cli.md): every option of every command is a concept of the table, spelled
as the table says; no concept has two spellings and no short flag two meanings, old spellings
included; old spellings that still parse are listed and hidden from --help."""

from __future__ import annotations

import re

import pytest
import typer

from curate.cli.app import app, main
from curate.cli.options import OLD_SPELLINGS
from tests.conftest import REPO, cli_commands as commands, run_curate_process

ROOT = typer.main.get_command(app)
DOC = (REPO / "docs" / "cli.md").read_text()
CODE = re.compile(r"`([^`]*)`")


def rows(heading: str) -> list[list[str]]:
    """The cells of the markdown table under `heading`."""
    section = DOC[DOC.index(heading) + len(heading):].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]  # past header and rule


def concepts() -> dict[str, tuple[str, str]]:
    """long spelling -> (short spelling or "", concept)."""
    table = {}
    for concept, long, short, *_ in rows("## Concepts"):
        table[long.strip("`")] = (short.strip("`"), concept)
    return table


def old_spellings() -> set[str]:
    """The options named in the first column of "Old spellings"."""
    return {word for row in rows("## Old spellings") for code in CODE.findall(row[0])
            for word in code.split() if word.startswith("-")} | {
        short for row in rows("## Old spellings") for short in re.findall(r"`(-\w)`", row[0])}


def options(command):
    return [p for p in command.params if type(p).__name__.endswith("Option") and p.name != "help"]


def spelled(param) -> tuple[list[str], list[str]]:
    """(documented long names, documented short names) of an option."""
    names = [n for n in param.opts if n not in OLD_SPELLINGS]
    return [n for n in names if n.startswith("--")], [n for n in names if not n.startswith("--")]


def test_the_table_gives_each_concept_one_spelling():
    table = rows("## Concepts")
    names = [r[0] for r in table]
    longs = [r[1] for r in table]
    shorts = [r[2] for r in table if r[2]]
    assert len(table) > 50
    for column in (names, longs, shorts):
        assert len(column) == len(set(column)), sorted({c for c in column if column.count(c) > 1})


def test_every_option_is_a_concept_spelled_as_the_table_says():
    table = concepts()
    wrong = []
    for name, command in commands():
        for param in options(command):
            if param.hidden:
                continue
            longs, shorts = spelled(param)
            if len(longs) != 1:
                wrong.append(f"curate {name}: {param.name} is spelled {longs} (one long name per option)")
                continue
            if longs[0] not in table:
                wrong.append(f"curate {name}: {longs[0]} is not in docs/cli.md's table")
            elif shorts != ([table[longs[0]][0]] if table[longs[0]][0] else []):
                wrong.append(f"curate {name}: {longs[0]} has short {shorts}, the table says "
                             f"{table[longs[0]][0] or 'none'}")
    assert not wrong, "\n".join(wrong)


def test_one_short_flag_means_one_thing_in_every_command():
    meanings: dict[str, set[str]] = {}
    for name, command in commands():
        for param in options(command):
            longs, _ = spelled(param)
            meaning = f"hidden {param.name}" if param.hidden else longs[0]
            for flag in (*param.opts, *param.secondary_opts):
                if not flag.startswith("--"):
                    meanings.setdefault(flag, set()).add(meaning)
    assert {flag: sorted(m) for flag, m in meanings.items() if len(m) > 1} == {}


def test_every_old_spelling_that_parses_is_listed_and_every_row_is_used():
    listed = old_spellings()
    assert OLD_SPELLINGS <= listed, sorted(OLD_SPELLINGS - listed)
    parsed_old, documented = set(), set()
    for _, command in commands():
        for param in options(command):
            names = {*param.opts, *param.secondary_opts}
            parsed_old |= names if param.hidden else names & OLD_SPELLINGS
            documented |= set() if param.hidden else set(spelled(param)[0])
    assert parsed_old <= listed, sorted(parsed_old - listed)
    assert set(concepts()) <= documented, sorted(set(concepts()) - documented)


@pytest.mark.parametrize("argv, shown, hidden", [
    (["synth", "gap-fill"], ["--budget", "--strategy", "--scorer-model", "--weights", "--count"],
     ["--select-budget", "--select-model", "--target", "--dataset"]),
    (["mix"], ["--budget"], ["--size"]),
    (["ingest"], ["--out"], ["--name"]),
    (["loop"], ["--num-generations", "--param"], ["-g", "--lo"]),
])
def test_help_shows_the_spelling_and_hides_old_ones(argv, shown, hidden, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no option name cut short
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = capsys.readouterr().out
    options_shown = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", text))
    assert set(shown) <= options_shown and not set(hidden) & options_shown, (options_shown, hidden)


def test_python_dash_m_curate_runs_the_command():
    assert run_curate_process("--version").stdout.startswith("curate ")  # runs `python -m curate`


@pytest.mark.parametrize("path, argv, param, value", [
    ("ingest", ["f.jsonl", "--name", "x"], "out", "x"),
    ("mix", ["pool", "--size", "5"], "budget", "5"),
    ("loop", ["p", "-m", "m", "-g", "4"], "num_generations", 4),
    ("rollouts", ["p", "-m", "m", "-k", "4"], "num_generations", 4),
    ("synth rejection", ["-m", "m", "-k", "4", "--dataset", "p", "--max-new-tokens", "9"], "num_generations", 4),
    ("synth gap-fill", ["p", "-m", "m", "--select-budget", "5"], "budget", "5"),
    ("synth gap-fill", ["p", "-m", "m", "--select-model", "x"], "scorer_model", "x"),
    ("synth gap-fill", ["p", "-m", "m", "--target", "a=1"], "weights", ["a=1"]),
    ("compare", ["p", "-s", "x", "-m", "m", "-e", "e", "--max-new-tokens", "4"], "max_completion_length", 4),
    ("select", ["p", "-s", "fisher", "--dim", "8"], "dim", 8),
])
def test_old_spellings_still_parse(path, argv, param, value):
    command = ROOT
    for word in path.split():
        command = command.commands[word]
    assert command.make_context(path, argv).params[param] == value
