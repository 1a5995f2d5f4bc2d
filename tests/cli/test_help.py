"""`--help` shows what a user needs: the strategies (from the registry) and the trainers' defaults
(from their config dataclasses), so neither can drift from the code."""

from __future__ import annotations

import dataclasses
import re

import pytest

from curate.selectors.registry import STRATEGIES
from tests.conftest import run_curate_process


def help_text(*command: str) -> str:
    return run_curate_process(*command, "--help", env={"COLUMNS": "220", "TERM": "dumb"}).stdout


def option_blocks(text: str) -> dict[str, str]:
    """Each option's rows of the help table, by option name."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^│\s+(?:\*\s+)?(--[a-z][a-z0-9-]*)", line)
        if match:
            current = match.group(1)
        if current:
            blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


@pytest.mark.parametrize("command", ["select", "score"])
def test_select_and_score_help_list_every_registered_strategy(command):
    strategy = option_blocks(help_text(command))["--strategy" if command == "select" else "--scorer"]
    flat = " ".join(strategy.replace("│", " ").split())
    for name in STRATEGIES:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flat), name


@pytest.mark.parametrize("kind, config", [("sft", "curate.train.sft:SFTConfig"),
                                          ("grpo", "curate.train.grpo:GRPOConfig")])
def test_train_help_shows_the_config_defaults(kind, config):
    import importlib

    module, _, name = config.partition(":")
    defaults = {f.name: f.default for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    blocks = option_blocks(help_text("train", kind))
    checked = 0
    for option, block in blocks.items():
        field = option[2:].replace("-", "_")
        if defaults.get(field, None) is None:
            continue
        value = defaults[field]
        shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
        assert f"[default: ({shown})]" in block or f"[default: {shown}]" in block, (option, block)
        checked += 1
    assert checked >= (8 if kind == "sft" else 20)
    assert f"[default: ({defaults['steps']})]" in blocks["--steps"]
