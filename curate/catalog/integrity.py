"""Check a workspace against the promises its writers make (the catalog's `fsck`).

The promises (DESIGN §3, docs/reliability.md): the catalog opens; every version it lists has
its folder, all its shards, the rows and the content hash it was committed with; nothing
half-written is visible; the ledger's statistics count exactly the rollouts it holds; a
score is stored once per (dataset, example, scorer). The kill campaign, the concurrency and
full-disk tests run this after every kill or collision, so a broken promise is named, not
guessed from a symptom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow.parquet as pq
import xxhash

from curate.catalog.versions import DatasetVersion, _version_from_row, _COLUMNS, row_hashes
from curate.catalog.workspace import Workspace


@dataclass
class Report:
    """What `check_workspace` looked at, and every broken promise it found (empty when all hold)."""

    versions: int = 0
    rows: int = 0
    rollouts: int = 0
    scores: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def content_hash_of(version: DatasetVersion) -> str:
    """The xxh3-128 content hash recomputed from the version's shards (as `ShardWriter` makes it)."""
    import polars as pl

    hasher = xxhash.xxh3_128()
    for file in version.files():
        for batch in pq.ParquetFile(file).iter_batches(batch_size=50_000):
            hasher.update(row_hashes(pl.from_arrow(batch)).tobytes())
    return hasher.hexdigest()


def check_version(version: DatasetVersion) -> list[str]:
    """The broken promises of one listed version: a missing folder or shard, rows or hash that differ."""
    if not version.path.is_dir():
        return [f"{version.ref}: its folder {version.path} is missing"]
    files = version.files()
    problems = []
    if len(files) != version.shards:
        problems.append(f"{version.ref}: {len(files)} shards on disk, {version.shards} committed")
    try:
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        digest = content_hash_of(version)
    except Exception as exc:  # an unreadable shard is exactly what this check looks for
        return problems + [f"{version.ref}: a shard cannot be read ({type(exc).__name__}: {exc})"]
    if rows != version.rows:
        problems.append(f"{version.ref}: {rows} rows in the shards, {version.rows} committed")
    if digest != version.content_hash:
        problems.append(f"{version.ref}: content hash {digest} of the shards, {version.content_hash} committed")
    return problems


LEDGER_MISMATCH = """
    SELECT coalesce(s.prompt_id, r.prompt_id), coalesce(s.model_key, r.model_key), s.attempts, r.scored
    FROM prompt_stats s
    FULL JOIN (SELECT prompt_id, model_key, count(*) FILTER (WHERE reward IS NOT NULL AND NOT isnan(reward)) AS scored
               FROM rollouts GROUP BY ALL) r USING (prompt_id, model_key)
    WHERE s.attempts IS DISTINCT FROM r.scored
    LIMIT 5
"""


def check_workspace(ws: Workspace) -> Report:
    """Every listed version verified against its shards, and the ledger and scores checked for doubles."""
    report = Report()
    with ws.catalog() as con:
        rows = con.execute(f"SELECT {_COLUMNS} FROM datasets ORDER BY name, version").fetchall()
        lineage = set(con.execute("SELECT DISTINCT name, version FROM lineage").fetchall())
        report.rollouts = con.execute("SELECT count(*) FROM rollouts").fetchone()[0]
        doubled_rollouts = con.execute(
            "SELECT count(*) - count(DISTINCT rollout_id) FROM rollouts").fetchone()[0]
        mismatched = con.execute(LEDGER_MISMATCH).fetchall()
        report.scores = con.execute("SELECT count(*) FROM scores").fetchone()[0]
        doubled_scores = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM scores GROUP BY dataset, id, scorer_key HAVING count(*) > 1)"
        ).fetchone()[0]
    versions = [_version_from_row(ws, row) for row in rows]
    report.versions = len(versions)
    report.rows = sum(v.rows for v in versions)
    for version in versions:
        report.problems += check_version(version)
        if (version.name, version.version) not in lineage:
            report.problems.append(f"{version.ref}: no lineage rows")
    if doubled_rollouts:
        report.problems.append(f"ledger: {doubled_rollouts} rollouts recorded twice")
    for prompt, key, attempts, scored in mismatched:
        report.problems.append(f"ledger: prompt {prompt} under {key} counts {attempts} attempts for {scored} "
                               "scored rollouts")
    if doubled_scores:
        report.problems.append(f"scores: {doubled_scores} (dataset, id, scorer) stored more than once")
    return report
