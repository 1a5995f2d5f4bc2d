"""`curate report`: one self-contained HTML page (and a JSON sidecar) about a version or a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, WorkspaceOpt


def report_cmd(
    target: Annotated[str, typer.Argument(help="NAME or NAME@vN, or the --out folder of `curate loop` / `curate train`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The HTML file to write (default: "
                                                                 "report-NAME-vN.html here, or FOLDER/report.html); "
                                                                 "the JSON sidecar goes beside it.")] = None,
    examples: Annotated[int, typer.Option(help="Example rows shown per drop reason, and kept rows per step.")] = 5,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write an HTML report: lineage, what each step kept and dropped (with examples and the score
    histogram at the cut), domains, token masks, the prompt ledger, and curves of loop and train runs.

    Examples:
      curate report demo-curated --out curated.html
      curate report gsm8k@v2
      curate report runs/loop-1
    """
    from curate.report.build import write_report  # imports numpy-heavy code: keep --help fast

    # a run folder's report reads the ledger when a workspace exists, and never creates one
    is_run = Path(target).expanduser().is_dir()
    ws = Workspace.open(workspace, create=False) if not is_run or _has_catalog(workspace) else None
    with ui.progress(f"reporting on {target}", quiet=quiet):
        files = write_report(ws, target, out, examples=examples)
    if quiet:
        ui.out.print(str(files.html))
        return
    ui.out.print(ui.key_values(f"report: {files.title}", {"html": files.html, "json": files.json,
                                                          "kind": files.kind}))


def _has_catalog(workspace: Path | None) -> bool:
    import os

    root = Path(workspace or os.environ.get("CURATE_WORKSPACE") or "curate-ws").expanduser()
    return (root / "catalog.duckdb").is_file()


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
