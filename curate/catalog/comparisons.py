"""The `comparisons` table: one row per cell (strategy x seed) of `curate compare`.

A cell is written twice, each time in one short transaction: `selected` once its selection
is a committed version (so a resumed run trains on that version instead of selecting again),
then `done` with its metrics once the trained model has been evaluated. A run killed at any
point therefore leaves only whole cells, and a rerun skips every `done` one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from curate.catalog.workspace import Workspace, query_frame


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Cell:
    cell_key: str
    name: str
    pool: str
    pool_hash: str
    eval: str
    eval_hash: str
    strategy: str
    seed: int
    base_model: str
    base_hash: str
    scorer_model: str
    recipe_hash: str
    recipe: dict[str, Any]
    metric: str
    selection: str | None = None
    model_path: str | None = None
    value: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "selected"
    select_s: float | None = None
    train_s: float | None = None
    eval_s: float | None = None
    seconds: float | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Cell:
        row = dict(row)
        row["recipe"] = json.loads(row["recipe"])
        row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
        return cls(**row)


COLUMNS = [f for f in Cell.__dataclass_fields__]


def save_cell(ws: Workspace, cell: Cell) -> Cell:
    """Insert or replace the cell's row (one transaction); stamps created_at / finished_at."""
    cell.created_at = cell.created_at or _now()
    if cell.status == "done":
        cell.finished_at = cell.finished_at or _now()
    row = asdict(cell)
    row["recipe"] = json.dumps(row["recipe"], sort_keys=True, default=str)
    row["metrics"] = json.dumps(row["metrics"], sort_keys=True, default=str)
    with ws.transaction() as con:
        con.execute("DELETE FROM comparisons WHERE cell_key = ?", [cell.cell_key])
        con.execute(f"INSERT INTO comparisons ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    [row[c] for c in COLUMNS])
    return cell


def load_cells(ws: Workspace, keys: list[str]) -> dict[str, Cell]:
    """The stored cells among `keys`, by key."""
    if not keys:
        return {}
    with ws.catalog() as con:
        frame = query_frame(con, f"SELECT {', '.join(COLUMNS)} FROM comparisons WHERE list_contains(?, cell_key)",
                            [keys])
    return {row["cell_key"]: Cell.from_row(row) for row in frame.to_dicts()}


def comparisons_of(ws: Workspace, pool_ref: str) -> pl.DataFrame:
    """Finished cells selected from `pool_ref`, per comparison, recipe and strategy: seeds and mean value."""
    with ws.catalog() as con:
        return query_frame(con, "SELECT name, eval, base_model, recipe_hash, metric, strategy, count(*) AS seeds, "
                                "avg(value) AS mean, max(finished_at) AS finished FROM comparisons "
                                "WHERE pool = ? AND status = 'done' GROUP BY ALL ORDER BY name, recipe_hash, strategy",
                           [pool_ref])
