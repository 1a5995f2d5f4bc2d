"""Options shared by every command, declared once (DESIGN §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from curate.errors import BadUsage


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """`--config FILE.yaml`: its keys are option names and become this command's defaults."""
    if value is None:
        return value
    try:
        data = yaml.safe_load(value.read_text()) or {}
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{value} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{value} must hold a mapping of option names to values")
    known = {p.name: p for p in ctx.command.params}
    flags = {o.lstrip("-").replace("-", "_"): p.name for p in ctx.command.params for o in getattr(p, "opts", [])
             if o.startswith("--")}  # `eval: x` for an option spelled --eval whose parameter is eval_
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        name = name if name in known else flags.get(name, name)
        if name not in known or name == "config":
            options = ", ".join(sorted(n.replace("_", "-") for n in known if n != "config"))
            raise typer.BadParameter(f"{value}: unknown option {key!r}; options are: {options}")
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="CURATE_WORKSPACE", show_default="./curate-ws",
                 help="Workspace folder holding the catalog and shards."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", is_eager=True, callback=_load_config,
                 help="YAML file whose keys are option names; command-line options win."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result, no progress or tables.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")]
TemplateOpt = Annotated[str, typer.Option(help="Prompt template: auto, chat or plain.")]


def parse_key_values(items: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadUsage(f"{option} {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
