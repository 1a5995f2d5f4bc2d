"""Option names in error messages, fitted to the command that is running.

The layers below the CLI name options as `curate select` spells them (`--budget N`,
`--param difficulty.model_key=KEY`), but a command without `--param` runs the same code
with the parameter as an option of its own (`curate curriculum --model-key`). Before an
error is printed, `--param [STEP.]NAME=V` becomes `--NAME V` where the running command has
that option and no `--param`. Options inside a quoted command (`` `curate rollouts NAME
--model M` ``) are that command's and stay as they are, and so are those of another program's
quoted command (`` `hf upload REPO PATH --repo-type dataset` ``, `` `pip install ...` ``).

With CURATE_STRICT_HINTS set (the test suite sets it), an option that is still unknown
to the command it is meant for, or is an old spelling (docs/cli.md), is a bug, reported as one.
"""

from __future__ import annotations

import re
from typing import Any

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
PARAM = re.compile(r"--param (?:[\w-]+\.)?(\w+)=(\S+?)(?=[\s,;)`'\"]|$)")
QUOTED = re.compile(r"`curate ([a-z][\w-]*)(?: ([a-z][\w-]*))?([^`]*)`")
FOREIGN = re.compile(r"`(?!curate )[a-z][\w.-]* [^`]*`")  # another program's command line


def options_of(command: Any, documented: bool = True) -> set[str]:
    """The options `command` documents (not hidden, not an old spelling), or every one it parses."""
    from curate.cli.options import OLD_SPELLINGS

    return {name for param in command.params if not (documented and getattr(param, "hidden", False))
            for name in (*param.opts, *param.secondary_opts) if not (documented and name in OLD_SPELLINGS)}


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

    return _outside_quotes(text, lambda part: PARAM.sub(param, part))


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
