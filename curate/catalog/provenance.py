"""Where a version came from: its lineage walked back to the ingested sources.

The walk follows the `lineage` table from a version through every input that is itself a
catalog version, so it sees only what the catalog recorded. It gives the report its lineage
graph and the dataset card its source datasets, licenses and generator models. Nodes are
sources (files or hub ids a version was ingested from), versions, and the steps that made
them; a version made by a chain (`--strategy dedup,fisher`) has one step node per strategy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from curate.catalog.versions import DatasetVersion, lineage_of, parse_ref, resolve
from curate.catalog.workspace import Workspace
from curate.errors import CurateError

MAX_VERSIONS = 30  # a walk past this many versions stops (and says so)


@dataclass
class Node:
    id: str
    kind: str  # source | version | step
    label: str
    detail: str = ""


@dataclass
class Provenance:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    versions: list[DatasetVersion] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)  # lineage rows of every version, with "ref"
    truncated: bool = False

    @property
    def sources(self) -> list[str]:
        return [n.id for n in self.nodes if n.kind == "source"]

    @property
    def licenses(self) -> list[str]:
        """Every license recorded on a version of the walk (a selection keeps its source's)."""
        found = [v.license for v in self.versions if v.license]
        return sorted(dict.fromkeys(found))

    def generators(self) -> list[dict[str, Any]]:
        """The models that generated synthetic rows, with the license curate found for each."""
        out: dict[str, dict[str, Any]] = {}
        for step in self.steps:
            if step["op"] != "synth":
                continue
            params = step.get("params", {})
            model = step.get("model_id") or (params.get("generator") or {}).get("model") or "unknown"
            license = dict(params.get("generator_license") or {})
            out.setdefault(model, {"model": model, "model_hash": step.get("model_hash"),
                                   "recipe": step.get("strategy"), "license": license.get("id"),
                                   "license_name": license.get("name"), "license_kind": license.get("kind"),
                                   "license_url": license.get("url"), "license_source": license.get("source"),
                                   "warning": params.get("license_warning"), "versions": []})
            out[model]["versions"].append(step["ref"])
        return list(out.values())

    def graph(self) -> dict[str, Any]:
        return {"nodes": [asdict(n) for n in self.nodes], "edges": [list(e) for e in self.edges],
                "truncated": self.truncated}


def catalog_version(ws: Workspace, text: str) -> DatasetVersion | None:
    """The catalog version an input names, or None for a file, a hub id or a deleted version."""
    try:
        ref = parse_ref(text)
    except CurateError:
        return None
    if ref.version is None:
        return None  # lineage always records name@vN; a bare name is a source
    try:
        return resolve(ws, ref)
    except CurateError:
        return None


def step_label(step: dict[str, Any]) -> str:
    what = step.get("strategy") or step["op"]
    return what if step["op"] in ("select", what) else f"{step['op']}: {what}"


def step_detail(step: dict[str, Any]) -> str:
    rows_in, rows_out = step.get("rows_in"), step.get("rows_out")
    if rows_in is None and rows_out is None:
        return ""
    return f"{'?' if rows_in is None else f'{rows_in:,}'} → {'?' if rows_out is None else f'{rows_out:,}'} rows"


def provenance(ws: Workspace, version: DatasetVersion) -> Provenance:
    """Walk the lineage from `version` back to its sources."""
    found = Provenance()
    seen: set[str] = set()
    todo = [version]
    while todo:
        current = todo.pop()
        if current.ref in seen:
            continue
        if len(seen) >= MAX_VERSIONS:
            found.truncated = True
            break
        seen.add(current.ref)
        found.versions.append(current)
        found.nodes.append(Node(current.ref, "version", current.ref, f"{current.rows:,} rows"))
        steps = lineage_of(ws, current)
        first_inputs = steps[0]["inputs"] if steps else []
        previous: str | None = None
        for step in steps:
            found.steps.append({**step, "ref": current.ref})
            node = f"{current.ref}#{step['step']}"
            found.nodes.append(Node(node, "step", step_label(step), step_detail(step)))
            # a chain's later steps read the previous step's output; other inputs they name are extra parents
            parents = [previous] if previous else []
            for text in step["inputs"]:
                if previous is not None and text in first_inputs:
                    continue
                parent = catalog_version(ws, text)
                if parent is not None:
                    todo.append(parent)
                    parents.append(parent.ref)
                else:
                    if not any(n.id == text for n in found.nodes):
                        found.nodes.append(Node(text, "source", text))
                    parents.append(text)
            found.edges += [(p, node) for p in parents]
            previous = node
        if previous:
            found.edges.append((previous, current.ref))
    known = {n.id for n in found.nodes}
    found.edges = [e for e in dict.fromkeys(found.edges) if e[0] in known and e[1] in known]
    return found
