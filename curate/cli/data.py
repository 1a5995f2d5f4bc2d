"""Data commands: ingest, ls, show, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from curate.catalog.export import LAYOUTS, export_version
from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.shapes import parse_map
from curate.catalog.summary import answer_conflicts, summarize
from curate.catalog.versions import check_name, list_versions, parse_ref, resolve
from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import Command, ConfigOpt, DebugOpt, JsonOpt, QuietOpt, WorkspaceOpt, out_option
from curate.errors import BadUsage


def ingest_cmd(
    source: Annotated[str, typer.Argument(help="A .jsonl/.json/.csv/.tsv/.parquet file, a folder, or a hub id.")],
    out: Annotated[str | None, out_option("Name of the new dataset (default: the file's stem).")] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="DST=SRC: take a canonical column from SRC.")] = None,
    domain: Annotated[str | None, typer.Option(help="Set this domain on every row.")] = None,
    domain_field: Annotated[str | None, typer.Option(help="Take the domain from this column.")] = None,
    license: Annotated[str | None, typer.Option(help="License of the data, recorded with the version.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="jsonl, json, csv, tsv or parquet (default: by name).")] = None,
    split: Annotated[str | None, typer.Option(help="Split of a hub dataset or a DatasetDict folder.")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Drop rows without a prompt (recorded) instead of failing.")] = False,
    new_version: Annotated[bool, typer.Option("--new-version", help="Make a new version even when the content "
                                              "equals the latest version's (by default nothing is written).")] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Ingest a dataset as a new version: shapes are detected, exact duplicates dropped.

    Examples:
      curate ingest train.jsonl --out gsm8k
      curate ingest pool.csv --out pool --map prompt=question --map response=solution --domain math
    """
    ws = Workspace.open(workspace)
    dataset_name = out or Path(source.rstrip("/")).name.split(".")[0]
    options = IngestOptions(name=dataset_name, mapping=parse_map(map_), domain=domain, domain_field=domain_field,
                            license=license, format=format, split=split, skip_invalid=skip_invalid,
                            new_version=new_version)
    with ui.progress(f"ingesting {source}", quiet=quiet) as update:
        report = ingest(ws, source, options, progress=update)
    if quiet:
        ui.out.print(report.version.ref)
        return
    if report.unchanged:
        ui.out.print(f"{report.version.ref} already holds exactly this content (content hash "
                     f"{report.version.content_hash[:16]}): no new version was made. "
                     "Pass --new-version to make one anyway.")
        return
    conflicts = answer_conflicts(report.version)
    duplicates = ui.human(report.duplicates)
    if report.duplicates_differing:
        duplicates += f" ({report.duplicates_differing:,} differ in meta or domain: kept in the drop details)"
    ui.out.print(ui.key_values(f"ingested {report.version.ref}", {
        "source": source, "shape": report.shape, "rows read": ui.human(report.rows_read),
        "rows kept": ui.human(report.version.rows), "exact duplicates dropped": duplicates,
        "invalid rows dropped": ui.human(report.invalid), "prompt type": report.version.prompt_type,
        "license": report.version.license, "seconds": report.seconds,
        **({"answer conflicts": f"{conflicts.prompts:,} prompts with different answers ({conflicts.rows:,} rows, "
                                f"all kept; see `curate show {report.version.ref}`)"} if conflicts.prompts else {}),
    }))
    if report.answers_normalised:
        ui.note("note", f"{report.answers_normalised:,} gold answers were numbers with units or "
                     "separators (e.g. `9 (apples)`, `1,200`): `answer` holds the number, `meta.answer_original` "
                     "the text (docs/formats.md)")


def ls_cmd(
    name: Annotated[str | None, typer.Argument(help="Only this dataset's versions.")] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List dataset versions.

    Examples:
      curate ls
      curate ls gsm8k
    """
    if name:
        check_name(name)
    ws = Workspace.open(workspace, create=False)
    versions = list_versions(ws, name)
    if name and not versions:
        resolve(ws, name)  # raises NotFound naming the datasets there are
    if quiet:
        for v in versions:
            ui.out.print(v.ref)
        return
    rows = [[v.ref, ui.human(v.rows), v.prompt_type, v.license, v.created_at.strftime("%Y-%m-%d %H:%M")]
            for v in versions]
    ui.out.print(ui.table(f"datasets in {ws.root}", ["version", "rows", "prompt", "license", "created"], rows))


def show_cmd(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    samples: Annotated[int, typer.Option(help="Sample rows to print.")] = 3,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Schema, counts by domain, length statistics, lineage and sample rows of a version.

    Examples:
      curate show gsm8k
      curate show gsm8k@v1 --samples 5
    """
    parse_ref(ref)  # a malformed reference is bad usage, whether or not the workspace exists
    ws = Workspace.open(workspace, create=False)
    version = resolve(ws, ref)
    summary = summarize(ws, version, samples=samples)
    conflicts = summary.conflicts
    if as_json:
        ui.out.print_json(json.dumps({**summary.payload(), "comparisons": _comparisons_json(ws, version)}, default=str))
        return
    out = ui.out
    out.print(ui.key_values(version.ref, {
        "rows": ui.human(version.rows), "shards": version.shards, "prompt type": version.prompt_type,
        "license": version.license, "content hash": version.content_hash, "created": version.created_at,
        "path": version.path,
    }))
    out.print(ui.table("columns", ["column", "type", "present (not blank)", "blank"],
                       [[c, t, f"{summary.present.get(c, 0):,}/{version.rows:,}",
                         f"{summary.non_null.get(c, 0) - summary.present.get(c, 0):,}"]
                        for c, t in version.columns.items()]))
    shown = summary.domains[:SHOWN_DOMAINS]
    domain_rows = [[d if d is not None else "(none)", f"{n:,}"] for d, n in shown]
    if len(summary.domains) > len(shown):
        rest = summary.domains[len(shown):]
        domain_rows.append([f"... and {len(rest):,} more (--json lists all)", f"{sum(n for _, n in rest):,}"])
    out.print(ui.table(f"domains ({len(summary.domains):,})", ["domain", "rows"], domain_rows))
    out.print(ui.table("lengths (characters)", ["column", "min", "median", "mean", "p95", "max"],
                       [[c, *(ui.human(s[k]) for k in ("min", "median", "mean", "p95", "max"))]
                        for c, s in summary.lengths.items()]))
    if conflicts.prompts:
        out.print(f"answer conflicts: {conflicts.prompts:,} prompts appear with different answers "
                  f"({conflicts.rows:,} rows, all kept); the first {len(conflicts.examples)}:")
        out.print(ui.table("", ["prompt", "answers"],
                           [[_clip(e["prompt"], 120), ", ".join(_clip(a, 40) for a in e["answers"])]
                            for e in conflicts.examples]))
    for step in summary.lineage:
        out.print(ui.key_values(f"lineage step {step['step']}: {step['op']}", {
            "inputs": ", ".join(step["inputs"]), "strategy": step["strategy"],
            "params": json.dumps({k: v for k, v in step["params"].items() if v not in (None, {}, [], False)}),
            "model": step["model_id"] and f"{step['model_id']} ({step['model_hash']})",
            "rows": f"{step['rows_in']:,} -> {step['rows_out']:,}", "dropped": json.dumps(step["drop_counts"]),
            "seed": step["seed"], "code": step["code_version"], "when": step["created_at"],
            "seconds": step["duration_s"],
        }))
    if summary.drops:
        out.print(ui.table("dropped examples", ["reason", "count"], [[r, f"{n:,}"] for r, n in summary.drops.items()]))
    for i, row in enumerate(summary.samples):
        out.print(ui.key_values(f"sample {i + 1}", {k: _clip(v) for k, v in row.items()}))
    _print_comparisons(ws, version)


def _comparisons_json(ws: Workspace, version) -> list[dict]:
    from curate.catalog.comparisons import comparisons_of

    return comparisons_of(ws, version.ref).to_dicts()


def _print_comparisons(ws: Workspace, version) -> None:
    """The `curate compare` runs on this pool: per comparison and arm, the finished seeds and mean metric."""
    from curate.catalog.comparisons import comparisons_of

    frame = comparisons_of(ws, version.ref)
    if frame.height:
        ui.out.print(ui.table("comparisons (curate compare)", ["comparison", "eval", "base", "recipe", "arm",
                                                               "seeds", "metric", "mean"],
                              [[str(r["name"]), r["eval"], str(r["base_model"]), r["recipe_hash"],
                                r["strategy"], r["seeds"], r["metric"],
                                "-" if r["mean"] is None else f"{r['mean']:.4g}"] for r in frame.to_dicts()]))


SHOWN_DOMAINS = 20


def _clip(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def export_cmd(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    to: Annotated[Path, typer.Option("--to", help="Output: FILE.parquet, FILE.jsonl, or a folder (datasets).")],
    format: Annotated[str | None, typer.Option("--format", help="parquet, jsonl or hf (default: by --to), or a "
                                                              "trainer's layout: verl, trl-preference, trl-messages, "
                                                              "llamafactory (docs/formats.md).")] = None,
    columns: Annotated[str, typer.Option(help="Layout: " + ", ".join(LAYOUTS) + ".")] = "canonical",
    trl: Annotated[bool, typer.Option("--trl", help="Same as --columns prompt-completion.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="SFT layouts (--trl, messages): leave out rows "
                                              "without a response (counted) instead of refusing.")] = False,
    card: Annotated[bool, typer.Option("--card", help="Write a dataset card (README.md) beside the file; a folder "
                                                      "export always gets one.")] = False,
    push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", help="Upload the export and its card to this "
                                                                          "Hub dataset repo (REPO_ID).")] = None,
    data_source: Annotated[str | None, typer.Option(help="verl: the data_source column (selects verl's reward "
                                                         "function; default: the dataset name).")] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a version to Parquet, JSONL or a datasets folder, optionally in TRL's, verl's or LLaMA-Factory's layout.

    Examples:
      curate export gsm8k --to gsm8k.parquet
      curate export gsm8k@v2 --to sft.jsonl --trl
      curate export prompts --to grpo.parquet --columns prompt
      curate export mixed --to sft.jsonl --trl --allow-empty
      curate export prompts --to rl.parquet --format verl --data-source openai/gsm8k
      curate export prefs --to dpo.jsonl --format trl-preference --card
    """
    from curate.catalog.export_formats import TRAINER_FORMATS, card_folder, export_for_trainer, publish

    parse_ref(ref)  # a malformed reference is bad usage, whether or not the workspace exists
    ws = Workspace.open(workspace, create=False)
    version = resolve(ws, ref)
    readme = card_folder(to, None if format in TRAINER_FORMATS else format) / "README.md"
    if (card or push_to_hub) and readme.exists() and not overwrite and readme.parent != Path(to).expanduser():
        raise BadUsage(f"{readme} already exists", hint="pass --overwrite to replace it, or export to another folder")
    if format in TRAINER_FORMATS:
        report = export_for_trainer(version, to, format, overwrite=overwrite, data_source=data_source)
    else:
        report = export_version(version, to, format=format, columns="prompt-completion" if trl else columns,
                                overwrite=overwrite, allow_empty=allow_empty)
    if report.dropped_empty:
        ui.err.print(f"left out {report.dropped_empty:,} of {version.rows:,} rows without a response (--allow-empty)")
    written = publish(ws, version, report, card=card, repo_id=push_to_hub, overwrite=overwrite)
    if quiet:
        ui.out.print(str(report.path))
        return
    ui.out.print(ui.key_values(f"exported {version.ref}", {
        "to": report.path, "format": report.format, "columns": report.columns, "rows": f"{report.rows:,}",
        **({"left out (no response)": f"{report.dropped_empty:,}"} if report.dropped_empty else {}),
        **{k.replace("_", " "): v for k, v in vars(report).items() if k in ("data_source", "dataset_info") and v},
        **written}))


def register(app: typer.Typer) -> None:
    app.command("ingest", cls=Command)(ingest_cmd)
    app.command("ls", cls=Command)(ls_cmd)
    app.command("show", cls=Command)(show_cmd)
    app.command("export", cls=Command)(export_cmd)
