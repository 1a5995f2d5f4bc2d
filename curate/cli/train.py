"""Training commands: `curate train proxy` (SFT and GRPO join this group)."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.catalog.versions import resolve
from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WorkspaceOpt
from curate.train.proxy import ProxyConfig, ensure_proxy

train_app = typer.Typer(help="Train models: the proxy (SFT and GRPO come with the trainer).", no_args_is_help=True)


@train_app.command("proxy")
def proxy_cmd(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = ProxyConfig.steps,
    max_examples: Annotated[int, typer.Option(help="Examples sampled from the dataset.")] = ProxyConfig.max_examples,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train (or fetch from the cache) the proxy model that `--model proxy` uses for a dataset.

    Examples:
      curate train proxy gsm8k
      curate train proxy gsm8k@v1 --steps 600
    """
    ws = Workspace.open(workspace)
    version = resolve(ws, ref)
    proxy_config = ProxyConfig(steps=steps, max_examples=max_examples, seed=seed)
    with ui.progress(f"training proxy on {version.ref}", total=steps, quiet=quiet) as update:
        folder, stats = ensure_proxy(ws, version, proxy_config, progress=lambda step, loss: update(step))
    if quiet:
        ui.out.print(str(folder))
        return
    ui.out.print(ui.key_values(f"proxy for {version.ref}", {
        "folder": folder, "cached": stats.get("cached", False), "examples": f"{stats['examples']:,}",
        "tokens": f"{stats['tokens']:,}", "loss": f"{stats['first_loss']:.3f} -> {stats['final_loss']:.3f}",
        "seconds": stats["seconds"],
    }))


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
