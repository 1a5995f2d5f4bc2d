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
WaitOpt = Annotated[float | None, typer.Option(
    "--wait", min=0, show_default="$CURATE_LOCK_TIMEOUT or 60",
    help="Seconds to wait while another command holds the workspace (a commit takes it briefly), with a "
         "message; 0 fails at once with 'workspace busy (pid N, command C)'.")]


def open_workspace(path: Path | None, wait: float | None = None, *, create: bool = True):
    """The workspace a command works in, `--wait` applied; waits and stale locks are reported on stderr."""
    from curate.catalog.workspace import Workspace
    from curate.cli.ui import note

    return Workspace.open(path, lock_timeout=wait, create=create, on_wait=lambda message: note("note", message))
EngineOpt = Annotated[str, typer.Option("--engine", help="Where model scoring runs: local (this process) or ray "
                                                         "(Ray Data actors; pip install 'curate[ray]').")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="--engine ray: model-holding actors (one GPU "
                                                                  "each where the cluster has GPUs).")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="--engine ray: join the Ray cluster at this "
                                                                  "address (e.g. auto); without it a local Ray "
                                                                  "starts.")]


def parse_key_values(items: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadUsage(f"{option} {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
NprocOpt = Annotated[int | None, typer.Option("--nproc", help="Train on N processes (torchrun: gloo on CPU, nccl "
                                                              "with one GPU per process); 1: this process.")]
FsdpOpt = Annotated[bool | None, typer.Option("--fsdp/--no-fsdp", help="With --nproc: shard weights, gradients and optimizer state "
                                                      "over the processes (FSDP2) instead of replicating them.")]
BaseUrlOpt = Annotated[list[str] | None, typer.Option("--base-url", help="OpenAI-compatible server URL (e.g. vLLM "
                                                                         "serve's http://host:8000/v1); repeat to "
                                                                         "spread requests over several servers.")]
