"""`curate report`: gather the numbers of a version or a run folder, write the HTML page and its
JSON sidecar (the same numbers, for scripts and for checking the page).

The version part of the sidecar is what `curate show REF --json` prints, computed by the same
function (`curate.catalog.summary.summarize`), so the two always agree.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from curate import __version__
from curate.catalog.provenance import provenance
from curate.catalog.summary import summarize
from curate.catalog.versions import DatasetVersion, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage, CurateError
from curate.report import rl
from curate.report.comparisons import comparisons_section
from curate.report.steps import step_sections
from curate.report.tokens import token_section


@dataclass
class ReportFiles:
    html: Path
    json: Path
    kind: str  # version | loop | train
    title: str


def show_payload(ws: Workspace, version: DatasetVersion, samples: int = 3) -> dict[str, Any]:
    """The fields `curate show REF --json` prints, as JSON values."""
    return json.loads(json.dumps(summarize(ws, version, samples=samples).payload(), default=str))


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _stamp() -> dict[str, str]:
    return {"curate_version": __version__,
            "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def version_data(ws: Workspace, version: DatasetVersion, examples: int = 5) -> dict[str, Any]:
    """Everything the report shows about a version."""
    show = show_payload(ws, version)
    found = provenance(ws, version)
    ledger = rl.ledger_section(ws, version)
    return {
        "kind": "version", **_stamp(), "title": f"{version.ref}",
        "show": show,
        "lineage_graph": found.graph(),
        "sources": found.sources,
        "licenses": found.licenses,
        "generators": found.generators(),
        "steps": step_sections(ws, version, show["lineage"], examples),
        "token_mask": token_section(version, show["lineage"]),
        "ledger": ledger,
        "curriculum": rl.curriculum_stages(ws, version),
        "comparisons": comparisons_section(ws, version),
    }


def run_data(ws: Workspace | None, folder: Path) -> dict[str, Any]:
    """Everything the report shows about a `curate loop` or `curate train` output folder."""
    kind = rl.run_kind(folder)
    if kind == "loop":
        section = rl.loop_section(folder)
        section["ledger"] = []
        if ws is not None and section.get("dataset"):
            try:
                dataset = resolve(ws, section["dataset"])
            except CurateError:
                section["ledger_note"] = f"{section['dataset']} is not in workspace {ws.root}"
            else:
                section["ledger"] = [e for e in rl.ledger_section(ws, dataset)
                                     if e["model_key"] == section.get("model_key")]
        title = f"loop run {folder.name}"
    elif kind == "train":
        section = rl.train_section(folder)
        title = f"training run {folder.name}"
    else:
        raise BadUsage(f"{folder} is neither a dataset nor a run folder (no loop.json or metrics.jsonl)",
                       hint="pass NAME[@vN], or the --out folder of `curate loop` or `curate train`")
    return {**section, **_stamp(), "title": title}


def default_out(target: str, data: dict[str, Any]) -> Path:
    if data["kind"] == "version":
        name, _, version = data["show"]["version"].partition("@")
        return Path(f"report-{name}-{version}.html")
    return Path(target) / "report.html"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_report(ws: Workspace | None, target: str, out: str | os.PathLike | None = None,
                 examples: int = 5) -> ReportFiles:
    """Write the report of `target` (NAME[@vN] or a run folder) to `out` (HTML) and its .json sidecar."""
    from curate.report.html import render

    if examples < 0:
        raise BadUsage(f"--examples must be 0 or more, got {examples}")
    folder = Path(target).expanduser()
    if folder.is_dir():
        data = run_data(ws, folder)
    else:
        if ws is None:
            raise BadUsage(f"{target} is not a folder, and a dataset needs a workspace")
        data = version_data(ws, resolve(ws, target), examples)
    html_path = Path(out).expanduser() if out else default_out(target, data)
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise BadUsage(f"--out {html_path} must end in .html", hint="the JSON sidecar is written beside it")
    json_path = html_path.with_suffix(".json")
    data = finite(json.loads(json.dumps(data, default=str)))
    _atomic_write(json_path, json.dumps(data, indent=1, allow_nan=False))
    _atomic_write(html_path, render(data))
    return ReportFiles(html_path, json_path, data["kind"], data["title"])
