"""The RL parts of the report: the prompt ledger's pass rates, curriculum stages, and run folders
written by `curate loop` (`loop.json`, `metrics.jsonl`) and `curate train` (`metrics.jsonl`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadUsage

RATE_BINS = 10


def ledger_section(ws: Workspace, version: DatasetVersion) -> list[dict[str, Any]]:
    """Per model key with rollouts of this version's prompts: the pass-rate histogram and shares."""
    ids = version.scan().select("id").collect()
    with ws.catalog() as con:
        con.register("_report_ids", ids.to_arrow())
        frame = query_frame(con, "SELECT s.model_key, s.attempts, s.successes, s.reward_mean, s.reward_var, "
                                 "s.zero_var_streak FROM prompt_stats s JOIN _report_ids i ON i.id = s.prompt_id "
                                 "WHERE s.attempts > 0")
        con.unregister("_report_ids")
    out = []
    if frame.height == 0:
        return out
    for (key,), group in frame.group_by(["model_key"], maintain_order=True):
        rate = (group["successes"] / group["attempts"]).to_numpy()
        counts, edges = np.histogram(rate, bins=RATE_BINS, range=(0.0, 1.0))
        out.append({"model_key": key, "prompts_seen": group.height, "prompts_unseen": ids.height - group.height,
                    "rollouts": int(group["attempts"].sum()), "mean_pass_rate": float(rate.mean()),
                    "all_right": int((rate >= 1.0).sum()), "all_wrong": int((rate <= 0.0).sum()),
                    "zero_variance_streak": int((group["zero_var_streak"] > 0).sum()),
                    "histogram": {"edges": edges.tolist(), "prompts": counts.tolist()}})
    return sorted(out, key=lambda item: -item["rollouts"])


def curriculum_stages(ws: Workspace, version: DatasetVersion) -> list[dict[str, Any]]:
    """Stage versions `curate curriculum` cut from this version, in stage order."""
    with ws.catalog() as con:
        frame = query_frame(con, "SELECT name, version, inputs, params, rows_out FROM lineage WHERE op = 'curriculum'")
    stages = []
    for row in frame.to_dicts():
        if version.ref not in json.loads(row["inputs"]):
            continue
        params = json.loads(row["params"])
        rate = params.get("pass_rate") or [None, None]
        stages.append({"version": f"{row['name']}@v{row['version']}", "stage": params.get("stage"),
                       "layout": params.get("layout"), "pass_rate_min": _finite(rate[0]),
                       "pass_rate_max": _finite(rate[1]), "rows": row["rows_out"], "model_key": params.get("model_key")})
    return sorted(stages, key=lambda s: (s["version"].rsplit("-s", 1)[0], s["stage"] or 0))


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BadUsage(f"{path}:{number} is not valid JSON ({exc.msg})",
                           hint="the run folder's metrics file is damaged; rerun or fix that line") from None
    return rows


def run_kind(folder: Path) -> str | None:
    """'loop' for a `curate loop` folder, 'train' for a `curate train` folder, None otherwise."""
    if (folder / "loop.json").is_file():
        return "loop"
    if (folder / "metrics.jsonl").is_file():
        return "train"
    return None


def loop_section(folder: Path) -> dict[str, Any]:
    """Per-round rewards, zero-variance share and rollouts, plus every GRPO step's metrics."""
    try:
        state = json.loads((folder / "loop.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadUsage(f"cannot read {folder / 'loop.json'}: {exc}", hint="is this a `curate loop --out` folder?") from None
    steps = []
    for round_row in state.get("rounds", []):
        number = round_row.get("round")
        for row in _read_jsonl(folder / f"round-{number:03d}" / "grpo" / "metrics.jsonl"):
            steps.append({"round": number, **row, "global_step": len(steps) + 1})
    return {"kind": "loop", "folder": str(folder), "dataset": state.get("dataset"), "reward": state.get("reward"),
            "base_model": state.get("base_model"), "model_key": state.get("model_key"), "run": state.get("run"),
            "config": state.get("config", {}), "eval_before": _finite(state.get("eval_before")),
            "rollouts": state.get("rollouts"), "rounds": [{k: _finite(v) for k, v in r.items()}
                                                          for r in state.get("rounds", [])],
            "steps": [{k: _finite(v) for k, v in s.items()} for s in steps]}


def train_section(folder: Path) -> dict[str, Any]:
    """The loss / reward curves of a `curate train sft|grpo` folder."""
    rows = _read_jsonl(folder / "metrics.jsonl")
    config = {}
    state = folder / "checkpoint" / "state.json"
    if state.exists():
        try:
            config = json.loads(state.read_text()).get("config", {})
        except json.JSONDecodeError:
            config = {}
    numeric = sorted({k for r in rows for k, v in r.items()
                      if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {"kind": "train", "folder": str(folder), "config": config, "metrics": numeric,
            "steps": [{k: _finite(v) for k, v in r.items()} for r in rows]}


def column(rows: list[dict[str, Any]], key: str) -> list[float | None]:
    """`key` of every row as a float (None where it is missing or not a number), for plotting."""
    out: list[float | None] = []
    for row in rows:
        value = row.get(key)
        out.append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                   and math.isfinite(value) else None)
    return out
