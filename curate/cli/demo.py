"""`curate demo`: the whole pipeline on a built-in synthetic pool, offline."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WorkspaceOpt


def demo_cmd(
    rows: Annotated[int, typer.Option(help="Problems in the synthetic pool.")] = 2000,
    proxy_steps: Annotated[int, typer.Option(help="Training steps of the proxy model.")] = 80,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run curate end to end on a built-in pool of arithmetic word problems (no network needed).

    Examples:
      curate demo
      curate demo --rows 5000 --workspace /tmp/demo-ws
    """
    from curate.demo import run_demo  # imports torch: keep `curate --help` fast

    ws = Workspace.open(workspace)
    say = (lambda _: None) if quiet else (lambda text: ui.err.print(f"[dim]•[/] {text}"))
    with ui.progress("demo", quiet=quiet) as update:
        report = run_demo(ws, rows=rows, proxy_steps=proxy_steps, seed=seed, say=say,
                          progress=lambda what, done, total: update(done, total=total, description=what))
    if quiet:
        ui.out.print(report.ingest.version.ref)
        return
    ui.out.print(ui.key_values("curate demo", {
        "workspace": ws.root,
        "pool": f"{report.ingest.rows_read:,} rows ({report.planted_duplicates} planted exact duplicates)",
        "dataset": f"{report.ingest.version.ref}: {report.ingest.version.rows:,} rows, "
                   f"{report.ingest.duplicates} duplicates dropped at ingest",
        "proxy model": f"{report.proxy['tokens']:,} training tokens, loss {report.proxy['first_loss']:.2f} -> "
                       f"{report.proxy['final_loss']:.2f}, {report.proxy['seconds']}s",
        "proxy loss, clean responses": f"{report.loss_clean:.3f} nats/token",
        "proxy loss, corrupted responses": f"{report.loss_corrupt:.3f} nats/token",
        "seconds": report.seconds,
    }))
    ui.out.print("next: curate show demo   ·   curate export demo --to demo.jsonl --trl")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
