"""The workspace: a folder with `catalog.duckdb`, Parquet shards and cached models.

Concurrency model: catalog connections are short. A process takes an exclusive
`flock` on `.lock`, opens DuckDB, does one unit of work and closes it; long jobs
(ingest, training) write their shards into a private staging folder first and only
touch the catalog to commit. A second process therefore waits a moment instead of
failing, and gives up with `WorkspaceBusy` (naming the holder's pid and command)
after `lock_timeout` seconds; 0 fails at once (`--wait 0`). A wait longer than
`WAIT_NOTICE_S` is announced through `on_wait`, so a blocked command never looks hung.

The holder writes `.lock.owner` (pid, command) after taking the lock and deletes it
before letting go. The kernel frees a `flock` when its process dies, so a killed
holder never blocks anyone; the owner file it leaves behind is how the next process
detects that stale lock: it reports it through `on_wait` and clears it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from curate.catalog.schema import DDL, SCHEMA_VERSION
import errno

from curate.errors import BadUsage, DiskFull, NotFound, WorkspaceBusy

DEFAULT_WORKSPACE = "curate-ws"
ENV_WORKSPACE = "CURATE_WORKSPACE"
ENV_LOCK_TIMEOUT = "CURATE_LOCK_TIMEOUT"
WAIT_NOTICE_S = 1.0  # announce a wait for the lock once it has lasted this long
SECRET_OPTIONS = ("--api-key",)  # their values are never written to .lock.owner


# How a full device shows through the libraries that write: OSError's errno, or the text of polars',
# pyarrow's and DuckDB's own errors (os error 28 is ENOSPC).
DISK_FULL_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(exc) for text in DISK_FULL_TEXT)


@contextlib.contextmanager
def disk_full_is_a_user_error(root: Path, what: str) -> Iterator[None]:
    """Turns a full device under `what` into a `DiskFull` that names the workspace and the way out."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFull(f"no space left on the device of workspace {root} while {what}",
                       hint="free some space (or pass --workspace on a larger disk) and run the command again: "
                            "the versions committed before are intact and nothing half-written was kept") from exc


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def default_lock_timeout() -> float:
    """`$CURATE_LOCK_TIMEOUT` seconds, 60 when unset."""
    text = os.environ.get(ENV_LOCK_TIMEOUT, "60")
    try:
        value = float(text)
    except ValueError:
        raise BadUsage(f"${ENV_LOCK_TIMEOUT} is {text!r}, not a number of seconds",
                       hint=f"set {ENV_LOCK_TIMEOUT}=60 (or 0 to fail at once when the workspace is busy)") from None
    if not value >= 0:  # also refuses NaN
        raise BadUsage(f"${ENV_LOCK_TIMEOUT} is {text!r}: it must be 0 or more seconds")
    return value


def command_line(argv: list[str] | None = None) -> str:
    """How this process was started, as `curate CMD ARGS` (at most 6 words), secret option values hidden."""
    argv = list(sys.argv if argv is None else argv)
    words = [Path(argv[0]).name if argv else "python", *argv[1:]]
    if words[0].startswith("python") and words[1:3] == ["-m", "curate.cli.app"]:
        words = ["curate", *words[3:]]
    out: list[str] = []
    hide = False
    for word in words:
        flag, eq, _ = word.partition("=")
        if hide:
            out.append("***")
        elif eq and flag in SECRET_OPTIONS:
            out.append(f"{flag}=***")
        else:
            out.append(word)
        hide = word in SECRET_OPTIONS
    return " ".join(out[:6]) + (" ..." if len(out) > 6 else "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@dataclass
class Workspace:
    root: Path
    lock_timeout: float = field(default_factory=default_lock_timeout)
    # Told (once per wait) when this process waits for another one, and when it clears a stale lock.
    on_wait: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, lock_timeout: float | None = None,
             create: bool = True, on_wait: Callable[[str], None] | None = None) -> Workspace:
        """Open the workspace at `path`, `$CURATE_WORKSPACE` or `./curate-ws`; a missing one is
        created, unless `create` is false (commands that only read): then it is a `NotFound`.

        `lock_timeout`: seconds to wait for a busy workspace (None: `$CURATE_LOCK_TIMEOUT`, or 60;
        0: fail at once); `on_wait(message)` hears about waits and stale locks."""
        root = Path(path or os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise BadUsage(f"workspace path {root} is a file, not a folder", hint="pass --workspace DIR")
        if not create and not (root / "catalog.duckdb").is_file():
            raise NotFound(f"there is no curate workspace at {root}",
                           hint="ingest a dataset first (`curate ingest FILE --out NAME`), or point at an existing "
                                f"workspace with --workspace DIR or ${ENV_WORKSPACE}")
        if lock_timeout is not None and not lock_timeout >= 0:
            raise BadUsage(f"--wait {lock_timeout}: the wait must be 0 or more seconds")
        ws = cls(root, default_lock_timeout() if lock_timeout is None else lock_timeout, on_wait)
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
            try:
                self._clear_stale(owner)
                with contextlib.suppress(OSError):  # advisory (a full disk must not stop the rollback it allows)
                    owner.write_text(json.dumps({"pid": os.getpid(), "command": command_line(), "since": time.time()}))
                try:
                    con = duckdb.connect(str(self.db_path))
                except duckdb.IOException as exc:  # a non-curate process holds the file
                    raise WorkspaceBusy(
                        f"workspace {self.root} is busy: {exc}",
                        hint="close the other program that has catalog.duckdb open",
                    ) from exc
                with disk_full_is_a_user_error(self.root, "writing the catalog"):
                    try:
                        yield con
                    finally:
                        con.close()
            finally:
                owner.unlink(missing_ok=True)
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
        start = time.monotonic()
        told = False
        while not _try_flock(fd, fcntl.LOCK_EX):
            waited = time.monotonic() - start
            if waited >= self.lock_timeout:
                held = "" if self.lock_timeout == 0 else f" for over {self.lock_timeout:g}s"
                raise WorkspaceBusy(
                    f"workspace {self.root} busy ({self._holder()}){held}",
                    hint="wait for that command to finish, pass --wait SECONDS to wait longer (now "
                         f"{self.lock_timeout:g}; the default comes from ${ENV_LOCK_TIMEOUT}), or use another "
                         "--workspace",
                )
            if not told and waited >= WAIT_NOTICE_S and self.on_wait is not None:
                self.on_wait(f"waiting for workspace {self.root}: busy ({self._holder()}); "
                             f"giving up after {self.lock_timeout:g}s (--wait)")
                told = True
            time.sleep(0.02 if waited < 1 else 0.1)

    def _owner(self) -> dict | None:
        try:
            info = json.loads((self.root / ".lock.owner").read_text())
            return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None
        except (OSError, ValueError):
            return None

    def _holder(self) -> str:
        info = self._owner()
        if info is None or not _pid_alive(info["pid"]):  # not yet written, or another program holds the lock
            return "pid unknown, command unknown"
        return f"pid {info['pid']}, command {info.get('command') or ' '.join(info.get('argv', [])) or 'unknown'}"

    def _clear_stale(self, owner: Path) -> None:
        """Called with the lock held: an owner file now is one a holder left when it was killed."""
        info = self._owner()
        if info is None or info["pid"] == os.getpid():
            return
        owner.unlink(missing_ok=True)
        if self.on_wait is not None:
            self.on_wait(f"cleared a stale lock on {self.root}: pid {info['pid']} "
                         f"({info.get('command') or 'unknown command'}) was killed while it held the workspace; "
                         "nothing it had not committed is visible")

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
                with disk_full_is_a_user_error(self.root, f"writing the shards of {label}"):
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
