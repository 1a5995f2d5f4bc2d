"""What a model folder was trained on, as curate recorded it.

Every model folder curate makes says so in a small JSON file:
- `training.json` (`curate train sft|grpo`, and `curate compare`'s cells): the kind of run,
  the model it started from, and its data: a dataset version's ref and content hash, or for
  a list of rows their ids;
- `proxy.json` (`--model proxy`, `curate train proxy`): the dataset version the proxy was
  trained on (older proxies name only the ref; their folder name carries the first 16
  characters of the content hash).

`training_history(model)` follows the chain of starting models back through local folders
and returns every run on it. A hub id, a folder curate did not make, or a record whose
dataset is gone from the workspace ends the chain: those cannot be checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRAINING_RECORD = "training.json"
PROXY_RECORD = "proxy.json"
MAX_RECORDED_IDS = 100_000
_PROXY_FOLDER = re.compile(r"^proxy-(?P<hash>[0-9a-f]{16})-[0-9a-f]{8}$")


@dataclass
class TrainingRun:
    model: str  # the folder holding the record
    kind: str  # sft | grpo | proxy
    data_ref: str | None = None  # name@vN
    data_hash: str | None = None  # the version's content hash (a prefix, for older proxies)
    ids: list[str] = field(default_factory=list)  # for data given as rows
    base_model: str | None = None


def write_training_record(out_dir: Path, kind: str, base_model: str, data: Any) -> None:
    """Record, beside a trained model, what it started from and what it was trained on."""
    record: dict[str, Any] = {"kind": kind, "base_model": str(base_model)}
    ref, content_hash = getattr(data, "ref", None), getattr(data, "content_hash", None)
    if ref is not None:
        record["data"] = {"ref": ref, "content_hash": content_hash, "rows": getattr(data, "rows", None)}
    elif isinstance(data, Sequence):
        ids = [row.get("id") for row in data if isinstance(row, dict)]
        record["data"] = {"rows": len(data), "ids": [i for i in ids if i][:MAX_RECORDED_IDS],
                          "ids_complete": all(ids) and len(ids) <= MAX_RECORDED_IDS}
    (Path(out_dir) / TRAINING_RECORD).write_text(json.dumps(record, indent=1))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def training_history(model: str, max_depth: int = 32) -> list[TrainingRun]:
    """Every training run recorded for `model` and the local models it started from, newest first."""
    runs: list[TrainingRun] = []
    current: str | None = model
    seen: set[Path] = set()
    while current and len(runs) < max_depth:
        folder = Path(current).expanduser()
        if not folder.is_dir() or folder.resolve() in seen:
            break
        seen.add(folder.resolve())
        record = _read(folder / TRAINING_RECORD)
        if record is not None:
            data = record.get("data") or {}
            runs.append(TrainingRun(str(folder), record.get("kind", "?"), data.get("ref"), data.get("content_hash"),
                                    list(data.get("ids") or []), record.get("base_model")))
            current = record.get("base_model")
            continue
        proxy = _read(folder / PROXY_RECORD)
        if proxy is not None:
            match = _PROXY_FOLDER.match(folder.name)
            runs.append(TrainingRun(str(folder), "proxy", proxy.get("dataset"),
                                    proxy.get("content_hash") or (match["hash"] if match else None)))
        break
    return runs
