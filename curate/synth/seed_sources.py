"""Where self-instruct's seed tasks come from: `--seeds` names a seed file, any file `curate ingest`
reads, or a dataset version in the catalog.

- a `.json`/`.jsonl`/`.ndjson` file whose records have an `instruction` goes to `load_seeds` (the
  paper's seed-task format, and the shapes it accepts);
- any other source `curate ingest` reads (CSV/TSV, Parquet, a folder, a compressed file, a URL,
  a hub id) is ingested into a throwaway workspace with ingest's shape detection, then read as
  below;
- a catalog version (`NAME` or `NAME@vN`, when no file of that name exists): each row becomes a
  task whose instruction is the prompt (a chat prompt's last user turn) and whose one instance
  is the response with no input (Alpaca's empty-input case). Rows without a response still give
  instructions; the recipe checks that some tasks have instances.

The run's lineage names the source (`NAME@vN` with its content hash, or the file), and a catalog
version's license is the seeds' license unless `--seeds-license` says otherwise.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from curate.catalog.versions import DatasetVersion, parse_ref, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, CurateError, NotFound
from curate.synth.self_instruct_format import Instance, SeedTask, load_seeds

SEED_FILE_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass
class SeedSource:
    tasks: list[SeedTask]
    inputs: list[str]  # what the lineage records as the run's inputs
    license: str | None = None


def _instruction(prompt: object) -> str:
    if isinstance(prompt, list):
        users = [m.get("content") or "" for m in prompt if m.get("role") == "user"]
        return users[-1] if users else (prompt[-1].get("content") or "" if prompt else "")
    return str(prompt or "")


def tasks_from_version(version: DatasetVersion) -> list[SeedTask]:
    frame = version.scan().select("prompt", "response").collect()
    tasks = []
    for prompt, response in frame.iter_rows():
        instruction = _instruction(prompt).strip()
        if not instruction:
            continue
        instances = (Instance("", response),) if isinstance(response, str) and response.strip() else ()
        tasks.append(SeedTask(instruction, instances))
    if not tasks:
        raise BadInput(f"--seeds {version.ref}: no row has a prompt to use as a seed instruction")
    return tasks


def _has_instruction(path: Path) -> bool:
    """Whether the file's first record has an "instruction" (self-instruct's and Alpaca's shapes, which
    `load_seeds` reads); other JSON shapes (ShareGPT, messages, prompt/response) go through ingest."""
    try:
        text = path.read_text(encoding="utf-8").lstrip()
    except (OSError, UnicodeDecodeError):
        return True  # let load_seeds say what is wrong with the file
    try:
        if text.startswith("["):
            first = next(iter(json.loads(text)), None)
        else:
            first = json.loads(text.splitlines()[0]) if text else None
    except (ValueError, IndexError):
        return True
    return not isinstance(first, dict) or "instruction" in first


def _catalog_version(ws: Workspace, spec: str) -> DatasetVersion | None:
    try:
        return resolve(ws, parse_ref(spec))
    except NotFound:
        return None
    except CurateError:  # not a dataset reference at all
        return None


def _ingested(spec: str) -> list[SeedTask]:
    """Rows of any source `curate ingest` reads, through ingest itself, into a workspace deleted after."""
    from curate.catalog.ingest import IngestOptions, ingest

    folder = Path(tempfile.mkdtemp(prefix="curate-seeds-"))
    try:
        scratch = Workspace.open(folder / "ws")
        version = ingest(scratch, spec, IngestOptions(name="seeds")).version
        return tasks_from_version(version)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resolve_seeds(ws: Workspace | None, spec: str | Path) -> SeedSource:
    """The seed tasks `--seeds` names (see the module docstring)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in SEED_FILE_SUFFIXES and _has_instruction(path):
        return SeedSource(load_seeds(path), [str(path.resolve())])
    if path.exists():
        return SeedSource(_ingested(str(path)), [str(path.resolve())])
    version = _catalog_version(ws, text) if ws is not None else None
    if version is not None:
        return SeedSource(tasks_from_version(version), [version.ref, version.content_hash], version.license)
    from curate.catalog.remote import is_url

    if is_url(text) or ("/" in text and not text.startswith((".", "/", "~"))):
        return SeedSource(_ingested(text), [text])  # a URL or a hub id
    raise BadInput(f"--seeds {text}: no such file, and no dataset of that name in the workspace",
                   hint="pass a seed file (JSON lines, JSON, CSV, Parquet, ...) or a dataset: NAME or NAME@vN")
