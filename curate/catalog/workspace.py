"""The workspace: a folder with `catalog.duckdb`, Parquet shards and cached models.

Concurrency model: catalog connections are short. A process takes an exclusive
`flock` on `.lock`, opens DuckDB, does one unit of work and closes it; long jobs
(ingest, training) write their shards into a private staging folder first and only
touch the catalog to commit. A second process therefore waits a moment instead of
failing, and gives up with `WorkspaceBusy` (naming the holder) after
`lock_timeout` seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from curate.catalog.schema import DDL, SCHEMA_VERSION
from curate.errors import BadUsage, NotFound, WorkspaceBusy

DEFAULT_WORKSPACE = "curate-ws"
ENV_WORKSPACE = "CURATE_WORKSPACE"
ENV_LOCK_TIMEOUT = "CURATE_LOCK_TIMEOUT"


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@dataclass
class Workspace:
    root: Path
    lock_timeout: float = field(default_factory=lambda: float(os.environ.get(ENV_LOCK_TIMEOUT, "60")))

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, lock_timeout: float | None = None,
             create: bool = True) -> Workspace:
        """Open the workspace at `path`, `$CURATE_WORKSPACE` or `./curate-ws`; a missing one is
        created, unless `create` is false (commands that only read): then it is a `NotFound`."""
        root = Path(path or os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise BadUsage(f"workspace path {root} is a file, not a folder", hint="pass --workspace DIR")
        if not create and not (root / "catalog.duckdb").is_file():
            raise NotFound(f"there is no curate workspace at {root}",
                           hint="ingest a dataset first (`curate ingest FILE --out NAME`), or point at an existing "
                                f"workspace with --workspace DIR or ${ENV_WORKSPACE}")
        ws = cls(root) if lock_timeout is None else cls(root, lock_timeout)
        for sub in (ws.shards_dir, ws.staging_root, ws.models_dir):
            sub.mkdir(parents=True, exist_ok=True)
        with ws.catalog() as con:
            con.execute(DDL)
            con.execute(
                "INSERT OR IGNORE INTO catalog_info VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
        return ws

    @property
    def db_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    @property
    def staging_root(self) -> Path:
        return self.root / "shards" / ".staging"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @contextlib.contextmanager
    def catalog(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive, short-lived connection to the catalog database."""
        lock_path = self.root / ".lock"
        with open(lock_path, "a+") as lock_file:
            self._acquire(lock_file.fileno())
            owner = self.root / ".lock.owner"
            owner.write_text(json.dumps({"pid": os.getpid(), "argv": sys.argv[:6], "since": time.time()}))
            try:
                try:
                    con = duckdb.connect(str(self.db_path))
                except duckdb.IOException as exc:  # a non-curate process holds the file
                    raise WorkspaceBusy(
                        f"workspace {self.root} is busy: {exc}",
                        hint="close the other program that has catalog.duckdb open",
                    ) from exc
                try:
                    yield con
                finally:
                    con.close()
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.catalog() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _acquire(self, fd: int) -> None:
        deadline = time.monotonic() + self.lock_timeout
        while not _try_flock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                raise WorkspaceBusy(
                    f"workspace {self.root} is busy: {self._holder()} has held it for over {self.lock_timeout:.0f}s",
                    hint=f"wait for that process to finish, use another --workspace, or raise {ENV_LOCK_TIMEOUT}",
                )
            time.sleep(0.05)

    def _holder(self) -> str:
        try:
            info = json.loads((self.root / ".lock.owner").read_text())
            return f"process {info['pid']} ({' '.join(info['argv'])})"
        except (OSError, ValueError, KeyError):
            return "another process"

    @contextlib.contextmanager
    def staging(self, label: str) -> Iterator[Path]:
        """A private folder for shards being written; removed unless the caller moved it.

        The folder holds a lock for as long as its writer lives, so `collect_garbage`
        can tell a live writer's folder from one a killed process left behind.
        """
        path = self.staging_root / f"{label}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        with open(path / ".writer.lock", "w") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)

    def collect_garbage(self, con: duckdb.DuckDBPyConnection) -> list[Path]:
        """Remove staging folders of dead writers and version folders the catalog does not know.

        Call with the catalog lock held (`con` from `catalog()`): a version folder with no
        catalog row is what a crash between rename and commit leaves behind.
        """
        removed: list[Path] = []
        for path in self.staging_root.iterdir() if self.staging_root.exists() else []:
            lock = path / ".writer.lock"
            if not lock.exists() and time.time() - path.stat().st_mtime < 60:
                continue  # a writer that has made its folder but not yet locked it
            try:
                with open(lock, "a") as fh:
                    if not _try_flock(fh.fileno(), fcntl.LOCK_EX):
                        continue
            except OSError:
                pass
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        known = {row[0] for row in con.execute("SELECT path FROM datasets").fetchall()}
        for name_dir in self.shards_dir.iterdir():
            if not name_dir.is_dir() or name_dir == self.staging_root:
                continue
            for version_dir in name_dir.iterdir():
                rel = version_dir.relative_to(self.root).as_posix()
                if version_dir.is_dir() and rel not in known:
                    shutil.rmtree(version_dir, ignore_errors=True)
                    removed.append(version_dir)
            if not any(name_dir.iterdir()):
                name_dir.rmdir()
        return removed


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The result of `sql` as a polars frame (across DuckDB versions)."""
    import polars as pl

    relation = con.sql(sql, params=params or None)
    if relation is None:  # a statement that returns no rows
        return pl.DataFrame()
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return pl.from_arrow(fetch())
