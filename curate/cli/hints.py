"""Option names in error messages, fitted to the command that is running.

The layers below the CLI name options as `curate select` spells them (`--budget N`,
`--param difficulty.model_key=KEY`), but other commands run the same code under other
names: `curate mix` calls the budget `--size`, `curate curriculum` has `--model-key`.
Before an error is printed, each option the running command lacks is rewritten to the one
it has: a synonym (`--budget` -> `--size` or `--select-budget`), or `--param [STEP.]NAME=V`
-> `--NAME V`. Options inside a quoted command (`` `curate rollouts NAME --model M` ``) are
that command's and stay as they are, and so are those of another program's quoted command
(`` `hf upload REPO PATH --repo-type dataset` ``, `` `pip install ...` ``).

With CURATE_STRICT_HINTS set (the test suite sets it), an option that is still unknown
to the command it is meant for is a bug, reported as one.
"""

from __future__ import annotations

import re
from typing import Any

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
PARAM = re.compile(r"--param (?:[\w-]+\.)?(\w+)=(\S+?)(?=[\s,;)`'\"]|$)")
QUOTED = re.compile(r"`curate ([a-z][\w-]*)(?: ([a-z][\w-]*))?([^`]*)`")
FOREIGN = re.compile(r"`(?!curate )[a-z][\w.-]* [^`]*`")  # another program's command line
SYNONYMS = {"--budget": ("--size", "--select-budget")}


def options_of(command: Any) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def resolve(root: Any, args: list[str]) -> Any | None:
    """The click (sub)command that `args` run, or None when they name none (typer may vendor its
    own click, so groups are recognised by their `commands`, not by class)."""
    command, rest = root, [a for a in args if not a.startswith("-")]
    while hasattr(command, "commands"):
        if not rest:
            return None
        command = command.commands.get(rest.pop(0))
        if command is None:
            return None
    return command


def fit(text: str, command: Any) -> str:
    """`text` with the options `command` lacks replaced by the ones it has (see the module docstring)."""
    has = options_of(command)

    def param(match: re.Match) -> str:
        name = "--" + match.group(1).replace("_", "-")
        return f"{name} {match.group(2)}" if "--param" not in has and name in has else match.group(0)

    def synonym(match: re.Match) -> str:
        option = match.group(0)
        if option in has:
            return option
        return next((s for s in SYNONYMS.get(option, ()) if s in has), option)

    return _outside_quotes(text, lambda part: OPTION.sub(synonym, PARAM.sub(param, part)))


def unknown(text: str, command: Any, root: Any) -> list[str]:
    """Options in `text` that the command they belong to does not have."""
    missing = [o for o in _outside_quotes_parts(text) for o in OPTION.findall(o) if o not in options_of(command)]
    for match in QUOTED.finditer(text):
        quoted = resolve(root, [w for w in (match.group(1), match.group(2)) if w])
        if quoted is None:
            missing.append(f"`curate {match.group(1)}` (no such command)")
            continue
        missing += [o for o in OPTION.findall(match.group(3)) if o not in options_of(quoted)]
    return missing


def _outside_quotes(text: str, change) -> str:
    out, at = [], 0
    spans = sorted([*QUOTED.finditer(text), *FOREIGN.finditer(text)], key=lambda m: m.start())
    for match in spans:
        if match.start() < at:
            continue
        out += [change(text[at:match.start()]), match.group(0)]
        at = match.end()
    return "".join(out + [change(text[at:])])


def _outside_quotes_parts(text: str) -> list[str]:
    parts: list[str] = []
    _outside_quotes(text, lambda part: parts.append(part) or part)
    return parts
