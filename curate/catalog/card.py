"""A dataset card (README.md with YAML front matter) for an export, as the Hugging Face Hub reads it.

The front matter holds what the Hub indexes: license(s), size category, source datasets, task
categories, tags and a pretty name. The body says how the version was made: every lineage step
(strategy, parameters, model, rows in and out, drops), the sources, and for synthetic rows the
generator models with the license terms curate found for them (`curate.synth.licenses`), since
those terms travel with the data.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from curate import __version__
from curate.catalog.provenance import Provenance, provenance, step_detail
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage

# The Hub's size categories, by upper bound.
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def size_category(rows: int) -> str:
    return next((label for bound, label in SIZES if rows < bound), "n>1T" if rows >= 10**12 else "1B<n<10B")


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).expanduser().exists() and "." not in parts[0]


def card_metadata(found: Provenance, version: DatasetVersion, fmt: str) -> dict[str, Any]:
    licenses = [lic.lower() for lic in found.licenses]
    meta: dict[str, Any] = {"pretty_name": version.ref}
    if len(licenses) == 1:
        meta["license"] = licenses[0]
    elif licenses:
        meta["license"] = "other"
        meta["license_name"] = "mixed"
        meta["license_details"] = "several licenses apply: " + ", ".join(licenses)
    meta["size_categories"] = [size_category(version.rows)]
    hub = [s for s in found.sources if _is_hub_id(s)]
    meta["source_datasets"] = hub + (["original"] if len(hub) < len(found.sources) else [])
    meta["task_categories"] = ["text-generation"]
    tags = ["curate"]
    if fmt == "trl-preference":
        tags.append("dpo")
    if fmt == "verl" or any(s["op"] == "curriculum" for s in found.steps):
        tags.append("reinforcement-learning")
    if found.generators():
        tags.append("synthetic")
    meta["tags"] = tags
    return meta


def _step_line(step: dict[str, Any]) -> str:
    params = {k: v for k, v in step.get("params", {}).items()
              if v not in (None, {}, [], False, "") and k not in ("generator", "sampling", "config")}
    what = f" `{step['strategy']}`" if step.get("strategy") and step["strategy"] != step["op"] else ""
    rows = f" {step_detail(step)}" if step_detail(step) else ""
    drops = ", ".join(f"{r}: {n:,}" for r, n in (step.get("drop_counts") or {}).items())
    model = f"; model `{step['model_id']}`" if step.get("model_id") else ""
    return (f"- `{step['ref']}` step {step['step'] + 1}: **{step['op']}**{what}{rows}"
            f"{'; dropped ' + drops if drops else ''}{model}; parameters `{json.dumps(params, default=str)}`")


def chronological(found: Provenance) -> list[dict[str, Any]]:
    """The walk's steps oldest first: the sources' versions before the versions made from them."""
    by_version: dict[str, list[dict[str, Any]]] = {}
    for step in found.steps:
        by_version.setdefault(step["ref"], []).append(step)
    return [s for v in reversed(found.versions) for s in sorted(by_version.get(v.ref, []), key=lambda s: s["step"])]


def card_text(ws: Workspace, version: DatasetVersion, fmt: str, files: list[str]) -> str:
    found = provenance(ws, version)
    meta = card_metadata(found, version, fmt)
    lines = [f"# {version.ref}", "",
             f"{version.rows:,} rows ({version.prompt_type} prompts), exported by curate {__version__} "
             f"in the `{fmt}` layout: {', '.join(f'`{f}`' for f in files)}.", "",
             f"Content hash (xxh3-128 over every cell, in order): `{version.content_hash}`.", "",
             "## Sources", ""]
    lines += [f"- `{s}`" for s in found.sources] or ["- (not recorded)"]
    lines += ["", "## How it was made", ""]
    lines += [_step_line(s) for s in chronological(found)]
    if found.truncated:
        lines.append("- … (earlier steps not shown)")
    lines += ["", "## Licenses", ""]
    lines += [f"- data: {', '.join(found.licenses) if found.licenses else 'not recorded at ingest'}"]
    generators = found.generators()
    if generators:
        lines += ["", "## Synthetic rows", "",
                  "Rows made by these generator models; their license terms apply to training on the outputs:", ""]
        for g in generators:
            name = g["license_name"] or g["license"] or "unknown (declare it with --generator-license)"
            line = f"- `{g['model']}` ({g['recipe']}): {name}"
            if g.get("license_url"):
                line += f" <{g['license_url']}>"
            if g.get("warning"):
                line += f". {g['warning']}"
            lines.append(line + f" — versions: {', '.join(g['versions'])}")
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines) + "\n"
    return text


def write_card(ws: Workspace, version: DatasetVersion, folder: Path, fmt: str, files: list[str],
               overwrite: bool = False) -> Path:
    """Write `folder/README.md`; an existing README is kept unless `overwrite`."""
    path = folder / "README.md"
    if path.exists() and not overwrite:
        raise BadUsage(f"{path} already exists", hint="pass --overwrite to replace it, or export to another folder")
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".README.md.partial-{uuid.uuid4().hex[:8]}")
    partial.write_text(card_text(ws, version, fmt, files), encoding="utf-8")
    os.replace(partial, path)
    return path
